// The agent panel: start/stop the in-kernel agent, its queues, max_jobs, capacity in use
// and what it is doing now.

import { act, bindText, h, watchConnection } from "./dom.js";
import { badgeClass } from "./format.js";

function render({ model, el }) {
  const state = h("span", { class: "lj-agent-state" });
  const capacity = h("span", { class: "lj-agent-capacity" });
  const activity = h("span", { class: "lj-agent-activity lj-muted" });
  const queues = h("span", { class: "lj-agent-queues" });
  const choose = h("select", { name: "queues", multiple: true, size: 3, title: "queues to serve (choose at least one)" });
  const maxJobs = h("input", { name: "max_jobs", type: "number", min: "-1", step: "1", value: model.get("max_jobs") });
  const start = h("button", { class: "lj-btn-start lj-primary", onclick: () => act(model, "start") }, "Start agent");
  const stop = h("button", { class: "lj-btn-stop", onclick: () => act(model, "stop") }, "Stop agent");
  const runs = h("ul", { class: "lj-agent-runs" });
  const busy = h("span", { class: "lj-busy", hidden: true }, h("span", { class: "lj-spinner" }), " ", h("span", { class: "lj-busy-text" }));

  choose.addEventListener("change", () => {
    model.set("chosen_queues", [...choose.selectedOptions].map((o) => o.value));
    model.save_changes();
  });
  maxJobs.addEventListener("change", () => {
    model.set("max_jobs", Number.parseInt(maxJobs.value, 10) || 1);
    model.save_changes();
  });

  const show = () => {
    const state_ = model.get("state");
    const running = state_ !== "stopped";
    const starting = state_ === "starting";
    busy.hidden = !starting;
    busy.lastChild.textContent = starting ? model.get("activity") || "checking the queues…" : "";
    state.className = badgeClass(running ? "running" : "cancelled");
    state.textContent = model.get("state");
    const cap = model.get("capacity");
    capacity.textContent = running ? `${model.get("active")} / ${cap === -1 ? "∞" : cap} jobs in use` : "";
    activity.textContent = running ? model.get("activity") : "";
    queues.textContent = running ? `serving ${model.get("queues").join(", ")}` : "";
    const chosen = new Set(model.get("chosen_queues"));
    const served = new Set(running ? model.get("queues") : []);
    choose.replaceChildren(...model.get("available_queues").map((q) =>
      h("option", { value: q, selected: chosen.has(q), class: served.has(q) ? "lj-served" : "" }, served.has(q) ? `${q} ✓ serving` : q)));
    choose.disabled = running;
    maxJobs.disabled = running;
    if (String(model.get("max_jobs")) !== maxJobs.value) maxJobs.value = model.get("max_jobs");
    start.disabled = running || chosen.size === 0;
    start.title = chosen.size === 0 ? "choose the queues to serve first" : "";
    stop.disabled = !running;
    runs.replaceChildren(...Object.entries(model.get("runs")).map(([id, r]) =>
      h("li", {}, h("code", {}, id.slice(0, 8)), " ", h("span", { class: badgeClass(r.state) }, r.state), ` ${r.phase ?? ""} on ${r.queue}`)));
  };
  for (const trait of ["state", "capacity", "active", "activity", "queues", "available_queues", "chosen_queues", "max_jobs", "runs"]) {
    model.on(`change:${trait}`, show);
  }
  const error = h("div", { class: "lj-error" });
  const notice = h("div", { class: "lj-notice" });
  bindText(model, "error", error);
  bindText(model, "notice", notice);
  const root = h("div", { class: "lj-widget lj-agent" },
    h("div", { class: "lj-fields" }, h("strong", {}, "Agent"), state, capacity, queues, activity),
    h("div", { class: "lj-fields" }, h("label", {}, "Queues", choose), h("label", {}, "max_jobs", maxJobs), start, stop, busy),
    runs, error, notice);
  el.replaceChildren(root);
  show();
  return watchConnection(model, root, () => {}, el);
}

export default { render };
