// The compact Runs sidebar: the newest runs of the store in a side panel (state badge, name, queue,
// age; counts per state at the top), live from the page's one event stream. It is driven by the Runs
// tab's RestBoardModel (the same REST client and event follower), only drawn small: a click on a run
// opens its page, a button opens the full Runs tab. No kernel is needed.

import { Widget } from "@lumino/widgets";

import { h } from "../../dom.js";
import { STATE_ORDER, badgeClass } from "../../format.js";
import { RUN_COMMAND } from "./run_detail.js";
import { RestBoardModel, followEvents } from "./runs_panel.js";

export const SIDEBAR_ID = "launch-jupyter-runs-sidebar";
const NEWEST = 20;

/** "5s", "3m", "2h", "4d": how long ago the unix time `ts` (seconds) was. */
export function age(ts, now = Date.now() / 1000) {
  const s = Math.max(0, Math.round(now - (ts || now)));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export class RunsSidebar extends Widget {
  constructor(app, runsCommand) {
    super();
    this.id = SIDEBAR_ID;
    this.addClass("lj-widget");
    this.addClass("lj-runs-sidebar");
    this.title.caption = "Launch runs";
    this.title.label = "Runs";
    this.title.iconClass = "lj-sidebar-icon";
    this.app = app;
    this.runsCommand = runsCommand;
    this.model = new RestBoardModel({ limit: NEWEST });
    this.redraw = () => this.draw();
    for (const key of ["rows", "error"]) this.model.on(`change:${key}`, this.redraw);
    this.stop = followEvents(this.model);
    this.draw();
    void this.model.refresh();
  }

  draw() {
    const { rows, counts, total, error } = this.model.state;
    const open = (runId) => void this.app.commands.execute(RUN_COMMAND, { run_id: runId });
    const head = h("div", { class: "lj-sidebar-head" },
      h("span", { class: "lj-sidebar-total" }, `${total} runs`),
      h("button", { class: "lj-btn lj-sidebar-all", onclick: () => void this.app.commands.execute(this.runsCommand) }, "All runs"));
    const countLine = h("div", { class: "lj-counts lj-sidebar-counts" },
      STATE_ORDER.filter((s) => counts?.[s]).map((s) => h("span", { class: "lj-count" }, h("span", { class: badgeClass(s) }, s), ` ${counts[s]}`)));
    const list = h("ul", { class: "lj-sidebar-runs" },
      rows.map((row) => h("li", {
        class: "lj-sidebar-run", "data-run-id": row.id, title: row.message || row.id, tabindex: "0",
        onclick: () => open(row.id), onkeydown: (e) => { if (e.key === "Enter") open(row.id); },
      },
      h("span", { class: badgeClass(row.state) }, row.state),
      h("span", { class: "lj-sidebar-name" }, row.name || row.id),
      h("span", { class: "lj-sidebar-queue" }, row.queue),
      h("span", { class: "lj-sidebar-age" }, age(row.created_at)))));
    const children = [head, countLine];
    if (error) children.push(h("div", { class: "lj-error" }, error));
    children.push(rows.length ? list : h("div", { class: "lj-empty" }, "no runs yet"));
    this.node.replaceChildren(...children);
  }

  dispose() {
    this.stop?.();
    super.dispose();
  }
}

// Put the sidebar in the shell's left area where the shell has one (JupyterLab; Notebook 7's
// side panels too); a shell without side areas simply has no sidebar (the Runs tab still opens).
export function addRunsSidebar(app, runsCommand) {
  const widget = new RunsSidebar(app, runsCommand);
  try {
    app.shell.add(widget, "left", { rank: 950 });
  } catch (err) {
    console.warn("launch_jupyter: no side area for the Runs sidebar", err);
    widget.dispose();
    return null;
  }
  return widget;
}
