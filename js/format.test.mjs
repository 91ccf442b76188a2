import assert from "node:assert/strict";
import { test } from "node:test";

import {
  axisTicks, badgeClass, diffRows, escapeHtml, formatDuration, runDuration, runTimes, timelineBars,
  timelineSegments, vertexConsoleUrl,
} from "./format.js";

test("durations read as seconds, minutes, hours", () => {
  assert.equal(formatDuration(4.7), "4s");
  assert.equal(formatDuration(65), "1m 05s");
  assert.equal(formatDuration(2 * 3600 + 3 * 60 + 9), "2h 03m");
  assert.equal(formatDuration(null), "");
  assert.equal(formatDuration(-3), "0s");
});

test("a run lasts from start to finish, or to now while it runs", () => {
  assert.equal(runDuration({ state: "running", created_at: 100, started_at: 110 }, 150), 40);
  assert.equal(runDuration({ state: "succeeded", created_at: 100, started_at: 110, finished_at: 130 }, 999), 20);
  assert.equal(runDuration({ state: "queued", created_at: 100 }, 103), 3);
  assert.equal(runDuration({ state: "queued" }, 103), null);
});

test("badges name the state, unknown states get a neutral class", () => {
  assert.equal(badgeClass("running"), "lj-badge lj-state-running");
  assert.equal(badgeClass("weird"), "lj-badge lj-state-unknown");
});

test("vertex console link is built from the CustomJob resource name", () => {
  assert.equal(
    vertexConsoleUrl("projects/my-proj/locations/us-central1/customJobs/123456"),
    "https://console.cloud.google.com/vertex-ai/locations/us-central1/training/123456/cpu?project=my-proj",
  );
  assert.equal(vertexConsoleUrl("pid:4242"), null);
  assert.equal(vertexConsoleUrl(null), null);
});

test("html is escaped", () => {
  assert.equal(escapeHtml('<a href="x">&</a>'), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
});

test("row diff finds added, removed and changed rows by key", () => {
  const before = [{ id: "a", state: "queued" }, { id: "b", state: "running" }, { id: "c", state: "queued" }];
  const after = [{ id: "d", state: "queued" }, { id: "a", state: "queued" }, { id: "b", state: "succeeded" }];
  const d = diffRows(before, after);
  assert.deepEqual(d.added.map((r) => r.id), ["d"]);
  assert.deepEqual(d.removed, ["c"]);
  assert.deepEqual(d.changed.map((r) => r.id), ["b"]);
  assert.deepEqual(d.order, ["d", "a", "b"]);
  const same = diffRows(after, after.map((r) => ({ ...r })));
  assert.deepEqual([same.added, same.removed, same.changed], [[], [], []]);
});

test("timeline spans run from each event to the next, the last open until now", () => {
  const events = [
    { state: "building", time: 12 },
    { state: "queued", time: 10 },
    { state: "running", time: 15 },
  ];
  assert.deepEqual(timelineSegments(events, 20), [
    { state: "queued", start: 10, end: 12 },
    { state: "building", start: 12, end: 15 },
    { state: "running", start: 15, end: 20 },
  ]);
  const done = timelineSegments([...events, { state: "succeeded", time: 18 }], 99);
  assert.deepEqual(done.at(-2), { state: "running", start: 15, end: 18 });
  assert.deepEqual(done.at(-1), { state: "succeeded", start: 18, end: 18 });
});

test("timeline bars share one time scale", () => {
  const runs = [
    { id: "a", events: [{ state: "queued", time: 0 }, { state: "running", time: 5 }, { state: "succeeded", time: 10 }] },
    { id: "b", events: [{ state: "queued", time: 5 }] },
  ];
  const { bars, start, end } = timelineBars(runs, 100, 10);
  assert.equal(start, 0);
  assert.equal(end, 10);
  assert.deepEqual(bars[0].segments[0], { state: "queued", x: 0, w: 50 });
  assert.deepEqual(bars[0].segments[1], { state: "running", x: 50, w: 50 });
  assert.deepEqual(bars[1].segments, [{ state: "queued", x: 50, w: 50 }]);
  assert.deepEqual(timelineBars([], 100, 3).bars, []);
});

test("waiting and running are counted apart", () => {
  assert.deepEqual(runTimes({ state: "queued", created_at: 100 }, 130), { waited: 30, ran: null });
  assert.deepEqual(runTimes({ state: "running", created_at: 100, started_at: 110 }, 130), { waited: 10, ran: 20 });
  assert.deepEqual(runTimes({ state: "succeeded", created_at: 100, started_at: 110, finished_at: 150 }, 999),
    { waited: 10, ran: 40 });
  // Cancelled while queued: it only ever waited, and the wait stops at its end.
  assert.deepEqual(runTimes({ state: "cancelled", created_at: 100, finished_at: 120 }, 999), { waited: 20, ran: null });
});

test("axis ticks span the timeline", () => {
  const ticks = axisTicks(100, 200, 3);
  assert.deepEqual(ticks.map((t) => t.x), [0, 50, 100]);
  assert.deepEqual(ticks.map((t) => t.t), [100, 150, 200]);
  assert.equal(axisTicks(5, 5).length, 1);
});
