// Where the extension's main-area pages (the Runs tab, a run's page, a run's executed notebook) go,
// in JupyterLab and in Notebook 7 alike.
//
// JupyterLab: a tab of the dock panel, as usual. Notebook 7's shell holds one main widget per browser
// page and silently ignores a second one (NotebookShell.add in @jupyter-notebook/application: "do not
// add the widget if there is already one"), so there:
//   - on the file browser page (/tree) a page becomes a tab beside Files and Running, in the page's
//     TabPanel (the INotebookTree service of @jupyter-notebook/tree, the way Notebook 7 extensions add
//     tabs there);
//   - on any other page (a notebook, a text editor) a new browser tab opens the /tree page with
//     ?launch=runs or ?launch-run=ID, and that page opens it (openFromQuery).

import { PageConfig, URLExt } from "@jupyterlab/coreutils";

/** "tree", "notebooks", "edit", … in Notebook 7 (its page_config's notebookPage); "" in JupyterLab. */
export function notebookPage() {
  return PageConfig.getOption("notebookPage");
}

let tree = null; // Notebook 7's tree TabPanel, on its /tree page only

/** Called once with INotebookTree (null where the page has none). */
export function setNotebookTree(panel) {
  tree = panel ?? null;
}

/** The open main-area page with this id, if any. */
export function findInMain(app, id) {
  const widgets = tree ? tree.widgets : notebookPage() ? [] : [...app.shell.widgets("main")];
  return widgets.find((w) => w.id === id && !w.isDisposed) ?? null;
}

/** Bring an open page forward. */
export function activateInMain(app, widget) {
  if (tree && tree.widgets.includes(widget)) tree.currentWidget = widget;
  else app.shell.activateById(widget.id);
}

/** The URL of Notebook 7's /tree page asked to open `query` ({ launch: "runs" } or { "launch-run": id }). */
export function treeUrl(query) {
  return `${URLExt.join(PageConfig.getBaseUrl(), "tree")}?${new URLSearchParams(query)}`;
}

/**
 * Show `widget` in the main area (`activate` false: only add it). Where this browser page cannot hold
 * it (a Notebook 7 page other than /tree), open `elsewhere` (a URL) in a new browser tab instead,
 * dispose `widget` and return null.
 */
export function showInMain(app, widget, elsewhere, { activate = true } = {}) {
  if (tree) {
    if (!tree.widgets.includes(widget)) tree.addWidget(widget);
    if (activate) tree.currentWidget = widget;
    return widget;
  }
  if (notebookPage()) {
    widget.dispose();
    window.open(elsewhere, "_blank");
    return null;
  }
  app.shell.add(widget, "main");
  if (activate) app.shell.activateById(widget.id);
  return widget;
}

/** On Notebook 7's /tree page: open what ?launch=runs / ?launch-run=ID ask for. */
export function openFromQuery(app, runsCommand, runCommand) {
  if (!tree) return;
  const query = new URLSearchParams(window.location.search);
  const runId = query.get("launch-run");
  if (runId) void app.commands.execute(runCommand, { run_id: runId });
  else if (query.get("launch") === "runs") void app.commands.execute(runsCommand);
}
