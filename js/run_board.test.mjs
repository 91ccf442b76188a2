import assert from "node:assert/strict";
import { test } from "node:test";

import { formatSize } from "./run_board.js";

test("a file's size reads as a person says it", () => {
  assert.equal(formatSize(0), "0 B");
  assert.equal(formatSize(1023), "1023 B");
  assert.equal(formatSize(1024), "1.0 KB");
  assert.equal(formatSize(3789), "3.7 KB");
  assert.equal(formatSize(20 * 1024), "20 KB");
  assert.equal(formatSize(5 * 1024 ** 3), "5.0 GB");
  assert.equal(formatSize(2048 * 1024 ** 4), "2048 TB"); // the largest unit keeps counting
});
