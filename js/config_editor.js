// A YAML/JSON config editor on CodeMirror 6, shared by the queue editor widget and (later) the
// JupyterLab panel: YAML syntax from @codemirror/lang-yaml, values coloured as our parser reads
// them (yaml_scalars.js), and key-path problems shown as lint diagnostics on their lines.
// Bundled with esbuild at build time (hatch_build.py); never loaded unbundled.

import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { yaml } from "@codemirror/lang-yaml";
import { bracketMatching, indentOnInput, syntaxHighlighting, syntaxTree, HighlightStyle } from "@codemirror/language";
import { lintGutter, setDiagnostics } from "@codemirror/lint";
import { EditorState, RangeSetBuilder } from "@codemirror/state";
import { Decoration, EditorView, ViewPlugin, drawSelection, highlightActiveLine, keymap, lineNumbers } from "@codemirror/view";
import { tags } from "@lezer/highlight";

import { scalarKind } from "./yaml_scalars.js";

// Keys, quoted strings and comments from the grammar; plain values are left to scalarMarks.
const style = HighlightStyle.define([
  { tag: tags.definition(tags.propertyName), class: "lj-cm-key" },
  { tag: tags.string, class: "lj-cm-str" },
  { tag: tags.lineComment, class: "lj-cm-comment" },
  { tag: [tags.labelName, tags.typeName, tags.meta], class: "lj-cm-meta" },
]);

const MARKS = Object.fromEntries(["bool", "number", "null", "string"].map((k) => [k, Decoration.mark({ class: `lj-cm-${k}` })]));

function scalarDecorations(view) {
  const builder = new RangeSetBuilder();
  for (const { from, to } of view.visibleRanges) {
    syntaxTree(view.state).iterate({
      from, to,
      enter(node) {
        if (node.name !== "Literal" || node.node.parent?.name === "Key") return;
        const text = view.state.doc.sliceString(node.from, node.to);
        builder.add(node.from, node.to, MARKS[scalarKind(text)]);
      },
    });
  }
  return builder.finish();
}

const scalarMarks = ViewPlugin.fromClass(class {
  constructor(view) { this.decorations = scalarDecorations(view); }
  update(u) { if (u.docChanged || u.viewportChanged || syntaxTree(u.startState) !== syntaxTree(u.state)) this.decorations = scalarDecorations(u.view); }
}, { decorations: (v) => v.decorations });

/** Lint diagnostics for problems [{line (1-based), path, message, severity}] in `doc`. */
export function diagnosticsFor(doc, problems) {
  return problems.map((p) => {
    const line = doc.line(Math.min(Math.max(1, p.line || 1), doc.lines));
    return {
      from: line.from,
      to: Math.max(line.from, line.to),
      severity: p.severity === "warning" ? "warning" : "error",
      message: p.path ? `${p.path}: ${p.message}` : p.message,
    };
  });
}

/**
 * Create the editor in `parent`. `onChange(text)` is called on every edit.
 * Returns {view, getText, setText, showProblems, setEditable}.
 */
export function createConfigEditor(parent, { doc = "", onChange = () => {}, label = "config" } = {}) {
  const editable = EditorView.editable.of(true);
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        lineNumbers(), history(), drawSelection(), highlightActiveLine(), indentOnInput(), bracketMatching(),
        yaml(), syntaxHighlighting(style), scalarMarks, lintGutter(),
        keymap.of([indentWithTab, ...defaultKeymap, ...historyKeymap]),
        EditorState.tabSize.of(2),
        EditorView.contentAttributes.of({ "aria-label": label }),
        EditorView.updateListener.of((u) => { if (u.docChanged) onChange(u.state.doc.toString()); }),
      ],
    }),
  });
  view.dom.classList.add("lj-cm");
  const getText = () => view.state.doc.toString();
  return {
    view,
    getText,
    /** Replace the text (from the kernel), unless it is already what is shown. */
    setText(text) {
      if (text === getText()) return;
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    /** Show `problems` found in `text`; they are dropped when the screen moved on since. */
    showProblems(problems, text) {
      const current = text === undefined || text === getText() ? problems : [];
      view.dispatch(setDiagnostics(view.state, diagnosticsFor(view.state.doc, current)));
    },
    setEditable(on) {
      view.contentDOM.setAttribute("contenteditable", on ? "true" : "false");
    },
  };
}
