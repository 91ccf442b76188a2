// The Runs panel: every run of the store, live, in a JupyterLab tab that needs no kernel.
//
// It is the notebook's run board (js/run_board.js, the same module and CSS), driven by a model that
// speaks to the server extension instead of a kernel: the board's controls and buttons become REST
// calls (GET /launch/api/board, POST runs/ID/cancel, DELETE runs/ID, GET runs/ID/logs?tail=), and the
// server's event stream (GET /launch/api/events) refreshes the page as agents anywhere move runs. One
// UI, not two. Here a row's Details opens the run's own page (run_detail.js), and Cancel and Delete
// ask with JupyterLab's dialog.

import { MainAreaWidget } from "@jupyterlab/apputils";
import { ServerConnection } from "@jupyterlab/services";
import { Widget } from "@lumino/widgets";

import board from "../../run_board.js";
import { onRunEvents } from "./events.js";
import { request } from "./launch.js";
import { activateInMain, showInMain, treeUrl } from "./main_area.js";
import { RUN_COMMAND, askFirst } from "./run_detail.js";

const VIEW_KEYS = ["states", "queue_filter", "text", "sort", "descending", "page"];
const LOG_TAIL = 200;

// The part of an anywidget model the board uses (get, set, on/off, send), backed by REST.
export class RestBoardModel {
  constructor({ queue = "", limit = 50, openOutput, openDetail, confirm } = {}) {
    this.state = {
      queue, limit, rows: [], counts: {}, queues: [], total: 0, page: 0, states: [], queue_filter: "",
      text: "", sort: "created", descending: true, log_run: "", log_lines: [], open_request: {}, notice: "",
      error: "",
    };
    this.handlers = new Map();
    this.openOutput = openOutput;
    this.openDetail = openDetail; // the board shows a row's details on the run's own page when given
    this.confirm = confirm; // (question, accept label) => Promise<boolean>: the board asks with it
    this.loading = null;
    this.again = false;
  }

  get(key) {
    return this.state[key];
  }

  set(key, value) {
    this.state[key] = value;
    for (const fn of this.handlers.get(`change:${key}`) || []) fn();
  }

  save_changes() {}

  on(name, fn) {
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name).add(fn);
  }

  off(name, fn) {
    this.handlers.get(name)?.delete(fn);
  }

  // What the board's buttons send: {action, args}, the names of RunBoard's methods.
  send({ action, args = {} }) {
    void this.act(action, args);
  }

  async act(action, args) {
    this.set("notice", "");
    this.set("error", "");
    try {
      if (action === "set_view") {
        for (const key of Object.keys(args)) if (VIEW_KEYS.includes(key)) this.state[key] = args[key];
        if (!("page" in args)) this.state.page = 0;
        await this.refresh();
      } else if (action === "refresh") {
        await this.refresh();
      } else if (action === "cancel") {
        const run = await request(`runs/${args.run_id}/cancel`, { method: "POST" });
        this.set("notice", `cancel requested for ${run.id}`);
        await this.refresh();
      } else if (action === "delete") {
        const gone = await request(`runs/${args.run_id}`, { method: "DELETE" });
        this.set("notice", `deleted ${gone.name || gone.deleted}`);
        await this.refresh();
      } else if (action === "show_logs") {
        this.set("log_run", args.run_id);
        await this.loadLog();
      } else if (action === "hide_logs") {
        this.set("log_run", "");
        this.set("log_lines", []);
      } else if (action === "open_output") {
        this.openOutput?.(args.run_id);
      }
    } catch (err) {
      this.set("error", err.message);
    }
  }

  async loadLog() {
    const runId = this.state.log_run;
    if (!runId) return;
    const settings = ServerConnection.makeSettings();
    const url = `${settings.baseUrl}launch/api/runs/${runId}/logs?tail=${LOG_TAIL}`;
    const response = await ServerConnection.makeRequest(url, {}, settings);
    const text = await response.text();
    if (this.state.log_run === runId) this.set("log_lines", text.replace(/\n$/, "").split("\n"));
  }

  // One page from the server; calls that arrive while one is on its way collapse into one more.
  async refresh() {
    if (this.loading) {
      this.again = true;
      return this.loading;
    }
    const s = this.state;
    const params = {
      queue: s.queue || s.queue_filter, states: s.states.join(","), text: s.text, sort: s.sort,
      descending: s.descending ? "1" : "0", page: String(s.page), limit: String(s.limit),
    };
    this.loading = (async () => {
      try {
        const view = await request("board", { params });
        for (const key of ["counts", "queues", "total", "page", "rows"]) {
          this.state[key] = key === "queues" && s.queue_filter && !view.queues.includes(s.queue_filter)
            ? [...view.queues, s.queue_filter].sort() : view[key];
        }
        this.set("rows", this.state.rows); // the board redraws counts, filters, pager and table on this
        this.set("error", "");
        const open = s.log_run && view.rows.find((r) => r.id === s.log_run);
        if (open) await this.loadLog();
      } catch (err) {
        this.set("error", err.message);
      } finally {
        this.loading = null;
      }
      if (this.again) {
        this.again = false;
        await this.refresh();
      }
    })();
    return this.loading;
  }
}

// Live updates from the page's one event stream; bursts become one refresh.
export function followEvents(model) {
  let timer = null;
  const stop = onRunEvents(() => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      void model.refresh();
    }, 30); // the server sends a burst in one write: a few ms gather it into one refresh
  });
  return () => {
    stop();
    if (timer) clearTimeout(timer);
  };
}

export class RunsPanel extends Widget {
  constructor(app) {
    super();
    this.addClass("lj-runs-panel");
    this.model = new RestBoardModel({
      openOutput: (runId) => window.open(`${ServerConnection.makeSettings().baseUrl}launch/api/runs/${runId}/output?format=html`, "_blank"),
      // Through the command, so the page is tracked (and comes back after a reload).
      openDetail: (runId) => void app.commands.execute(RUN_COMMAND, { run_id: runId }),
      confirm: (title, body, accept) => askFirst(title, body, accept),
    });
    this.node.classList.add("lj-widget");
    this.cleanup = board.render({ model: this.model, el: this.node });
    this.stop = followEvents(this.model);
    void this.model.refresh();
    // The durations of runs not yet over move with the clock: the board redraws on its own timer.
    this.app = app;
  }

  dispose() {
    this.stop?.();
    if (typeof this.cleanup === "function") this.cleanup();
    super.dispose();
  }
}

let opened = null;

// Open the Runs tab (or bring the open one forward); null where it opens in another browser tab
// (Notebook 7, on a page other than /tree: main_area.js). `activate` false only adds it.
export function openRunsPanel(app, { activate = true } = {}) {
  if (opened && !opened.isDisposed) {
    if (activate) activateInMain(app, opened);
    return opened;
  }
  const widget = new MainAreaWidget({ content: new RunsPanel(app) });
  widget.id = "launch-jupyter-runs";
  widget.title.label = "Runs";
  widget.title.caption = "launch_jupyter: every run, live";
  widget.title.closable = true;
  opened = showInMain(app, widget, treeUrl({ launch: "runs" }), { activate });
  return opened;
}
