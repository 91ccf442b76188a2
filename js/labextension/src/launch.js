// The Launch dialog: send a notebook to a queue without a kernel, through the server extension's
// REST API (/launch/api/…). Opened by the notebook toolbar's Launch button and by "Launch notebook…"
// in the file browser's context menu.

import { Dialog, Notification } from "@jupyterlab/apputils";
import { ServerConnection } from "@jupyterlab/services";
import { Widget } from "@lumino/widgets";

import { VERTEX_OVERRIDES, coerce, coerceTemplate, queueLabel, submitBody } from "./form.js";

// Call the REST API; a refusal becomes an Error carrying the server's one-line message and key path.
export async function request(path, { method = "GET", body, params } = {}) {
  const settings = ServerConnection.makeSettings();
  const query = params ? `?${new URLSearchParams(params)}` : "";
  const url = `${settings.baseUrl}launch/api/${path}${query}`;
  const init = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { message: text };
  }
  if (!response.ok) {
    const error = new Error(data?.message || `${response.status} ${response.statusText}`);
    error.path = data?.path;
    throw error;
  }
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// The dialog's body: queue picker, typed parameter form, priority, template variables, overrides,
// preview and submit. `onSubmitted(run)` is called after a successful submit.
export class LaunchBody extends Widget {
  constructor(path, onSubmitted) {
    super({ node: el("div", { class: "lj-launch" }) });
    this.path = path;
    this.onSubmitted = onSubmitted;
    this.values = {};
    this.queues = [];
    this.parameters = [];
  }

  async load() {
    this.node.replaceChildren(el("div", { class: "lj-launch-status", text: "loading queues and parameters…" }));
    try {
      const [queues, notebook] = await Promise.all([
        request("queues", { params: { details: "1" } }),
        request("notebook", { params: { path: this.path } }),
      ]);
      this.queues = queues;
      this.notebook = notebook;
      this.parameters = notebook.parameters;
      this.render();
    } catch (err) {
      this.node.replaceChildren(el("div", { class: "lj-launch-error", role: "alert", text: err.message }));
    }
  }

  get queue() {
    return this.queues.find((q) => q.queue === this.select?.value);
  }

  render() {
    const root = this.node;
    root.replaceChildren();
    if (!this.queues.length) {
      root.append(el("div", { class: "lj-launch-error", role: "alert",
        text: "No queue yet: create one first (%launch queue create NAME, or launch-jupyter queue create NAME)." }));
      return;
    }
    this.select = el("select", { class: "lj-launch-queue", "aria-label": "Queue" });
    for (const q of this.queues) this.select.append(el("option", { value: q.queue, text: queueLabel(q) }));
    this.select.addEventListener("change", () => this.renderQueueParts());
    this.note = el("div", { class: "lj-launch-note" });
    // The run's price for the chosen queue and overrides (a queue with no price table shows nothing).
    this.priceLine = el("div", { class: "lj-launch-price", "aria-live": "polite", hidden: true });
    root.append(el("label", { class: "lj-launch-row" }, el("span", { text: "Queue" }), this.select), this.note, this.priceLine);

    root.append(el("h4", { text: "Parameters" }));
    if (!this.notebook.tagged) {
      const hint = this.notebook.untagged_cell
        ? `cell ${this.notebook.untagged_cell[0]} looks like parameters but is not tagged "parameters"`
        : 'no cell is tagged "parameters"';
      root.append(el("div", { class: "lj-launch-note", text: `${hint}: the notebook runs with its own values.` }));
    }
    const table = el("div", { class: "lj-launch-params" });
    for (const p of this.parameters) table.append(this.field("p", p.name, p.type, p.default, p.line));
    root.append(table);
    this.queueParts = el("div", { class: "lj-launch-queue-parts" });
    root.append(this.queueParts);
    this.nameInput = el("input", { type: "text", class: "lj-launch-name", placeholder: "(optional)", "aria-label": "Run name" });
    root.append(el("label", { class: "lj-launch-row" }, el("span", { text: "Run name" }), this.nameInput));

    this.previewButton = el("button", { class: "jp-mod-styled lj-launch-preview", type: "button", text: "Preview" });
    this.submitButton = el("button", { class: "jp-mod-styled jp-mod-accept lj-launch-submit", type: "button", text: "Submit" });
    this.previewButton.addEventListener("click", () => void this.preview());
    this.submitButton.addEventListener("click", () => void this.submit());
    this.status = el("div", { class: "lj-launch-status", "aria-live": "polite" });
    this.previewBox = el("pre", { class: "lj-launch-request", hidden: true });
    // What the run costs (per hour, at worst for its timeout), above the request it was priced from.
    this.costBox = el("pre", { class: "lj-launch-cost", hidden: true });
    root.append(
      el("div", { class: "lj-launch-actions" }, this.previewButton, this.submitButton),
      this.status,
      this.costBox,
      this.previewBox,
    );
    this.renderQueueParts();
  }

  // A typed input: `kind` p (parameter), t (template variable), r (resource override).
  field(kind, name, type, fallback, hint, variable) {
    const key = `${kind}:${name}`;
    let input;
    if (type === "bool") {
      input = el("input", { type: "checkbox" });
      input.checked = Boolean(fallback);
    } else if (variable && Array.isArray(variable.enum)) {
      input = el("select", {});
      for (const option of variable.enum) input.append(el("option", { value: String(option), text: String(option) }));
      if (fallback !== undefined && fallback !== null) input.value = String(fallback);
    } else {
      const shown = fallback === undefined || fallback === null ? "" : typeof fallback === "string" ? fallback : JSON.stringify(fallback);
      const numeric = type === "int" || type === "float" || type === "integer" || type === "number";
      input = el("input", { type: "text", inputmode: numeric ? "decimal" : undefined, placeholder: shown });
    }
    input.setAttribute("data-key", key);
    input.setAttribute("aria-label", name);
    const problem = el("span", { class: "lj-launch-problem" });
    const check = () => {
      const raw = input.type === "checkbox" ? input.checked : input.value;
      this.values[key] = raw;
      const result = variable ? coerceTemplate(variable, raw) : coerce(type, raw);
      problem.textContent = result.ok ? "" : `expected ${result.error}`;
      input.classList.toggle("lj-invalid", !result.ok);
      input.setAttribute("aria-invalid", result.ok ? "false" : "true");
      this.refreshButtons();
      if (kind !== "p") this.refreshPrice();
    };
    input.addEventListener("input", check);
    input.addEventListener("change", check);
    // A checkbox sends its value once the user changed it; until then the notebook's default holds.
    if (input.tagName === "SELECT") this.values[key] = input.value;
    // An override is shown by its label ("Machine type"), its key path in the tooltip.
    const shownName = kind === "r" && hint ? hint : name;
    const label = type ? `${shownName} (${type})` : shownName;
    return el("label", { class: "lj-launch-row", title: kind === "r" ? name : hint || "" }, el("span", { text: label }), input, problem);
  }

  renderQueueParts() {
    const q = this.queue;
    for (const key of Object.keys(this.values)) if (!key.startsWith("p:")) delete this.values[key];
    this.note.textContent = q?.serving_note || "";
    this.queueParts.replaceChildren();
    if (q?.prioritization) {
      this.priority = el("select", { class: "lj-launch-priority", "aria-label": "Priority" });
      for (const p of ["low", "medium", "high", "critical"]) this.priority.append(el("option", { value: p, text: p }));
      this.priority.value = "medium";
      this.queueParts.append(el("label", { class: "lj-launch-row" }, el("span", { text: "Priority" }), this.priority));
    } else {
      this.priority = null;
    }
    const vars = q?.template_vars || [];
    if (vars.length) {
      this.queueParts.append(el("h4", { text: "Queue variables" }));
      for (const v of vars) this.queueParts.append(this.field("t", v.name, v.type, v.default, v.description, v));
    }
    if (q?.resource === "vertex") {
      this.queueParts.append(el("h4", { text: "Vertex AI overrides" }));
      for (const o of VERTEX_OVERRIDES) this.queueParts.append(this.field("r", o.key, o.type, "", o.label));
    }
    this.refreshButtons();
    this.refreshPrice();
  }

  // Ask the server for the run's price, a moment after the last change (typing an override).
  refreshPrice() {
    clearTimeout(this.priceTimer);
    this.priceTimer = setTimeout(() => void this.showPrice(), 250);
  }

  async showPrice() {
    const { body, errors } = this.form();
    if (errors.length || !body.queue) return;
    const asked = (this.priceAsked = (this.priceAsked || 0) + 1);
    try {
      const answer = await request("estimate", {
        method: "POST",
        body: { queue: body.queue, template_values: body.template_values, resource_args: body.resource_args },
      });
      if (asked !== this.priceAsked) return; // a later change asked again
      const parts = [];
      if (answer.summary) parts.push(el("span", { text: `Cost: ${answer.summary}` }));
      if (answer.over_budget) parts.push(el("span", { class: "lj-launch-error", role: "alert", text: ` Over budget: ${answer.over_budget}` }));
      this.priceLine.replaceChildren(...parts);
      this.priceLine.title = answer.text || "";
      this.priceLine.hidden = parts.length === 0;
    } catch (err) {
      if (asked !== this.priceAsked) return;
      this.priceLine.replaceChildren(el("span", { class: "lj-launch-problem", text: `Cost: ${err.message || err}` }));
      this.priceLine.hidden = false;
    }
  }

  form() {
    const q = this.queue;
    return submitBody({
      notebook: this.path, queue: q?.queue, parameters: this.parameters, templateVars: q?.template_vars || [],
      overrides: q?.resource === "vertex" ? VERTEX_OVERRIDES.map((o) => ({ ...o, name: o.key })) : [],
      priority: this.priority?.value, name: this.nameInput?.value,
    }, this.values);
  }

  refreshButtons() {
    if (!this.submitButton) return;
    const { errors } = this.form();
    this.submitButton.disabled = errors.length > 0;
    this.previewButton.disabled = errors.length > 0;
  }

  async preview() {
    const { body } = this.form();
    this.status.textContent = "preparing the request…";
    try {
      const answer = await request("submit", { method: "POST", body: { ...body, dry_run: true } });
      this.previewBox.textContent = answer.request;
      this.previewBox.hidden = false;
      this.costBox.textContent = answer.cost || "";
      this.costBox.hidden = !answer.cost;
      this.status.textContent = "the exact request (nothing queued)";
    } catch (err) {
      this.costBox.hidden = true;
      this.previewBox.hidden = true;
      this.fail(err);
    }
  }

  async submit() {
    const { body } = this.form();
    this.submitButton.disabled = true;
    this.status.textContent = "submitting…";
    try {
      const run = await request("submit", { method: "POST", body });
      this.status.textContent = `submitted run ${run.id.slice(0, 8)} to ${run.queue}`;
      this.onSubmitted?.(run);
    } catch (err) {
      this.fail(err);
      this.refreshButtons();
    }
  }

  fail(err) {
    this.status.replaceChildren(el("span", { class: "lj-launch-error", role: "alert",
      text: err.path ? `${err.message}` : err.message }));
  }
}

// Open the dialog for the notebook at `path` (relative to the server root). `save` saves an open,
// modified copy first so the run holds what is on screen.
export async function openLaunchDialog(path, save) {
  if (save) await save();
  let dialog;
  const body = new LaunchBody(path, (run) => {
    Notification.success(`Submitted run ${run.id.slice(0, 8)} of ${run.notebook || path} to ${run.queue}`, { autoClose: 5000 });
    dialog?.resolve(0);
  });
  dialog = new Dialog({ title: `Launch ${path.split("/").pop()}`, body, buttons: [Dialog.cancelButton({ label: "Close" })] });
  dialog.addClass("lj-launch-dialog");
  void body.load();
  return dialog.launch();
}
