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

/** Send a Python action: the widget method of that name runs with `args` as keywords. */
export function act(model, action, args = {}) {
  model.send({ action, args });
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
