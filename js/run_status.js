// One line of live status for a submitted run.

import { act, bindText, h } from "./dom.js";
import { badgeClass, formatDuration, isTerminal, runDuration, vertexConsoleUrl } from "./format.js";

function render({ model, el }) {
  const badge = h("span");
  const id = h("code", { class: "lj-run-id" });
  const what = h("span");
  const duration = h("span", { class: "lj-muted lj-duration" });
  const message = h("span", { class: "lj-muted lj-message" });
  const link = h("a", { target: "_blank", rel: "noopener", class: "lj-console-link" }, "Vertex console");
  const cancel = h("button", { class: "lj-btn-cancel", onclick: () => act(model, "cancel") }, "Cancel");
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
    duration.textContent = formatDuration(runDuration(row(), Date.now() / 1000));
  };
  for (const trait of ["state", "stage", "message", "external_id", "name", "queue", "started_at", "finished_at"]) {
    model.on(`change:${trait}`, show);
  }
  const tick = setInterval(() => {
    if (!isTerminal(model.get("state"))) duration.textContent = formatDuration(runDuration(row(), Date.now() / 1000));
  }, 1000);
  const error = h("span", { class: "lj-error" });
  bindText(model, "error", error);
  el.replaceChildren(h("div", { class: "lj-widget lj-status-line" }, badge, id, what, duration, message, link, cancel, error));
  show();
  return () => clearInterval(tick);
}

export default { render };
