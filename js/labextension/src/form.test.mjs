import assert from "node:assert/strict";
import { test } from "node:test";

import { VERTEX_OVERRIDES, coerce, coerceTemplate, queueLabel, submitBody } from "./form.js";

test("a parameter is typed like its default in the parameters cell", () => {
  assert.deepEqual(coerce("int", "12"), { ok: true, value: 12 });
  assert.equal(coerce("int", "1.5").ok, false);
  assert.equal(coerce("int", "abc").error, "a whole number");
  assert.deepEqual(coerce("float", "1e-3"), { ok: true, value: 0.001 });
  assert.equal(coerce("float", "fast").ok, false);
  assert.deepEqual(coerce("bool", true), { ok: true, value: true });
  assert.deepEqual(coerce("bool", "no"), { ok: true, value: false });
  assert.deepEqual(coerce("str", " 5 "), { ok: true, value: " 5 " });
  assert.deepEqual(coerce("list", "[1, 2]"), { ok: true, value: [1, 2] });
  assert.equal(coerce("list", "{\"a\": 1}").ok, false);
  assert.deepEqual(coerce("dict", "{\"a\": 1}"), { ok: true, value: { a: 1 } });
  assert.deepEqual(coerce("", "[3]"), { ok: true, value: [3] });
  assert.deepEqual(coerce("", "plain"), { ok: true, value: "plain" });
  assert.deepEqual(coerce("int", "  "), { ok: true, value: undefined }); // empty: keep the default
});

test("a template variable keeps to its type, bounds and choices", () => {
  const n = { name: "n", type: "integer", minimum: 1, maximum: 8 };
  assert.deepEqual(coerceTemplate(n, "4"), { ok: true, value: 4 });
  assert.equal(coerceTemplate(n, "9").error, "at most 8");
  assert.equal(coerceTemplate(n, "0").error, "at least 1");
  const zone = { name: "zone", type: "string", enum: ["a", "b"] };
  assert.equal(coerceTemplate(zone, "c").error, "one of a, b");
});

test("the form becomes one submit body, or names every invalid field", () => {
  const form = {
    notebook: "train.ipynb", queue: "alice/gpu",
    parameters: [{ name: "lr", type: "float" }, { name: "epochs", type: "int" }, { name: "tag", type: "str" }],
    templateVars: [{ name: "n", type: "integer", minimum: 1 }],
    overrides: VERTEX_OVERRIDES.map((o) => ({ ...o, name: o.key })),
    priority: "high", name: " first ",
  };
  const good = submitBody(form, { "p:lr": "0.1", "p:epochs": "", "p:tag": "x", "t:n": "2",
    "r:spec.worker_pool_specs[0].machine_spec.accelerator_count": "1" });
  assert.deepEqual(good.errors, []);
  assert.deepEqual(good.body, {
    notebook: "train.ipynb", queue: "alice/gpu", parameters: { lr: 0.1, tag: "x" }, template_values: { n: 2 },
    resource_args: { "spec.worker_pool_specs[0].machine_spec.accelerator_count": 1 }, priority: "high", name: "first",
  });
  const bad = submitBody(form, { "p:epochs": "ten", "t:n": "0" });
  assert.deepEqual(bad.errors, ["epochs: a whole number", "n: at least 1"]);
});

test("the queue picker says how long the queue is and whether anyone serves it", () => {
  assert.equal(queueLabel({ queue: "alice/q", resource: "local-process", queued: 2, served: false }),
    "alice/q · local-process · 2 queued · no agent serving");
});
