// The sweep board: a sweep's runs side by side (state, parameters, recorded values, duration),
// sortable by any column header, the best row marked, and the kernel-drawn plot (an SVG from
// matplotlib) of a recorded value against one or two parameters.

import { act, bindText, h } from "./dom.js";
import { badgeClass, formatDuration } from "./format.js";

function cellText(value) {
  if (value === null || value === undefined) return "-";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
  return typeof value === "string" ? value : JSON.stringify(value);
}

function header(model, key, label) {
  const sort = model.get("sort");
  const arrow = sort === key ? " ▲" : sort === `-${key}` ? " ▼" : "";
  // First click sorts highest first (what "best accuracy" means), the next lowest first.
  const next = sort === `-${key}` ? key : `-${key}`;
  return h("th", { class: "lj-sortable", title: `sort by ${label}`, onclick: () => act(model, "sort_by", { key: next }) },
    label + arrow);
}

function select(options, value, onchange, blank) {
  const el = h("select", { onchange: (e) => onchange(e.target.value) },
    blank === undefined ? [] : [h("option", { value: "" }, blank)],
    options.map((o) => h("option", { value: o, selected: o === value }, o)));
  el.value = value;
  return el;
}

function render({ model, el }) {
  const title = h("div", { class: "lj-sweep-title" });
  const table = h("table", { class: "lj-table lj-sweep-table" });
  const controls = h("div", { class: "lj-sweep-controls" });
  const plot = h("div", { class: "lj-sweep-plot" });
  const error = h("div", { class: "lj-error" });
  const notice = h("div", { class: "lj-notice" });

  const showTitle = () => {
    const s = model.get("sweep");
    if (!s || !s.id) {
      title.replaceChildren(h("b", {}, "runs compared"));
      return;
    }
    const cancel = h("button", { class: "lj-btn-cancel", disabled: s.cancelled || s.done >= s.total,
      onclick: () => act(model, "cancel_sweep") }, "Cancel sweep");
    title.replaceChildren(h("b", {}, s.name), " ", h("code", {}, s.id), ` on ${s.queue}: `,
      h("span", { class: "lj-progress" }, `${s.done}/${s.total} done`),
      s.max_parallel ? ` (at most ${s.max_parallel} at a time)` : "", " ", cancel);
  };
  const showTable = () => {
    const params = model.get("parameters");
    const values = model.get("values");
    const best = model.get("best");
    const head = h("tr", {}, h("th", {}, ""), h("th", {}, "run"), header(model, "state", "state"),
      params.map((p) => header(model, p, p)), values.map((v) => header(model, v, v)), h("th", {}, "duration"));
    const body = model.get("rows").map((row) => h("tr", {
      class: row.id === best ? "lj-run lj-best" : "lj-run", "data-run-id": row.id, "data-state": row.state,
    },
      h("td", { title: row.id === best ? "best" : "" }, row.id === best ? "★" : ""),
      h("td", { title: row.id }, h("code", {}, row.id.slice(0, 8))),
      h("td", {}, h("span", { class: badgeClass(row.state), title: row.message }, row.state)),
      params.map((p) => h("td", { class: "lj-param" }, cellText(row.parameters[p]))),
      values.map((v) => h("td", { class: "lj-value", title: row.errors[v] ?? "" },
        row.errors[v] ? "not kept" : cellText(row.values[v]))),
      h("td", { class: "lj-duration" }, row.duration === null ? "-" : formatDuration(row.duration))));
    table.replaceChildren(h("thead", {}, head), h("tbody", {}, body));
  };
  const showControls = () => {
    const values = model.get("values");
    const params = model.get("parameters");
    if (!values.length) {
      controls.replaceChildren(h("span", {}, "no recorded values yet (launch_jupyter.record(name, value) in the notebook)"));
      return;
    }
    const send = (changes) => act(model, "set_plot", {
      value: model.get("plot_value"), x: model.get("plot_x"), y: model.get("plot_y"), ...changes });
    controls.replaceChildren("plot ", select(values, model.get("plot_value"), (v) => send({ value: v })),
      " against ", select(params, model.get("plot_x"), (x) => send({ x })),
      " and ", select(params, model.get("plot_y"), (y) => send({ y }), "(one parameter)"));
  };
  const showPlot = () => {
    // The SVG is drawn by matplotlib in the kernel from our own table: trusted markup.
    plot.innerHTML = model.get("plot_svg");
  };

  const offs = [bindText(model, "error", error), bindText(model, "notice", notice)];
  const listen = (traits, fn) => {
    fn();
    for (const t of traits) model.on(`change:${t}`, fn);
    offs.push(() => traits.forEach((t) => model.off(`change:${t}`, fn)));
  };
  listen(["sweep"], showTitle);
  listen(["rows", "best", "sort", "parameters", "values"], showTable);
  listen(["values", "parameters", "plot_value", "plot_x", "plot_y"], showControls);
  listen(["plot_svg"], showPlot);
  el.classList.add("lj-widget", "lj-sweep-board");
  el.replaceChildren(title, error, notice, table, controls, plot);
  return () => offs.forEach((off) => off());
}

export default { render };
