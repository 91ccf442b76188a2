import assert from "node:assert/strict";
import { test } from "node:test";

import {
  highlight, highlightJson, highlightYaml, lineForPath, lineForProblem, looksLikeJson, yamlKeyPaths,
} from "./highlight.js";

const VERTEX = `spec:
  worker_pool_specs:
  - machine_spec:
      machine_type: n1-standard-4   # a comment
    replica_count: 1
    container_spec:
      image_uri: \${image_uri}
  staging_bucket: gs://{{bucket}}
run:
  restart_job_on_worker_restart: false
`;

test("yaml keys, values, comments, template variables and macros get their classes", () => {
  const html = highlightYaml(VERTEX);
  assert.match(html, /<span class="lj-hl-key">spec:<\/span>/);
  assert.match(html, /<span class="lj-hl-str">n1-standard-4<\/span>/);
  assert.match(html, /<span class="lj-hl-comment"># a comment<\/span>/);
  assert.match(html, /<span class="lj-hl-num">1<\/span>/);
  assert.match(html, /<span class="lj-hl-bool">false<\/span>/);
  assert.match(html, /<span class="lj-hl-var">\{\{bucket\}\}<\/span>/);
  assert.match(html, /<span class="lj-hl-macro">\$\{image_uri\}<\/span>/);
  // highlighting never changes the text itself
  assert.equal(html.replace(/<[^>]+>/g, "").replaceAll("&gt;", ">").replaceAll("&lt;", "<"), VERTEX);
});

test("yaml text with html in it is escaped", () => {
  assert.match(highlightYaml("a: <b>"), /&lt;b&gt;/);
  assert.doesNotMatch(highlightYaml("a: <b>"), /<b>/);
});

test("json is recognised and highlighted", () => {
  const text = '{"spec": {"replica_count": 2, "ok": true, "name": "x"}}';
  assert.ok(looksLikeJson(text));
  assert.ok(!looksLikeJson("spec: {}"));
  const html = highlightJson(text);
  assert.match(html, /<span class="lj-hl-key">&quot;spec&quot;<\/span>:/);
  assert.match(html, /<span class="lj-hl-num">2<\/span>/);
  assert.match(html, /<span class="lj-hl-bool">true<\/span>/);
  assert.match(html, /<span class="lj-hl-str">&quot;x&quot;<\/span>/);
  assert.equal(highlight(text), html);
});

test("key paths follow nesting and list items", () => {
  const paths = yamlKeyPaths(VERTEX);
  const at = Object.fromEntries(paths.map((p) => [p.path, p.line]));
  assert.equal(at["spec"], 0);
  assert.equal(at["spec.worker_pool_specs"], 1);
  assert.equal(at["spec.worker_pool_specs[0].machine_spec"], 2);
  assert.equal(at["spec.worker_pool_specs[0].machine_spec.machine_type"], 3);
  assert.equal(at["spec.worker_pool_specs[0].replica_count"], 4);
  assert.equal(at["spec.worker_pool_specs[0].container_spec.image_uri"], 6);
  assert.equal(at["spec.staging_bucket"], 7);
  assert.equal(at["run.restart_job_on_worker_restart"], 9);
});

test("second list items and indented lists get their own index", () => {
  const text = "a:\n  - x: 1\n    y: 2\n  - x: 3\nb: 4\n";
  const at = Object.fromEntries(yamlKeyPaths(text).map((p) => [p.path, p.line]));
  assert.deepEqual(at, { a: 0, "a[0].x": 1, "a[0].y": 2, "a[1].x": 3, b: 4 });
});

test("a problem marks its key, or the nearest parent when the key is missing", () => {
  const paths = yamlKeyPaths(VERTEX);
  assert.equal(lineForPath(paths, "spec.staging_bucket"), 7);
  assert.equal(lineForPath(paths, "spec.worker_pool_specs[0].machine_spec.accelerator_type"), 2);
  assert.equal(lineForPath(paths, "spec.network"), 0);
  assert.equal(lineForPath(paths, "nothing"), null);
  assert.equal(lineForPath(paths, ""), null);
});

test("lists indented under their key (the runners' default style) get the same paths", () => {
  const text = "spec:\n  worker_pool_specs:\n    - machine_spec:\n        machine_type: n1\n      replica_count: 1\n  staging_bucket: x\n";
  const at = Object.fromEntries(yamlKeyPaths(text).map((p) => [p.path, p.line]));
  assert.equal(at["spec.worker_pool_specs[0].machine_spec.machine_type"], 3);
  assert.equal(at["spec.worker_pool_specs[0].replica_count"], 4);
  assert.equal(at["spec.staging_bucket"], 5);
});

test("a yaml syntax error is marked on the line its message names", () => {
  const paths = yamlKeyPaths("spec:\n  a: [\n");
  assert.equal(lineForProblem(paths, { path: "config", message: "line 2, column 6: expected ..." }), 1);
  assert.equal(lineForProblem(paths, { path: "spec.a", message: "bad" }), 1);
  assert.equal(lineForProblem(paths, { path: "", message: "no line here" }), null);
});
