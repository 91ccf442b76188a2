// The JupyterLab side of `%launch submit`'s save handshake.
//
// In every notebook's kernel this registers the comm target "launch_jupyter.save". When
// `%launch submit` opens a comm on it, we find the notebook panel of that kernel, say "saving"
// at once (so the kernel knows an extension answers), save the notebook through its document
// context, and reply only when the server has written the file: the kernel then reads the file
// once, knowing it is complete. A stock JupyterLab needs nothing else (no window.jupyterapp).

import { ILayoutRestorer } from "@jupyterlab/application";
import { ICommandPalette, ToolbarButton, WidgetTracker } from "@jupyterlab/apputils";
import { IFileBrowserFactory } from "@jupyterlab/filebrowser";
import { INotebookTracker } from "@jupyterlab/notebook";

import { INotebookTree } from "@jupyter-notebook/tree";
import { ILauncher } from "@jupyterlab/launcher";
import { IMainMenu } from "@jupyterlab/mainmenu";

import { openLaunchDialog } from "./launch.js";
import { notebookPage, openFromQuery, setNotebookTree } from "./main_area.js";
import { RUN_COMMAND, openRunDetail } from "./run_detail.js";
import { openRunsPanel } from "./runs_panel.js";
import { addRunsSidebar } from "./sidebar.js";

export const TARGET = "launch_jupyter.save";

// The open notebooks whose kernel is `kernel`; the one at `path` (relative to the server root) first.
export function panelsOf(tracker, kernel, path) {
  const panels = [];
  tracker.forEach((panel) => {
    if (panel.sessionContext?.session?.kernel?.id === kernel.id) panels.push(panel);
  });
  return panels.sort((a, b) => Number(b.context.path === path) - Number(a.context.path === path));
}

// Save `panel` and describe the saved file; any failure becomes a reply, never an exception.
export async function saveAndDescribe(panel) {
  const { context } = panel;
  try {
    await context.ready;
    // Nothing unsaved: the file on disk is what the user sees, and no write is needed.
    if (context.model.dirty || !context.contentsModel) await context.save();
    const model = context.contentsModel;
    return { status: "saved", path: context.path, last_modified: model?.last_modified ?? null };
  } catch (err) {
    return { status: "error", path: context.path, message: String(err?.message ?? err) };
  }
}

export async function answer(tracker, kernel, comm, msg) {
  const path = msg?.content?.data?.path ?? "";
  const panel = panelsOf(tracker, kernel, path)[0];
  // The kernel closes the comm when it has its answer (or gives up waiting).
  if (!panel) {
    comm.send({ status: "error", message: "no open notebook uses this kernel" });
    return;
  }
  comm.send({ status: "saving", path: panel.context.path });
  comm.send(await saveAndDescribe(panel));
}

function watch(tracker, panel, registered) {
  const sessionContext = panel.sessionContext;
  const register = () => {
    const kernel = sessionContext.session?.kernel;
    if (!kernel || registered.has(kernel)) return;
    registered.add(kernel);
    kernel.registerCommTarget(TARGET, (comm, msg) => {
      void answer(tracker, kernel, comm, msg);
    });
  };
  sessionContext.kernelChanged.connect(register);
  sessionContext.statusChanged.connect(register);
  register();
}

const plugin = {
  id: "launch-jupyter:save-handshake",
  description: "Saves a notebook when its kernel runs %launch submit, and replies when the file is written.",
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app, tracker) => {
    const registered = new WeakSet(); // kernel connections that have the target already
    tracker.widgetAdded.connect((_, panel) => watch(tracker, panel, registered));
    tracker.forEach((panel) => watch(tracker, panel, registered));
  },
};

// Save an open notebook panel if it has unsaved edits, so a launch sends what is on screen.
function saverFor(panel) {
  return async () => {
    await panel.context.ready;
    if (panel.context.model.dirty) await panel.context.save();
  };
}

export const LAUNCH_COMMAND = "launch-jupyter:launch-notebook";

const launchPlugin = {
  id: "launch-jupyter:launch-button",
  description: "A Launch button on every notebook and 'Launch notebook…' in the file browser: send a notebook to a queue.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IFileBrowserFactory, ICommandPalette],
  activate: (app, tracker, browsers, palette) => {
    const openFor = (path) => {
      let panel = null;
      tracker.forEach((p) => {
        if (p.context.path === path) panel = p;
      });
      return openLaunchDialog(path, panel ? saverFor(panel) : null);
    };
    app.commands.addCommand(LAUNCH_COMMAND, {
      label: (args) => (args?.fromBrowser ? "Launch notebook…" : "Launch this notebook…"),
      caption: "Send the notebook to a launch queue (no kernel needed)",
      isEnabled: () => true,
      execute: (args) => {
        const selected = browsers?.tracker.currentWidget?.selectedItems().next();
        const item = selected && !selected.done ? selected.value : selected; // iterator in JupyterLab 4
        const path = args?.path || (args?.fromBrowser ? item?.path : tracker.currentWidget?.context.path);
        if (path) return openFor(path);
      },
    });
    app.contextMenu.addItem({
      command: LAUNCH_COMMAND,
      args: { fromBrowser: true },
      selector: '.jp-DirListing-item[data-file-type="notebook"]',
      rank: 3,
    });
    palette?.addItem({ command: LAUNCH_COMMAND, category: "Launch" });
    // Notebook 7's /tree page opens notebooks in their own browser tabs, never as a panel here; and a
    // widget extension added there makes its document manager re-read settings that page lacks
    // ("Cannot convert undefined or null to object" in the console, defaultViewers undefined).
    if (notebookPage() === "tree") return;
    app.docRegistry.addWidgetExtension("Notebook", {
      createNew: (panel) => {
        const button = new ToolbarButton({
          className: "lj-launch-button",
          label: "Launch",
          tooltip: "Send this notebook to a launch queue",
          onClick: () => void openLaunchDialog(panel.context.path, saverFor(panel)),
        });
        panel.toolbar.insertItem(10, "launch", button);
        return button;
      },
    });
  },
};

export const RUNS_COMMAND = "launch-jupyter:open-runs";

const runsPlugin = {
  id: "launch-jupyter:runs-panel",
  description: "The Runs tab: every run of the store, live, with no kernel.",
  autoStart: true,
  // All optional: JupyterLab has a launcher and a layout restorer; Notebook 7 has neither, and its
  // file browser page (/tree) has the tab panel INotebookTree (main_area.js says where pages go).
  optional: [ICommandPalette, ILauncher, ILayoutRestorer, IMainMenu, INotebookTree],
  activate: (app, palette, launcher, restorer, mainMenu, notebookTree) => {
    setNotebookTree(notebookTree);
    // Notebook 7 restores no layout; a page other than /tree must not open browser tabs on load.
    if (notebookPage()) restorer = null;
    const tracker = new WidgetTracker({ namespace: "launch-jupyter-runs" });
    app.commands.addCommand(RUNS_COMMAND, {
      label: "Launch Runs",
      caption: "Every run of the launch queues, live (no kernel needed)",
      execute: () => {
        const widget = openRunsPanel(app);
        if (widget && !tracker.has(widget)) void tracker.add(widget);
        return widget;
      },
    });
    // A page reload brings the Runs tab back where it was.
    void restorer?.restore(tracker, { command: RUNS_COMMAND, name: () => "runs" });
    // A run's own page: opened from a row of the Runs tab, reopened after a reload too.
    const pages = new WidgetTracker({ namespace: "launch-jupyter-run" });
    app.commands.addCommand(RUN_COMMAND, {
      label: "Launch: open a run's page",
      execute: (args) => {
        if (!args?.run_id) return null;
        const widget = openRunDetail(app, String(args.run_id));
        if (widget && !pages.has(widget)) void pages.add(widget);
        return widget;
      },
    });
    void restorer?.restore(pages, {
      command: RUN_COMMAND, args: (widget) => ({ run_id: widget.content.runId }), name: (widget) => widget.content.runId,
    });
    palette?.addItem({ command: RUNS_COMMAND, category: "Launch" });
    launcher?.add({ command: RUNS_COMMAND, category: "Other", rank: 1 });
    // The View menu too: Notebook 7 has no launcher, and its palette is one more step away.
    mainMenu?.viewMenu.addGroup([{ command: RUNS_COMMAND }], 100);
    // Notebook 7's /tree page: Runs is a tab beside Files and Running, and ?launch=runs or
    // ?launch-run=ID (a Notebook 7 page other than /tree opened it) is opened.
    if (notebookTree) {
      void tracker.add(openRunsPanel(app, { activate: false }));
      openFromQuery(app, RUNS_COMMAND, RUN_COMMAND);
    }
    // The compact sidebar: the newest runs, live; restored with the layout like any side panel.
    const sidebar = addRunsSidebar(app, RUNS_COMMAND);
    if (sidebar) restorer?.add(sidebar, sidebar.id);
  },
};

export default [plugin, launchPlugin, runsPlugin];
