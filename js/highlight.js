// A small YAML/JSON highlighter and the key-path → line map the queue editor uses to mark
// problems. Pure functions (no DOM), unit-tested with node:test.

import { escapeHtml } from "./format.js";

const SCALAR = /^(true|false|null|~|yes|no|on|off)$/i;
const NUMBER = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** Whether the text looks like JSON rather than YAML. */
export function looksLikeJson(text) {
  return /^\s*[[{]/.test(text);
}

// Template variables {{name}} and macros ${name} stand out inside any token.
function markVars(escaped) {
  return escaped
    .replace(/\{\{\s*[\w.-]+\s*\}\}/g, (m) => `<span class="lj-hl-var">${m}</span>`)
    .replace(/\$\{[\w.-]+\}/g, (m) => `<span class="lj-hl-macro">${m}</span>`);
}

function span(cls, text) {
  return `<span class="lj-hl-${cls}">${markVars(escapeHtml(text))}</span>`;
}

function valueHtml(value) {
  const trimmed = value.trim();
  if (trimmed === "") return escapeHtml(value);
  const lead = value.slice(0, value.indexOf(trimmed));
  const tail = value.slice(lead.length + trimmed.length);
  let cls = "str";
  if (SCALAR.test(trimmed)) cls = "bool";
  else if (NUMBER.test(trimmed)) cls = "num";
  else if (/^[[{]/.test(trimmed)) cls = "flow";
  return escapeHtml(lead) + span(cls, trimmed) + escapeHtml(tail);
}

// Split off a trailing comment, ignoring '#' inside quotes.
function splitComment(line) {
  let quote = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]))) {
      return [line.slice(0, i), line.slice(i)];
    }
  }
  return [line, ""];
}

function yamlLineHtml(line) {
  const [code, comment] = splitComment(line);
  const m = /^(\s*)(- +)?((?:"[^"]*"|'[^']*'|[^\s:#][^:#]*?)\s*:)(?=\s|$)(.*)$/.exec(code);
  let html;
  if (m) {
    const [, indent, dash = "", key, rest] = m;
    html = escapeHtml(indent) + (dash ? span("punct", dash) : "") + span("key", key) + valueHtml(rest);
  } else {
    const d = /^(\s*)(- +)?(.*)$/.exec(code);
    html = escapeHtml(d[1]) + (d[2] ? span("punct", d[2]) : "") + valueHtml(d[3]);
  }
  return html + (comment ? span("comment", comment) : "");
}

/** YAML text as HTML with one span per token class (key, str, num, bool, comment, var, macro). */
export function highlightYaml(text) {
  return text.split("\n").map(yamlLineHtml).join("\n");
}

/** JSON text as HTML: keys, strings, numbers, literals and punctuation. */
export function highlightJson(text) {
  const token = /("(?:\\.|[^"\\])*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|\b(true|false|null)\b|([{}[\],])/g;
  let out = "";
  let last = 0;
  for (const m of text.matchAll(token)) {
    out += escapeHtml(text.slice(last, m.index));
    if (m[1] !== undefined) out += m[2] ? span("key", m[1]) + escapeHtml(m[2]) : span("str", m[1]);
    else if (m[3] !== undefined) out += span("num", m[3]);
    else if (m[4] !== undefined) out += span("bool", m[4]);
    else out += span("punct", m[5]);
    last = m.index + m[0].length;
  }
  return out + escapeHtml(text.slice(last));
}

/** Highlight YAML or JSON, whichever the text is. */
export function highlight(text) {
  return looksLikeJson(text) ? highlightJson(text) : highlightYaml(text);
}

function unquote(key) {
  return key.replace(/^["'](.*)["']$/, "$1");
}

/**
 * Every mapping key of a YAML text with its line (0-based) and key path in the form the
 * validator reports, e.g. `spec.worker_pool_specs[0].machine_spec`.
 */
export function yamlKeyPaths(text) {
  const found = [];
  const stack = []; // frames {indent, path, item, next}
  const join = (parent, key) => (parent ? `${parent}.${key}` : key);
  text.split("\n").forEach((raw, line) => {
    const [code] = splitComment(raw);
    if (code.trim() === "" || /^\s*(---|\.\.\.)\s*$/.test(code)) return;
    const m = /^(\s*)(- +)?(.*)$/.exec(code);
    let indent = m[1].length;
    const rest = m[3];
    if (m[2]) {
      while (stack.length && (stack.at(-1).indent > indent || (stack.at(-1).item && stack.at(-1).indent === indent))) stack.pop();
      const parent = stack.at(-1);
      const index = parent ? parent.next++ : 0;
      const path = `${parent ? parent.path : ""}[${index}]`;
      stack.push({ indent, path, item: true, next: 0 });
      indent += m[2].length;
    }
    const key = /^((?:"[^"]*"|'[^']*'|[^\s:#][^:#]*?))\s*:(\s|$)/.exec(rest);
    if (!key) return;
    while (stack.length && stack.at(-1).indent >= indent && !(m[2] && stack.at(-1).item)) stack.pop();
    const parent = stack.at(-1);
    const path = join(parent ? parent.path : "", unquote(key[1].trim()));
    found.push({ line, path });
    stack.push({ indent, path, item: false, next: 0 });
  });
  return found;
}

/**
 * The line (0-based) a problem points at: a YAML syntax error names "line N" in its message;
 * otherwise its key path decides (see lineForPath). Null when neither says.
 */
export function lineForProblem(keyPaths, problem) {
  const named = /\bline (\d+)\b/.exec(problem.message ?? "");
  if (named && !lineForPath(keyPaths, problem.path)) return Number(named[1]) - 1;
  return lineForPath(keyPaths, problem.path);
}

/**
 * The line a problem's key path points at: the key itself, else its nearest existing
 * parent (a required key that is missing is marked on its parent), else null.
 */
export function lineForPath(keyPaths, path) {
  let probe = path ?? "";
  while (probe) {
    const hit = keyPaths.find((k) => k.path === probe);
    if (hit) return hit.line;
    const cut = Math.max(probe.lastIndexOf("."), probe.lastIndexOf("["));
    if (cut <= 0) break;
    probe = probe.slice(0, cut);
  }
  return null;
}
