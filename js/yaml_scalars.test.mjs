// node --test js/yaml_scalars.test.mjs
import assert from "node:assert/strict";
import { test } from "node:test";

import { scalarKind } from "./yaml_scalars.js";

test("YAML 1.1 booleans stay strings", () => {
  for (const word of ["on", "off", "yes", "no", "On", "Y", "n"]) assert.equal(scalarKind(word), "string", word);
});

test("core schema booleans, numbers and nulls", () => {
  assert.equal(scalarKind("true"), "bool");
  assert.equal(scalarKind("FALSE"), "bool");
  assert.equal(scalarKind("010"), "number");
  assert.equal(scalarKind("-1.5e3"), "number");
  assert.equal(scalarKind(".inf"), "number");
  assert.equal(scalarKind("~"), "null");
  assert.equal(scalarKind("null"), "null");
  assert.equal(scalarKind("12:30"), "string");
  assert.equal(scalarKind("0x10"), "string");
  assert.equal(scalarKind("2024-01-01"), "string");
});
