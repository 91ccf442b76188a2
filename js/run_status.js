// One line of live status for a submitted run.

import { act, bindText, confirmButton, h, openInLab, tickWhileConnected } from "./dom.js";
import { badgeClass, formatDuration, isTerminal, runDuration, vertexConsoleUrl } from "./format.js";

function render({ model, el }) {
  const badge = h("span");
  const id = h("code", { class: "lj-run-id" });
  const what = h("span");
  const duration = h("span", { class: "lj-muted lj-duration" });
  const message = h("span", { class: "lj-muted lj-message" });
  const link = h("a", { target: "_blank", rel: "noopener", class: "lj-console-link" }, "Vertex console");
  const cancel = confirmButton("Cancel", {
    cls: "lj-btn-cancel", question: () => `Cancel ${model.get("name") || model.get("run_id")}?`, yes: "Cancel run",
    no: "Keep running", onConfirm: () => act(model, "cancel"),
  });
  // How the line ends: the executed notebook and the log when it succeeded, the whole message when it failed.
  const open = h("button", { class: "lj-btn-open", onclick: () => act(model, "open_output") }, "Open notebook");
  const logs = h("button", { class: "lj-btn-logs", onclick: () => act(model, model.get("log_lines").length ? "hide_logs" : "show_logs") }, "Logs");
  const bar = h("progress", { class: "lj-progress", max: "1", value: "0" });
  const barLabel = h("span", { class: "lj-muted lj-progress-label" });
  const failure = h("div", { class: "lj-error lj-failure" });
  const note = h("div", { class: "lj-note" });
  const agent = h("span", { class: "lj-muted lj-agent" });
  const logBox = h("pre", { class: "lj-log" });
  const row = () => ({
    state: model.get("state"),
    created_at: model.get("created_at"),
    started_at: model.get("started_at"),
    finished_at: model.get("finished_at"),
  });
  const show = () => {
    const state = model.get("state");
    badge.className = badgeClass(state);
    badge.textContent = state;
    el.firstChild && (el.firstChild.dataset.state = state);
    id.textContent = model.get("run_id");
    what.textContent = `${model.get("name")} on ${model.get("queue")}`;
    const stage = model.get("stage");
    message.textContent = [stage && `stage ${stage}`, model.get("message")].filter(Boolean).join(": ");
    const url = vertexConsoleUrl(model.get("external_id"));
    link.hidden = !url;
    if (url) link.href = url;
    cancel.hidden = isTerminal(state);
    open.hidden = !(state === "succeeded" && model.get("output_notebook"));
    logs.hidden = !isTerminal(state);
    logs.textContent = model.get("log_lines").length ? "Hide logs" : "Logs";
    message.hidden = state === "failed";
    failure.hidden = state !== "failed";
    failure.textContent = state === "failed" ? [stage && `failed at stage ${stage}`, model.get("message")].filter(Boolean).join(": ") : "";
    note.textContent = model.get("note") ? `⚠ ${model.get("note")}: this run waits until one starts` : "";
    note.hidden = !model.get("note");
    agent.textContent = model.get("agent_id") && !isTerminal(state) ? `on ${model.get("agent_id")}` : "";
    logBox.hidden = !model.get("log_lines").length;
    logBox.textContent = model.get("log_lines").join("\n");
    duration.textContent = formatDuration(runDuration(row(), Date.now() / 1000));
    showProgress();
  };
  // The running cell (issue 19): a bar of cells done, "cell i/n: first line (elapsed)".
  const showProgress = () => {
    const p = model.get("progress") || {};
    const running = model.get("state") === "running" && p.total;
    bar.hidden = barLabel.hidden = !running;
    if (!running) return;
    bar.value = Math.max(0, Math.min(1, (p.cell - 1) / p.total));
    const elapsed = formatDuration(Math.max(0, Date.now() / 1000 - p.cell_started_at));
    barLabel.textContent = `cell ${p.cell}/${p.total}${p.source ? `: ${p.source}` : ""} (${elapsed})`;
  };
  model.on("change:open_request", () => {
    const req = model.get("open_request");
    if (req?.path) openInLab(req.path);
  });
  for (const trait of ["state", "stage", "message", "external_id", "name", "queue", "started_at", "finished_at",
    "output_notebook", "log_lines", "note", "agent_id", "progress"]) {
    model.on(`change:${trait}`, show);
  }
  const error = h("span", { class: "lj-error" });
  bindText(model, "error", error);
  const root = h("div", { class: "lj-widget lj-run-status" },
    h("div", { class: "lj-status-line" }, badge, id, what, agent, duration, bar, barLabel, message, link, open, logs, cancel),
    note, failure, logBox, error);
  el.replaceChildren(root);
  show();
  // The duration moves with the clock while the run goes on, and stops when the kernel is gone.
  return tickWhileConnected(model, root, el, () => {
    if (!isTerminal(model.get("state"))) duration.textContent = formatDuration(runDuration(row(), Date.now() / 1000));
    showProgress();
  });
}

export default { render };
