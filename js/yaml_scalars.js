// How our config parser reads a plain (unquoted) YAML scalar: the YAML 1.2 core schema that
// launch_jupyter/core/queue_config.py implements. Only true/false are booleans ("on", "off",
// "yes", "no" stay strings), only decimal numbers are numbers. The editor colours values by it,
// so what looks like a boolean is one.

const BOOL = /^(?:true|True|TRUE|false|False|FALSE)$/;
const INT = /^[-+]?[0-9]+$/;
const FLOAT = /^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/;
const NULL = /^(?:~|null|Null|NULL|)$/;

/** "bool" | "number" | "null" | "string" for the text of a plain scalar. */
export function scalarKind(text) {
  const t = String(text).trim();
  if (BOOL.test(t)) return "bool";
  if (INT.test(t) || FLOAT.test(t)) return "number";
  if (NULL.test(t)) return "null";
  return "string";
}
