// Asks JupyterLab to save the notebook as soon as the model exists (no view, no output):
// the kernel waits for the file to change before it packages the notebook for a run.

function saveCurrentNotebook() {
  const app = window.jupyterapp;
  if (app?.commands?.hasCommand("docmanager:save")) {
    app.commands.execute("docmanager:save");
    return;
  }
  // Without the app object, the Accel+S key binding does the same (Lumino handles it on document).
  const mac = /Mac/.test(navigator.platform);
  const target = document.activeElement ?? document.body;
  target.dispatchEvent(new KeyboardEvent("keydown", {
    key: "s", code: "KeyS", keyCode: 83, which: 83,
    ctrlKey: !mac, metaKey: mac, bubbles: true, cancelable: true,
  }));
}

function initialize({ model }) {
  if (!model.get("requested")) return;
  saveCurrentNotebook();
}

function render({ el }) {
  el.hidden = true;
}

export default { initialize, render };
