// The queue editor widget: fields, a highlighted YAML/JSON editor with live validation,
// the template variables table, and Create / Update / Delete / Preview request.

import { act, bindText, debounce, h } from "./dom.js";
import { highlight, lineForProblem, looksLikeJson, yamlKeyPaths } from "./highlight.js";

const VAR_TYPES = ["string", "integer", "number"];

function codeHtml(text, problems) {
  // Mark the lines the problems point at (the key itself, or its parent when it is missing).
  const marks = new Map();
  if (!looksLikeJson(text)) {
    const paths = yamlKeyPaths(text);
    for (const p of problems) {
      const line = lineForProblem(paths, p);
      if (line !== null && marks.get(line) !== "error") marks.set(line, p.severity);
    }
  }
  return highlight(text)
    .split("\n")
    .map((line, i) => (marks.has(i) ? `<span class="lj-line lj-line-${marks.get(i)}">${line}</span>` : line))
    .join("\n") + "\n";
}

function problemList(problems) {
  if (problems.length === 0) return [h("li", { class: "lj-ok" }, "config is valid")];
  return problems.map((p) =>
    h("li", { class: `lj-severity-${p.severity}` }, p.path ? `${p.path}: ${p.message}` : p.message),
  );
}

function varRow(model, row, index) {
  const update = (field) => (ev) => {
    const rows = model.get("template_vars").map((r) => ({ ...r }));
    rows[index][field] = ev.target.value;
    model.set("template_vars", rows);
    model.save_changes();
  };
  const input = (field) =>
    h("td", {}, h("input", { name: `var-${field}`, value: row[field] ?? "", onchange: update(field) }));
  const type = h("select", { name: "var-type", onchange: update("type") },
    VAR_TYPES.map((t) => h("option", { value: t, selected: t === (row.type || "string") }, t)));
  const remove = () => {
    model.set("template_vars", model.get("template_vars").filter((_, i) => i !== index));
    model.save_changes();
  };
  return h("tr", {}, input("name"), h("td", {}, type), input("default"), input("minimum"), input("maximum"),
    h("td", {}, h("button", { class: "lj-var-remove", title: "remove", onclick: remove }, "✕")));
}

function render({ model, el }) {
  const field = (name, attrs = {}) => {
    const input = h("input", { name, value: model.get(name), ...attrs });
    input.addEventListener("input", () => {
      model.set(name, input.value);
      model.save_changes();
    });
    model.on(`change:${name}`, () => {
      if (input.value !== model.get(name)) input.value = model.get(name);
    });
    return input;
  };

  const resource = h("select", { name: "resource" });
  const fillResources = () => {
    resource.replaceChildren(...model.get("resources").map((r) => h("option", { value: r }, r)));
    resource.value = model.get("resource");
  };
  fillResources();
  resource.addEventListener("change", () => {
    model.set("resource", resource.value);
    model.save_changes();
  });
  model.on("change:resource", () => (resource.value = model.get("resource")));
  model.on("change:resources", fillResources);

  const prio = h("input", { type: "checkbox", name: "prioritization", checked: model.get("prioritization") });
  prio.addEventListener("change", () => {
    model.set("prioritization", prio.checked);
    model.save_changes();
  });
  model.on("change:prioritization", () => (prio.checked = model.get("prioritization")));

  // The editor: typing re-highlights at once and is sent for validation shortly after.
  const pre = h("pre", { "aria-hidden": "true", class: "lj-code-view" });
  const area = h("textarea", { name: "config", spellcheck: "false", autocomplete: "off", "aria-label": "queue config (YAML or JSON)" });
  area.value = model.get("config_text");
  const paint = () => (pre.innerHTML = codeHtml(area.value, model.get("problems")));
  const send = debounce(() => {
    model.set("config_text", area.value);
    model.save_changes();
  }, 250);
  area.addEventListener("input", () => {
    paint();
    send();
  });
  area.addEventListener("keydown", (ev) => {
    if (ev.key !== "Tab") return;
    ev.preventDefault(); // indent instead of leaving the editor
    area.setRangeText("  ", area.selectionStart, area.selectionEnd, "end");
    area.dispatchEvent(new Event("input"));
  });
  model.on("change:config_text", () => {
    if (area.value !== model.get("config_text")) area.value = model.get("config_text");
    paint();
  });
  paint();

  const problems = h("ul", { class: "lj-problems" });
  const showProblems = () => {
    problems.replaceChildren(...problemList(model.get("problems")));
    paint();
  };
  model.on("change:problems", showProblems);
  showProblems();

  const varsBody = h("tbody");
  const showVars = () => varsBody.replaceChildren(...model.get("template_vars").map((r, i) => varRow(model, r, i)));
  model.on("change:template_vars", showVars);
  showVars();
  const addVar = () => {
    model.set("template_vars", [...model.get("template_vars"), { name: "", type: "string", default: "", minimum: "", maximum: "" }]);
    model.save_changes();
  };

  const button = (label, action, cls) => h("button", { class: `lj-btn-${action} ${cls ?? ""}`, onclick: () => act(model, action) }, label);
  const create = button("Create", "create", "lj-primary");
  const update = button("Update", "update", "lj-primary");
  const remove = button("Delete", "delete");
  const showButtons = () => {
    const exists = model.get("exists");
    create.disabled = exists;
    update.disabled = !exists;
    remove.disabled = !exists;
  };
  model.on("change:exists", showButtons);
  showButtons();

  const error = h("div", { class: "lj-error" });
  const notice = h("div", { class: "lj-notice" });
  const preview = h("pre", { class: "lj-preview" });
  bindText(model, "error", error);
  bindText(model, "notice", notice);
  bindText(model, "preview_text", preview);

  el.replaceChildren(h("div", { class: "lj-widget lj-editor" },
    h("div", { class: "lj-fields" },
      h("label", {}, "Entity", field("entity", { placeholder: "you" })),
      h("label", {}, "Name", field("name", { placeholder: "queue name" })),
      h("label", {}, "Resource", resource),
      h("label", {}, prio, "Prioritization")),
    h("div", { class: "lj-code" }, pre, area),
    problems,
    h("details", { class: "lj-vars", open: model.get("template_vars").length > 0 },
      h("summary", {}, "Template variables"),
      h("table", { class: "lj-table" },
        h("thead", {}, h("tr", {}, ["name", "type", "default", "min", "max", ""].map((t) => h("th", {}, t)))),
        varsBody),
      h("button", { class: "lj-var-add", onclick: addVar }, "Add variable")),
    h("div", { class: "lj-actions" }, create, update, remove,
      button("Preview request", "preview"), button("Reset to default", "reset_config")),
    error, notice, preview));
}

export default { render };
export { codeHtml };
