// A run's own page in JupyterLab, opened from a row of the Runs tab: what it is (name, queue, state,
// times, parameters), what happened (the events timeline; a failure in a red alert), its log (the
// tail, following while it runs) and what it left (the executed notebook, viewable read-only without a
// kernel, and the files it wrote, each downloadable). Cancel and Delete ask first (showDialog). Live
// from the server's event stream; no kernel anywhere.

import { Dialog, MainAreaWidget, showDialog } from "@jupyterlab/apputils";
import { ServerConnection } from "@jupyterlab/services";
import { Widget } from "@lumino/widgets";

import { h } from "../../dom.js";
import { badgeClass, formatDuration, formatTime, isTerminal, runTimes, vertexConsoleUrl } from "../../format.js";
import { formatSize } from "../../run_board.js";
import { onRunEvents } from "./events.js";
import { request } from "./launch.js";
import { activateInMain, findInMain, showInMain, treeUrl } from "./main_area.js";

const LOG_TAIL = 200;
const LOG_EVERY_MS = 2000; // a running job's log grows without state events: re-read its tail this often

// Ask before something that cannot be undone; resolves true only on the accept button.
export async function askFirst(title, body, accept) {
  const result = await showDialog({
    title, body,
    buttons: [Dialog.cancelButton({ label: "Keep" }), Dialog.warnButton({ label: accept })],
  });
  return result.button.accept;
}

// A GET of the REST API that is not JSON (a log, a file): the Response, or an Error with the server's message.
async function fetchRaw(path, params) {
  const settings = ServerConnection.makeSettings();
  const query = params ? `?${new URLSearchParams(params)}` : "";
  const response = await ServerConnection.makeRequest(`${settings.baseUrl}launch/api/${path}${query}`, {}, settings);
  if (!response.ok) {
    const text = await response.text();
    let message = `${response.status} ${response.statusText}`;
    try {
      message = JSON.parse(text).message || message;
    } catch { /* not JSON: keep the status line */ }
    throw new Error(message);
  }
  return response;
}

// Save a file of the run through the browser (fetched with the server's own auth, then a blob link).
async function download(runId, name) {
  const response = await fetchRaw(`runs/${runId}/file`, { name });
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: name.split("/").pop(), hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// The executed notebook as nbconvert's HTML in a sandboxed frame (no scripts, no same-origin access):
// read-only, no kernel, and the run's outputs cannot reach this page or the server's API.
export class NotebookView extends Widget {
  constructor(runId) {
    super();
    this.addClass("lj-notebook-view");
    this.frame = h("iframe", { sandbox: "", class: "lj-notebook-frame", title: `executed notebook of ${runId}` });
    this.status = h("div", { class: "lj-muted" }, "loading the executed notebook…");
    this.node.append(this.status, this.frame);
    void this.load(runId);
  }

  async load(runId) {
    try {
      const response = await fetchRaw(`runs/${runId}/output`, { format: "html" });
      this.frame.srcdoc = await response.text();
      this.status.remove();
    } catch (err) {
      this.status.className = "lj-error";
      this.status.textContent = err.message;
    }
  }
}

function openNotebookView(app, run) {
  const id = `launch-jupyter-notebook-${run.id}`;
  const open = findInMain(app, id);
  if (open) {
    activateInMain(app, open);
    return open;
  }
  const widget = new MainAreaWidget({ content: new NotebookView(run.id) });
  widget.id = id;
  widget.title.label = `${run.name || run.id.slice(0, 8)} (executed, read-only)`;
  widget.title.closable = true;
  // Where no second page fits (Notebook 7 outside /tree), the executed notebook's HTML in a browser tab.
  return showInMain(app, widget, `${ServerConnection.makeSettings().baseUrl}launch/api/runs/${run.id}/output?format=html`);
}

export class RunDetail extends Widget {
  constructor(app, runId) {
    super();
    this.app = app;
    this.runId = runId;
    this.run = null;
    this.files = null;
    this.log = "";
    this.gone = false;
    this.addClass("lj-run-detail");
    this.node.classList.add("lj-widget");
    this.node.dataset.runId = runId;
    this.head = h("div", { class: "lj-detail-head" });
    this.message = h("div", { class: "lj-error", hidden: true });
    this.body = h("div", { class: "lj-detail-body" }, h("div", { class: "lj-muted" }, "loading…"));
    this.node.append(this.head, this.message, this.body);
    this.unsubscribe = onRunEvents((event) => {
      if (event === null || event.run_id === this.run?.id || event.run_id === runId) this.schedule(event);
    });
    this.timer = setInterval(() => {
      if (this.run && !isTerminal(this.run.state) && !this.gone) void this.loadLog();
    }, LOG_EVERY_MS);
    this.pending = null;
    void this.load();
  }

  schedule(event) {
    if (event?.state === "deleted") {
      this.markGone();
      return;
    }
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = null;
      void this.load();
    }, 30); // a burst of events (the server sends one in one write) is one reload
  }

  markGone() {
    this.gone = true;
    this.showMessage(`run ${this.runId} was deleted`);
    for (const button of this.node.querySelectorAll("button")) button.disabled = true;
  }

  showMessage(text) {
    this.message.textContent = text;
    this.message.hidden = !text;
  }

  async load() {
    if (this.gone) return;
    try {
      const [run, files] = await Promise.all([
        request(`runs/${this.runId}`), request(`runs/${this.runId}/files`), this.loadLog(false),
      ]);
      this.run = run;
      this.files = files;
      this.onTitle?.(run.name || run.id.slice(0, 8));
      this.draw();
    } catch (err) {
      if (/does not exist/.test(err.message) && this.run) this.markGone();
      else this.showMessage(err.message);
    }
  }

  async loadLog(redraw = true) {
    try {
      const response = await fetchRaw(`runs/${this.runId}/logs`, { tail: String(LOG_TAIL) });
      this.log = (await response.text()).replace(/\n$/, "");
    } catch (err) {
      this.log = err.message;
    }
    if (redraw) this.drawLog();
  }

  drawLog() {
    const pre = this.node.querySelector(".lj-detail-log");
    if (!pre) return;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = this.log || "(the log is empty)";
    if (atBottom) pre.scrollTop = pre.scrollHeight; // follow the tail unless the user scrolled up
  }

  draw() {
    const run = this.run;
    this.node.dataset.state = run.state;
    const active = !isTerminal(run.state);
    this.head.replaceChildren(
      h("h2", { class: "lj-detail-name" }, run.name || run.id),
      h("span", { class: badgeClass(run.state) }, run.state),
      h("span", { class: "lj-detail-actions" },
        h("button", { class: "lj-btn-refresh", onclick: () => void this.load() }, "Refresh"),
        active ? h("button", { class: "lj-btn-cancel", disabled: run.cancel_requested, onclick: () => void this.cancel() },
          run.cancel_requested ? "Cancelling…" : "Cancel") : null,
        h("button", { class: "lj-btn-delete", disabled: active, title: active ? "cancel the run first" : "forget this run",
          onclick: () => void this.delete() }, "Delete")));
    this.showMessage("");
    // (replaceChildren would write a null, the alert of a run that needs none, as the text "null")
    this.body.replaceChildren(...[
      this.alert(run), this.facts(run),
      h("h3", {}, "Parameters"), this.parameters(run),
      h("h3", {}, "Outputs"), this.outputs(run),
      h("h3", {}, "Timeline"), this.timeline(run),
      h("h3", {}, active ? "Log (following)" : "Log"), h("pre", { class: "lj-log lj-detail-log" }),
    ].filter(Boolean));
    this.drawLog();
  }

  alert(run) {
    if (run.state !== "failed" && !(run.state === "cancelled" && run.message)) return null;
    const failed = run.state === "failed";
    return h("div", { class: `lj-alert ${failed ? "lj-alert-error" : "lj-alert-warn"}`, role: "alert" },
      h("strong", {}, failed ? (run.stage ? `Failed at stage ${run.stage}` : "Failed") : "Cancelled"),
      h("div", { class: "lj-alert-message" }, run.message || "no message was recorded"));
  }

  facts(run) {
    const { waited, ran } = runTimes(run, Date.now() / 1000);
    const consoleUrl = vertexConsoleUrl(run.external_id);
    const items = [
      ["id", run.id], ["queue", run.queue], ["resource", run.resource], ["author", run.author],
      ["agent", run.agent_id], ["priority", run.priority], ["notebook", run.notebook],
      ["external id", run.external_id], ["last message", run.state === "failed" ? "" : run.message],
      ["created", formatTime(run.created_at)],
      ["started", formatTime(run.started_at)], ["finished", formatTime(run.finished_at)],
      ["waited", formatDuration(waited)], ["ran", ran === null ? "" : formatDuration(ran)],
    ].filter(([, v]) => v);
    return h("dl", { class: "lj-details lj-detail-facts" },
      items.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-fact": k }, v)]),
      consoleUrl ? [h("dt", {}, "console"), h("dd", {}, h("a", { href: consoleUrl, target: "_blank", rel: "noopener" }, "Vertex AI"))] : null);
  }

  parameters(run) {
    const entries = Object.entries(run.parameters || {});
    if (!entries.length) return h("div", { class: "lj-muted" }, "the notebook's defaults (no parameters given)");
    return h("table", { class: "lj-table lj-detail-params" },
      h("tbody", {}, entries.map(([k, v]) => h("tr", { "data-name": k }, h("th", {}, k), h("td", {}, h("code", {}, JSON.stringify(v)))))));
  }

  outputs(run) {
    const files = this.files?.files ?? [];
    if (!files.length) {
      return h("div", { class: "lj-muted lj-detail-nofiles" },
        isTerminal(run.state) ? "this run left no executed notebook and wrote no files here" : "nothing yet: the run is not over");
    }
    const rows = files.map((f) => h("tr", { class: "lj-detail-file", "data-name": f.name, "data-kind": f.kind },
      h("td", {}, f.kind === "notebook" ? h("strong", {}, `${f.name} (executed notebook)`) : f.name,
        f.local ? null : h("div", { class: "lj-muted lj-detail-location" }, f.location)),
      h("td", { class: "lj-num" }, f.local || f.size ? formatSize(f.size) : ""),
      h("td", {}, f.modified ? formatTime(f.modified) : ""),
      h("td", { class: "lj-col-actions" },
        f.kind === "notebook" && f.local
          ? h("button", { class: "lj-btn-view", onclick: () => openNotebookView(this.app, run) }, "View") : null,
        f.downloadable ?? f.local
          ? h("button", { class: "lj-btn-download", onclick: () => void this.guard(() => download(run.id, f.name)) }, "Download") : null)));
    return h("div", {},
      h("table", { class: "lj-table lj-detail-files" },
        h("thead", {}, h("tr", {}, h("th", {}, "file"), h("th", {}, "size"), h("th", {}, "written"), h("th", {}, ""))),
        h("tbody", {}, rows)),
      this.files.truncated ? h("div", { class: "lj-muted" }, "only the first files are listed") : null,
      this.files.remote_error ? h("div", { class: "lj-muted lj-detail-remote-error" }, this.files.remote_error) : null);
  }

  timeline(run) {
    return h("ol", { class: "lj-detail-events" }, (run.events || []).map((e) => h("li", { "data-state": e.state },
      h("span", { class: "lj-muted" }, formatTime(e.time)), " ", h("span", { class: badgeClass(e.state) }, e.state),
      e.message ? h("span", { class: "lj-event-message" }, ` ${e.message}`) : null)));
  }

  async guard(fn) {
    try {
      this.showMessage("");
      await fn();
    } catch (err) {
      this.showMessage(err.message);
    }
  }

  async cancel() {
    const run = this.run;
    if (!(await askFirst("Cancel this run?", `Cancel ${run.name || run.id}? Work it has done so far is lost.`, "Cancel run"))) return;
    await this.guard(async () => {
      await request(`runs/${run.id}/cancel`, { method: "POST" });
      await this.load();
    });
  }

  async delete() {
    const run = this.run;
    if (!(await askFirst("Delete this run?", `Delete ${run.name || run.id} and its history? This cannot be undone.`, "Delete run"))) return;
    await this.guard(async () => {
      await request(`runs/${run.id}`, { method: "DELETE" }); // the Runs tabs hear it from the event stream
      this.gone = true;
      this.parent?.dispose?.(); // its tab closes: there is nothing left to show
    });
  }

  dispose() {
    this.unsubscribe?.();
    clearInterval(this.timer);
    if (this.pending) clearTimeout(this.pending);
    super.dispose();
  }
}

// The command that opens a run's page ({run_id}); the layout restorer reopens pages with it after a reload.
export const RUN_COMMAND = "launch-jupyter:open-run";

// Open a run's page (or bring its open one forward).
export function openRunDetail(app, runId) {
  const id = `launch-jupyter-run-${runId}`;
  const open = findInMain(app, id);
  if (open) {
    activateInMain(app, open);
    return open;
  }
  const content = new RunDetail(app, runId);
  const widget = new MainAreaWidget({ content });
  content.onTitle = (label) => {
    widget.title.label = `Run ${label}`;
  };
  widget.id = id;
  widget.title.label = `Run ${runId.slice(0, 8)}`;
  widget.title.caption = `launch_jupyter run ${runId}`;
  widget.title.closable = true;
  return showInMain(app, widget, treeUrl({ "launch-run": runId }));
}
