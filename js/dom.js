// Tiny DOM helpers shared by the widget modules (browser only).

/** Create an element: h("button", {class: "x", onclick: fn}, "text", child...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Send a Python action: the widget method of that name runs with `args` as keywords.
 * Returns false (and marks the widget disconnected) when the kernel can no longer hear it. */
export function act(model, action, args = {}) {
  if (isDisconnected(model)) return false;
  try {
    model.send({ action, args });
    return true;
  } catch (err) {
    markDisconnected(model);
    return false;
  }
}

// Models whose comm is gone, and what each wants done then (per model: one widget, many views).
const lost = new WeakMap();

function isDisconnected(model) {
  return lost.get(model)?.gone === true;
}

function markDisconnected(model) {
  const entry = lost.get(model);
  if (!entry || entry.gone) return;
  entry.gone = true;
  for (const cb of entry.callbacks) {
    try { cb(); } catch { /* one view's failure must not keep the others live */ }
  }
}

export const DISCONNECTED = "disconnected — re-run this cell";

/**
 * Show "disconnected — re-run this cell" in `root`, disable its controls and call `onLost()` (stop
 * timers) once the kernel behind `model` is gone. Jupyter widgets' manager sets every model's
 * `comm_live` to false when its kernel restarts or dies (ManagerBase.disconnect), which fires
 * `comm_live_update` and puts `jupyter-widgets-disconnected` on the view's element `el`; a closed
 * comm fires `comm:close`; the kernel connection's status says "restarting" or "dead"; a send that
 * throws says so too (act). Returns the function that stops watching.
 */
export function watchConnection(model, root, onLost = () => {}, el = null) {
  const entry = lost.get(model) ?? { gone: false, callbacks: [] };
  lost.set(model, entry);
  const banner = h("div", { class: "lj-disconnected", role: "status", hidden: true }, DISCONNECTED);
  root.prepend(banner);
  const show = () => {
    banner.hidden = false;
    root.classList.add("lj-is-disconnected");
    for (const control of root.querySelectorAll("button, input, select, textarea")) control.disabled = true;
    for (const editable of root.querySelectorAll("[contenteditable]")) editable.setAttribute("contenteditable", "false");
    onLost();
  };
  entry.callbacks.push(show);
  const disconnectedClass = () => Boolean(el?.closest?.(".jupyter-widgets-disconnected"));
  // comm_live is only ever set after the view exists when the kernel goes away; with the view's
  // element at hand we also read the class the manager's view sets from it.
  const onLive = () => {
    if (el === null || disconnectedClass()) markDisconnected(model);
  };
  const onClose = () => markDisconnected(model);
  model.on("comm_live_update", onLive);
  model.on("comm:close", onClose);
  // JupyterLab keeps the old views of a restarted kernel on the page without flipping comm_live:
  // the kernel connection the widget manager holds (anywidget hands us the manager) says it, by
  // its status ("restarting", "dead") or by being disposed. A restart keeps that connection and
  // starts a new kernel behind it, whose comms know nothing of this widget.
  const kernel = model.widget_manager?.kernel;
  const onStatus = (_kernel, status) => {
    if (status === "restarting" || status === "autorestarting" || status === "dead") markDisconnected(model);
  };
  kernel?.statusChanged?.connect?.(onStatus);
  kernel?.disposed?.connect?.(onClose);
  if (disconnectedClass() || kernel?.isDisposed || kernel?.status === "dead") markDisconnected(model);
  if (entry.gone) show();
  return () => {
    kernel?.statusChanged?.disconnect?.(onStatus);
    kernel?.disposed?.disconnect?.(onClose);
    model.off("comm_live_update", onLive);
    model.off("comm:close", onClose);
    entry.callbacks = entry.callbacks.filter((cb) => cb !== show);
  };
}

/**
 * Call `tick()` every second while the widget is connected; watch the connection as
 * watchConnection does (the ticking stops once the kernel is gone). Returns the cleanup.
 */
export function tickWhileConnected(model, root, el, tick, onLost = () => {}) {
  let timer = setInterval(tick, 1000);
  const stop = () => {
    if (timer !== null) clearInterval(timer);
    timer = null;
  };
  const unwatch = watchConnection(model, root, () => {
    stop();
    onLost();
  }, el);
  return () => {
    stop();
    unwatch();
  };
}

/**
 * A button that asks before it acts: the first click shows "question [yes] [no]" in its place,
 * `yes` runs `onConfirm`. Used for Delete and Cancel, which cannot be undone.
 */
export function confirmButton(label, { cls = "", question, yes = label, no = "Keep", onConfirm, title }) {
  const ask = h("button", { class: cls, title }, label);
  const prompt = h("span", { class: "lj-confirm", hidden: true },
    h("span", { class: "lj-confirm-question" }, typeof question === "function" ? "" : question));
  const ok = h("button", { class: `lj-confirm-yes ${cls}-yes` }, yes);
  const cancel = h("button", { class: "lj-confirm-no" }, no);
  prompt.append(" ", ok, cancel);
  const close = () => {
    prompt.hidden = true;
    ask.hidden = false;
  };
  ask.addEventListener("click", (ev) => {
    ev.stopPropagation();
    if (typeof question === "function") prompt.firstChild.textContent = question();
    ask.hidden = true;
    prompt.hidden = false;
    cancel.focus();
  });
  ok.addEventListener("click", (ev) => {
    ev.stopPropagation();
    close();
    onConfirm();
  });
  cancel.addEventListener("click", (ev) => {
    ev.stopPropagation();
    close();
  });
  const wrap = h("span", { class: "lj-confirm-wrap" }, ask, prompt);
  wrap.button = ask;
  return wrap;
}

/** Call `fn` once `ms` after the last call. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Keep an element's text (or hidden state) in step with a model trait; returns the unsubscribe. */
export function bindText(model, trait, el, format = (v) => v) {
  const update = () => {
    const value = model.get(trait);
    el.textContent = value ? format(value) : "";
    el.hidden = !value;
  };
  update();
  model.on(`change:${trait}`, update);
  return () => model.off(`change:${trait}`, update);
}

/** The JupyterLab page's base URL ("/" unless the server runs under a prefix). */
export function baseUrl() {
  const node = document.getElementById("jupyter-config-data");
  try {
    return JSON.parse(node?.textContent ?? "{}").baseUrl ?? "/";
  } catch {
    return "/";
  }
}

/** Open a file (path relative to the server root) in JupyterLab, or in a new tab elsewhere. */
export function openInLab(path) {
  const app = window.jupyterapp;
  if (app?.commands?.hasCommand("docmanager:open")) {
    app.commands.execute("docmanager:open", { path });
    return;
  }
  // JupyterLab's command linker handles clicks on elements carrying these attributes.
  const link = document.createElement("a");
  link.setAttribute("data-commandlinker-command", "docmanager:open");
  link.setAttribute("data-commandlinker-args", JSON.stringify({ path }));
  link.href = `${baseUrl()}lab/tree/${path.split("/").map(encodeURIComponent).join("/")}`;
  link.target = "_blank";
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
}
