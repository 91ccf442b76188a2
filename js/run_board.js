// The run board: a live table of runs updated row by row (never re-rendered whole, so no
// flicker), a timeline of each run's states, and a log tail.

import { act, bindText, h, openInLab } from "./dom.js";
import {
  badgeClass, diffRows, formatDuration, formatTime, isTerminal, runDuration, timelineBars,
  vertexConsoleUrl,
} from "./format.js";

const COLUMNS = ["run", "state", "queue", "author", "priority", "created", "duration", "stage", "links", ""];

function cells(model, row, now) {
  const consoleUrl = vertexConsoleUrl(row.external_id);
  const links = [];
  if (consoleUrl) links.push(h("a", { href: consoleUrl, target: "_blank", rel: "noopener", class: "lj-console-link" }, "Vertex console"));
  if (row.output_notebook) {
    links.push(h("button", { class: "lj-btn-open", title: row.output_notebook, onclick: () => act(model, "open_output", { run_id: row.id }) }, "Open notebook"));
  }
  const cancellable = !isTerminal(row.state) && !row.cancel_requested;
  return [
    h("td", { title: row.id }, h("code", {}, row.id.slice(0, 8)), " ", row.name),
    h("td", {}, h("span", { class: badgeClass(row.state), title: row.message }, row.state)),
    h("td", {}, row.queue),
    h("td", {}, row.author),
    h("td", {}, row.priority),
    h("td", {}, formatTime(row.created_at)),
    h("td", { class: "lj-duration" }, formatDuration(runDuration(row, now))),
    h("td", { title: row.message }, row.stage),
    h("td", {}, links),
    h("td", {},
      h("button", { class: "lj-btn-cancel", disabled: !cancellable, onclick: () => act(model, "cancel", { run_id: row.id }) }, "Cancel"),
      h("button", { class: "lj-btn-logs", onclick: () => act(model, "show_logs", { run_id: row.id }) }, "Logs")),
  ];
}

function render({ model, el }) {
  const tbody = h("tbody");
  const trs = new Map();
  let shown = [];
  const now = () => Date.now() / 1000;

  const fill = (tr, row) => {
    tr.dataset.runId = row.id;
    tr.dataset.state = row.state;
    tr.replaceChildren(...cells(model, row, now()));
  };
  const showRows = () => {
    const next = model.get("rows");
    const diff = diffRows(shown, next);
    for (const id of diff.removed) {
      trs.get(id)?.remove();
      trs.delete(id);
    }
    for (const row of [...diff.added, ...diff.changed]) {
      const tr = trs.get(row.id) ?? h("tr", { class: "lj-run" });
      fill(tr, row);
      trs.set(row.id, tr);
    }
    // Re-insert only rows out of place (appending an element moves it).
    diff.order.forEach((id, i) => {
      const tr = trs.get(id);
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] ?? null);
    });
    empty.hidden = next.length > 0;
    shown = next;
    drawTimeline();
  };

  // The timeline: one bar per run, a segment per state, on one time scale.
  const timeline = h("div", { class: "lj-timeline" });
  const drawTimeline = () => {
    const rows = shown.filter((r) => r.events?.length);
    const width = 100; // percent
    const { bars, start, end } = timelineBars(rows, width, now());
    const labels = new Map(rows.map((r) => [r.id, `${r.id.slice(0, 8)} ${r.name}`]));
    timeline.replaceChildren(
      ...(bars.length ? [h("div", { class: "lj-muted" }, `timeline ${formatTime(start)} – ${formatTime(end)}`)] : []),
      ...bars.map((bar) => h("div", { class: "lj-timeline-entry", "data-run-id": bar.id },
        h("span", { class: "lj-timeline-label" }, labels.get(bar.id)),
        h("div", { class: "lj-timeline-row" },
          bar.segments.map((s) => h("span", { class: badgeClass(s.state), title: s.state, style: `left:${s.x}%;width:${s.w}%` }))))),
    );
  };

  // Durations of running rows and the timeline's open ends move with the clock.
  const tick = setInterval(() => {
    for (const row of shown) {
      if (isTerminal(row.state)) continue;
      const td = trs.get(row.id)?.querySelector(".lj-duration");
      if (td) td.textContent = formatDuration(runDuration(row, now()));
    }
    if (shown.some((r) => !isTerminal(r.state))) drawTimeline();
  }, 1000);

  const logTitle = h("div", { class: "lj-muted" });
  const logPre = h("pre", { class: "lj-log" });
  const logBox = h("div", { class: "lj-log-box" }, logTitle, logPre,
    h("button", { class: "lj-btn-hide-logs", onclick: () => act(model, "hide_logs") }, "Hide logs"));
  const showLog = () => {
    const run = model.get("log_run");
    logBox.hidden = !run;
    logTitle.textContent = run ? `log of ${run}` : "";
    const atBottom = logPre.scrollTop + logPre.clientHeight >= logPre.scrollHeight - 4;
    logPre.textContent = model.get("log_lines").join("\n");
    if (atBottom) logPre.scrollTop = logPre.scrollHeight; // follow the tail unless the user scrolled up
  };
  model.on("change:log_run", showLog);
  model.on("change:log_lines", showLog);

  model.on("change:open_request", () => {
    const req = model.get("open_request");
    if (req?.path) openInLab(req.path);
  });

  const error = h("div", { class: "lj-error" });
  const notice = h("div", { class: "lj-notice" });
  bindText(model, "error", error);
  bindText(model, "notice", notice);

  const empty = h("div", { class: "lj-muted lj-empty" }, "no runs yet");
  const title = h("strong", {}, model.get("queue") ? `Runs of ${model.get("queue")}` : "Runs");
  el.replaceChildren(h("div", { class: "lj-widget lj-board" },
    h("div", { class: "lj-actions" }, title, " ",
      h("button", { class: "lj-btn-refresh", onclick: () => act(model, "refresh") }, "Refresh")),
    h("table", { class: "lj-table lj-runs" }, h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", {}, c)))), tbody),
    empty, timeline, error, notice, logBox));
  model.on("change:rows", showRows);
  showRows();
  showLog();
  return () => {
    clearInterval(tick);
    model.off("change:rows", showRows);
  };
}

export default { render };
