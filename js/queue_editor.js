// The queue editor widget: fields, a CodeMirror 6 YAML/JSON editor with live validation shown
// as lint diagnostics, the template variables table, and Create / Update / Delete / Preview request.
// Bundled by esbuild (hatch_build.py) because it imports CodeMirror from npm.

import { createConfigEditor } from "./config_editor.js";
import { act, bindText, confirmButton, debounce, h, watchConnection } from "./dom.js";

const VAR_TYPES = ["string", "integer", "number"];

function problemList(problems, checking) {
  if (checking) return [h("li", { class: "lj-checking lj-muted" }, "checking…")];
  if (problems.length === 0) return [h("li", { class: "lj-ok" }, "config is valid")];
  return problems.map((p) =>
    h("li", { class: `lj-severity-${p.severity}`, "data-line": p.line ?? "" },
      p.line ? `line ${p.line}: ` : "", p.path ? `${p.path}: ${p.message}` : p.message),
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

  // The editor. Every edit is sent (shortly after) for validation; the problems shown are those of
  // the text on screen, "checking…" until the kernel has checked exactly that text.
  let lastSent = model.get("config_text");
  const sendText = (text) => {
    lastSent = text;
    model.set("config_text", text);
    model.save_changes();
  };
  const send = debounce(() => sendText(editor.getText()), 120);
  const codeBox = h("div", { class: "lj-code" });
  const editor = createConfigEditor(codeBox, {
    doc: model.get("config_text"),
    label: "queue config (YAML or JSON)",
    onChange: () => {
      showProblems();
      send();
    },
  });
  model.on("change:config_text", () => {
    // The kernel replaced the text (Reset, a resource switch, load); an echo of our own is ignored.
    const text = model.get("config_text");
    if (text === lastSent) return;
    lastSent = text;
    editor.setText(text);
  });

  const problems = h("ul", { class: "lj-problems" });
  const showProblems = () => {
    const checking = model.get("checked_text") !== editor.getText();
    problems.replaceChildren(...problemList(model.get("problems"), checking));
    problems.dataset.checking = String(checking);
    editor.showProblems(checking ? [] : model.get("problems"));
  };
  model.on("change:problems", showProblems);
  model.on("change:checked_text", showProblems);
  showProblems();

  const varsBody = h("tbody");
  const showVars = () => varsBody.replaceChildren(...model.get("template_vars").map((r, i) => varRow(model, r, i)));
  model.on("change:template_vars", showVars);
  showVars();
  const addVar = () => {
    model.set("template_vars", [...model.get("template_vars"), { name: "", type: "string", default: "", minimum: "", maximum: "" }]);
    model.save_changes();
  };

  // Create and Update send the text on screen with the click, and the kernel checks it first.
  const withText = (action) => () => {
    const text = editor.getText();
    lastSent = text;
    act(model, action, { config: text });
  };
  const button = (label, action, cls, onclick) =>
    h("button", { class: `lj-btn-${action} ${cls ?? ""}`, onclick: onclick ?? (() => act(model, action)) }, label);
  const create = button("Create", "create", "lj-primary", withText("create"));
  const update = button("Update", "update", "lj-primary", withText("update"));
  const remove = confirmButton("Delete", {
    cls: "lj-btn-delete",
    question: () => `Delete queue ${model.get("entity") || "?"}/${model.get("name")}?`,
    onConfirm: () => act(model, "delete"),
  });
  const showButtons = () => {
    const exists = model.get("exists");
    create.disabled = exists;
    update.disabled = !exists;
    remove.button.disabled = !exists;
  };
  model.on("change:exists", showButtons);
  showButtons();

  const error = h("div", { class: "lj-error" });
  const notice = h("div", { class: "lj-notice" });
  const preview = h("pre", { class: "lj-preview" });
  bindText(model, "error", error);
  bindText(model, "notice", notice);
  bindText(model, "preview_text", preview);

  const root = h("div", { class: "lj-widget lj-editor" },
    h("div", { class: "lj-fields" },
      h("label", {}, "Entity", field("entity", { placeholder: "you" })),
      h("label", {}, "Name", field("name", { placeholder: "queue name" })),
      h("label", {}, "Resource", resource),
      h("label", {}, prio, "Prioritization")),
    codeBox,
    problems,
    h("details", { class: "lj-vars", open: model.get("template_vars").length > 0 },
      h("summary", {}, "Template variables"),
      h("table", { class: "lj-table" },
        h("thead", {}, h("tr", {}, ["name", "type", "default", "min", "max", ""].map((t) => h("th", {}, t)))),
        varsBody),
      h("button", { class: "lj-var-add", onclick: addVar }, "Add variable")),
    h("div", { class: "lj-actions" }, create, update, remove,
      button("Preview request", "preview"), button("Reset to default", "reset_config")),
    error, notice, preview);
  el.replaceChildren(root);
  const unwatch = watchConnection(model, root, () => editor.setEditable(false), el);
  return () => {
    unwatch();
    editor.view.destroy();
  };
}

export default { render };
