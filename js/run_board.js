// The run board: counts per state, filters (state, queue, text), sort, paging, a table that fits
// its cell (failure messages in the row, logs and details right under their row), and a bounded
// timeline with an axis and a legend. The kernel pages, filters and sorts (RunBoard.set_view).

import { act, bindText, confirmButton, debounce, h, openInLab, tickWhileConnected } from "./dom.js";
import {
  STATE_ORDER, axisTicks, badgeClass, formatDuration, formatTime, isTerminal, runTimes, timelineBars,
  vertexConsoleUrl,
} from "./format.js";

// [label, sort key (null: not sortable), css class]
const COLUMNS = [
  ["run", "name", "lj-col-run"], ["state", "state", "lj-col-state"], ["queue", "queue", "lj-col-queue"],
  ["author · agent", "author", "lj-col-who"], ["created", "created", "lj-col-created"],
  ["waited", null, "lj-col-waited"], ["ran", "started", "lj-col-ran"], ["", null, "lj-col-actions"],
];

export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

// A button for what cannot be undone (Cancel, Delete): JupyterLab's dialog where the host gives one
// (model.confirm, the Runs tab), else the inline "sure? [yes] [no]" (the notebook widget).
function askingButton(model, label, { cls, question, yes, no, action, runId }) {
  if (typeof model.confirm !== "function") {
    return confirmButton(label, { cls, question, yes, no, onConfirm: () => act(model, action, { run_id: runId }) });
  }
  const button = h("button", { class: cls, onclick: async () => {
    if (await model.confirm(`${yes}?`, question, yes)) act(model, action, { run_id: runId });
  } }, label);
  button.button = button;
  return button;
}

function durations(row, now) {
  const { waited, ran } = runTimes(row, now);
  return { waited: formatDuration(waited), ran: ran === null ? "–" : formatDuration(ran) };
}

function render({ model, el }) {
  const now = () => Date.now() / 1000;
  const setView = (view) => act(model, "set_view", view);
  const expanded = new Set(); // run ids whose failure message is shown whole
  let detailsOf = ""; // the run whose details are open under its row

  // ---- the header: counts per state (click: filter), queue, text, refresh
  const counts = h("div", { class: "lj-counts" });
  const showCounts = () => {
    const c = model.get("counts");
    const chosen = new Set(model.get("states"));
    const all = Object.values(c).reduce((a, b) => a + b, 0);
    const chip = (state, n, label) => h("button", {
      class: `lj-count ${chosen.has(state) || (state === "" && chosen.size === 0) ? "lj-count-on" : ""}`,
      "data-state": state, title: state ? `show only ${state} runs (click again: all)` : "every state",
      onclick: () => setView({ states: state === "" || chosen.has(state) ? [] : [state] }),
    }, state ? h("span", { class: badgeClass(state) }, label) : label, ` ${n}`);
    counts.replaceChildren(chip("", all, "all"),
      ...STATE_ORDER.filter((s) => c[s]).map((s) => chip(s, c[s], s)));
  };
  const queueSelect = h("select", { name: "queue_filter", title: "queue" });
  const showQueues = () => {
    const current = model.get("queue_filter");
    queueSelect.replaceChildren(h("option", { value: "" }, "every queue"),
      ...model.get("queues").map((q) => h("option", { value: q, selected: q === current }, q)));
    queueSelect.value = current;
    queueSelect.hidden = Boolean(model.get("queue"));
  };
  queueSelect.addEventListener("change", () => setView({ queue_filter: queueSelect.value }));
  const search = h("input", { name: "text", type: "search", placeholder: "filter: name, id, author, message", value: model.get("text") });
  const sendSearch = debounce(() => setView({ text: search.value }), 250);
  search.addEventListener("input", sendSearch);
  search.addEventListener("keydown", (ev) => ev.key === "Enter" && setView({ text: search.value }));

  // ---- the table
  const headRow = h("tr");
  const showHead = () => {
    const sort = model.get("sort");
    const desc = model.get("descending");
    headRow.replaceChildren(...COLUMNS.map(([label, key, cls]) => {
      if (!key) return h("th", { class: cls }, label);
      const on = key === sort;
      return h("th", { class: `${cls} lj-sortable`, "data-sort": key, "aria-sort": on ? (desc ? "descending" : "ascending") : "none",
        onclick: () => setView({ sort: key, descending: on ? !desc : key === "created" }) },
        label, on ? (desc ? " ▼" : " ▲") : "");
    }));
  };
  const tbody = h("tbody");
  const table = h("table", { class: "lj-table lj-runs" },
    h("colgroup", {}, COLUMNS.map(([, , cls]) => h("col", { class: cls }))), h("thead", {}, headRow), tbody);

  const logBox = (runId) => {
    const pre = h("pre", { class: "lj-log" });
    const box = h("div", { class: "lj-log-box", "data-run-id": runId },
      h("div", { class: "lj-muted" }, `log of ${runId}`), pre,
      h("button", { class: "lj-btn-hide-logs", onclick: () => act(model, "hide_logs") }, "Hide logs"));
    box.fill = () => {
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = model.get("log_lines").join("\n") || "(the log is empty)";
      if (atBottom) pre.scrollTop = pre.scrollHeight; // follow the tail unless the user scrolled up
    };
    box.fill();
    return box;
  };

  const filesOf = (row) => {
    if (model.get("files_run") !== row.id) return h("div", { class: "lj-muted" }, "reading its files…");
    const files = model.get("files") ?? [];
    if (!files.length) return h("div", { class: "lj-muted lj-files-none" }, "no files written here");
    return h("ul", { class: "lj-files" }, files.map((f) => h("li", { "data-name": f.name },
      f.kind === "notebook" ? h("strong", {}, f.name) : f.name,
      f.local ? h("span", { class: "lj-muted" }, ` ${formatSize(f.size)} `) : h("span", { class: "lj-muted" }, ` ${f.location} `),
      f.local ? h("button", { class: "lj-btn-open-file", title: "copy it beside this notebook (launch-outputs/) and open it",
        onclick: () => act(model, "open_file", { run_id: row.id, name: f.name }) }, "Open") : null)));
  };

  const details = (row) => h("dl", { class: "lj-details" },
    ...[["id", row.id], ["resource", row.resource], ["priority", row.priority], ["stage", row.stage],
      ["external id", row.external_id], ["agent", row.agent || row.agent_id], ["output", row.output_notebook],
      ["started", formatTime(row.started_at)], ["finished", formatTime(row.finished_at)]]
      .filter(([, v]) => v).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    h("dt", {}, "history"),
    h("dd", {}, (row.events ?? []).map((e) => `${formatTime(e.time)} ${e.state}`).join(" → ")),
    isTerminal(row.state) ? [h("dt", {}, "files"), h("dd", { class: "lj-details-files" }, filesOf(row))] : null);

  const rowsFor = (row) => {
    const t = durations(row, now());
    const consoleUrl = vertexConsoleUrl(row.external_id);
    const cancellable = !isTerminal(row.state) && !row.cancel_requested;
    const cancel = askingButton(model, "Cancel", {
      cls: "lj-btn-cancel", question: `Cancel ${row.name || row.id}? Work it has done so far is lost.`, yes: "Cancel run",
      no: "Keep running", action: "cancel", runId: row.id,
    });
    cancel.button.disabled = !cancellable;
    const remove = isTerminal(row.state) ? askingButton(model, "Delete", {
      cls: "lj-btn-delete", question: `Delete ${row.name || row.id} and its history? This cannot be undone.`,
      yes: "Delete run", no: "Keep", action: "delete", runId: row.id,
    }) : null;
    const showDetails = () => {
      if (typeof model.openDetail === "function") {
        model.openDetail(row.id); // the Runs tab: the run's own page
        return;
      }
      detailsOf = detailsOf === row.id ? "" : row.id;
      if (detailsOf && isTerminal(row.state)) act(model, "show_files", { run_id: row.id });
      showRows();
    };
    const logsOpen = model.get("log_run") === row.id;
    const actions = [
      h("button", { class: "lj-btn-logs", onclick: () => act(model, logsOpen ? "hide_logs" : "show_logs", logsOpen ? {} : { run_id: row.id }) }, logsOpen ? "Hide logs" : "Logs"),
      h("button", { class: "lj-btn-details", onclick: showDetails }, "Details"),
      row.output_notebook && row.state === "succeeded"
        ? h("button", { class: "lj-btn-open", title: row.output_notebook, onclick: () => act(model, "open_output", { run_id: row.id }) }, "Open") : null,
      consoleUrl ? h("a", { href: consoleUrl, target: "_blank", rel: "noopener", class: "lj-console-link" }, "Vertex") : null,
      cancellable || !isTerminal(row.state) ? cancel : null,
      remove,
    ];
    const main = h("tr", { class: "lj-run", "data-run-id": row.id, "data-state": row.state },
      h("td", { class: "lj-col-run", title: `${row.id} ${row.name}` }, h("code", {}, row.id.slice(0, 8)), " ", row.name),
      h("td", { class: "lj-col-state" }, h("span", { class: badgeClass(row.state) }, row.state),
        row.stage && !isTerminal(row.state) ? h("span", { class: "lj-muted" }, ` ${row.stage}`) : null,
        row.note ? h("span", { class: "lj-note lj-note-mark", title: row.note }, " ⚠ no agent") : null),
      h("td", { class: "lj-col-queue", title: `${row.entity}/${row.queue}` }, row.queue),
      h("td", { class: "lj-col-who", title: row.agent || "" }, row.author, row.agent ? h("span", { class: "lj-muted lj-agent" }, ` · ${row.agent}`) : null),
      h("td", { class: "lj-col-created", title: new Date(row.created_at * 1000).toString() }, formatTime(row.created_at)),
      h("td", { class: "lj-col-waited lj-waited" }, t.waited),
      h("td", { class: "lj-col-ran lj-ran" }, t.ran),
      h("td", { class: "lj-col-actions" }, actions));
    const out = [main];
    const span = COLUMNS.length;
    // The failure message in the row itself: one line, click to see it whole.
    if (row.state === "failed" && row.message) {
      const whole = expanded.has(row.id);
      out.push(h("tr", { class: "lj-run-extra", "data-run-id": row.id },
        h("td", { colspan: span },
          h("div", { class: `lj-failure-line ${whole ? "lj-expanded" : ""}`, title: whole ? "" : "click to see it whole",
            onclick: () => { whole ? expanded.delete(row.id) : expanded.add(row.id); showRows(); } },
          row.stage ? `failed at stage ${row.stage}: ` : "", row.message))));
    }
    if (detailsOf === row.id) {
      out.push(h("tr", { class: "lj-run-extra lj-run-details", "data-run-id": row.id }, h("td", { colspan: span }, details(row))));
    }
    if (logsOpen) {
      const box = logBox(row.id);
      liveLog = box;
      out.push(h("tr", { class: "lj-run-extra lj-run-log", "data-run-id": row.id }, h("td", { colspan: span }, box)));
    }
    return out;
  };

  let liveLog = null;
  const notes = h("div", { class: "lj-notes" });
  const empty = h("div", { class: "lj-muted lj-empty" }, "no runs yet");
  const showRows = () => {
    liveLog = null;
    const rows = model.get("rows");
    tbody.replaceChildren(...rows.flatMap(rowsFor));
    // Queues nobody serves, said once above the table (each queued row there is marked too).
    const unserved = [...new Set(rows.map((r) => r.note).filter(Boolean))];
    notes.replaceChildren(...unserved.map((n) => h("div", { class: "lj-note" }, `⚠ ${n}: its queued runs wait`)));
    empty.hidden = rows.length > 0;
    empty.textContent = model.get("total") === 0 && Object.keys(model.get("counts")).length ? "no runs match" : "no runs yet";
    showPager();
    drawTimeline();
  };

  // ---- paging
  const pager = h("div", { class: "lj-pager" });
  const showPager = () => {
    const total = model.get("total");
    const size = model.get("limit");
    const page = model.get("page");
    const pages = Math.max(1, Math.ceil(total / size));
    const first = total ? page * size + 1 : 0;
    const last = Math.min(total, (page + 1) * size);
    pager.replaceChildren(
      h("button", { class: "lj-btn-prev", disabled: page <= 0, onclick: () => setView({ page: page - 1 }) }, "‹ Prev"),
      h("span", { class: "lj-page-info" }, `${first}–${last} of ${total} runs · page ${page + 1} of ${pages}`),
      h("button", { class: "lj-btn-next", disabled: page >= pages - 1, onclick: () => setView({ page: page + 1 }) }, "Next ›"));
  };

  // ---- the timeline of the page's runs: bounded height, a time axis and a legend
  const timeline = h("div", { class: "lj-timeline" });
  const drawTimeline = () => {
    const rows = model.get("rows").filter((r) => r.events?.length);
    if (!rows.length) {
      timeline.replaceChildren();
      return;
    }
    const { bars, start, end } = timelineBars(rows, 100, now());
    const labels = new Map(rows.map((r) => [r.id, `${r.id.slice(0, 8)} ${r.name}`]));
    const states = new Set(rows.flatMap((r) => r.events.map((e) => e.state)));
    timeline.replaceChildren(
      h("div", { class: "lj-legend" }, STATE_ORDER.filter((s) => states.has(s)).map((s) => h("span", { class: badgeClass(s) }, s))),
      h("div", { class: "lj-timeline-body" },
        bars.map((bar) => h("div", { class: "lj-timeline-entry", "data-run-id": bar.id },
          h("span", { class: "lj-timeline-label", title: labels.get(bar.id) }, labels.get(bar.id)),
          h("div", { class: "lj-timeline-row" },
            bar.segments.map((s) => h("span", { class: badgeClass(s.state), title: s.state, style: `left:${Math.min(s.x, 99)}%;width:${Math.min(s.w, 100 - Math.min(s.x, 99))}%` })))))),
      h("div", { class: "lj-axis" }, axisTicks(start, end).map((t) =>
        h("span", { class: "lj-tick", style: `left:${t.x}%` }, formatTime(t.t)))),
    );
  };

  // Waiting and running durations move with the clock while a run is not over.
  const tick = () => {
    for (const row of model.get("rows")) {
      if (isTerminal(row.state)) continue;
      const tr = tbody.querySelector(`tr.lj-run[data-run-id="${row.id}"]`);
      if (!tr) continue;
      const t = durations(row, now());
      tr.querySelector(".lj-waited").textContent = t.waited;
      tr.querySelector(".lj-ran").textContent = t.ran;
    }
  };

  model.on("change:open_request", () => {
    const req = model.get("open_request");
    if (req?.path) openInLab(req.path);
  });

  const error = h("div", { class: "lj-error" });
  const notice = h("div", { class: "lj-notice" });
  bindText(model, "error", error);
  bindText(model, "notice", notice);

  const title = h("strong", {}, model.get("queue") ? `Runs of ${model.get("queue")}` : "Runs");
  const root = h("div", { class: "lj-widget lj-board" },
    h("div", { class: "lj-board-head" }, title, counts),
    h("div", { class: "lj-board-filters" }, queueSelect, search,
      h("button", { class: "lj-btn-refresh", onclick: () => act(model, "refresh") }, "Refresh")),
    notes, table, empty, pager, error, notice, timeline);
  el.replaceChildren(root);

  const all = () => {
    showCounts();
    showQueues();
    showHead();
    showRows();
  };
  const traits = ["rows", "counts", "queues", "total", "page", "states", "sort", "descending", "queue_filter", "log_run",
    "files"];
  for (const t of traits) model.on(`change:${t}`, all);
  const onLog = () => liveLog?.fill();
  model.on("change:log_lines", onLog);
  model.on("change:text", () => { if (document.activeElement !== search) search.value = model.get("text"); });
  all();
  const stop = tickWhileConnected(model, root, el, tick);
  return () => {
    stop();
    for (const t of traits) model.off(`change:${t}`, all);
    model.off("change:log_lines", onLog);
  };
}

export default { render };
