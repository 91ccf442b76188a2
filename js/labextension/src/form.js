// Pure helpers of the Launch dialog: typing a form value the way the notebook's parameters cell types
// it, and turning the form into the body of POST /launch/api/submit. No DOM, no JupyterLab: unit-tested
// with node --test (form.test.mjs).

// Parse what a user typed for a parameter whose default has Python type `type` ("int", "float",
// "bool", "str", "list", "dict", "tuple" or "" when the default is not a literal).
// Returns {ok: true, value} or {ok: false, error}. An empty field means "keep the notebook's default".
export function coerce(type, raw) {
  if (typeof raw === "boolean") return { ok: true, value: raw };
  const text = String(raw ?? "").trim();
  if (text === "") return { ok: true, value: undefined };
  switch (type) {
    case "int":
      return /^[-+]?\d+$/.test(text)
        ? { ok: true, value: Number.parseInt(text, 10) }
        : { ok: false, error: "a whole number" };
    case "float": {
      const value = Number(text);
      return text !== "" && Number.isFinite(value)
        ? { ok: true, value }
        : { ok: false, error: "a number" };
    }
    case "bool":
      if (/^(true|1|yes)$/i.test(text)) return { ok: true, value: true };
      if (/^(false|0|no)$/i.test(text)) return { ok: true, value: false };
      return { ok: false, error: "true or false" };
    case "str":
      return { ok: true, value: String(raw) };
    case "list":
    case "tuple":
    case "dict": {
      let value;
      try {
        value = JSON.parse(text);
      } catch {
        return { ok: false, error: type === "dict" ? "a JSON object" : "a JSON list" };
      }
      const good = type === "dict" ? value !== null && typeof value === "object" && !Array.isArray(value)
        : Array.isArray(value);
      return good ? { ok: true, value } : { ok: false, error: type === "dict" ? "a JSON object" : "a JSON list" };
    }
    default:
      // No literal default to type against: JSON if it reads as JSON, else the text itself.
      try {
        return { ok: true, value: JSON.parse(text) };
      } catch {
        return { ok: true, value: String(raw) };
      }
  }
}

// A queue template variable's value: integer/number within minimum/maximum, an enum's member, or text.
export function coerceTemplate(variable, raw) {
  const text = String(raw ?? "").trim();
  if (text === "") return { ok: true, value: undefined };
  let value = text;
  if (variable.type === "integer" || variable.type === "number") {
    const parsed = coerce(variable.type === "integer" ? "int" : "float", text);
    if (!parsed.ok) return parsed;
    value = parsed.value;
    if (variable.minimum !== undefined && value < variable.minimum) return { ok: false, error: `at least ${variable.minimum}` };
    if (variable.maximum !== undefined && value > variable.maximum) return { ok: false, error: `at most ${variable.maximum}` };
  }
  if (Array.isArray(variable.enum) && !variable.enum.map(String).includes(String(value))) {
    return { ok: false, error: `one of ${variable.enum.join(", ")}` };
  }
  return { ok: true, value };
}

// The Vertex overrides the dialog offers, as --resource-arg key paths.
export const VERTEX_OVERRIDES = [
  { key: "spec.worker_pool_specs[0].machine_spec.machine_type", label: "Machine type", type: "str" },
  { key: "spec.worker_pool_specs[0].machine_spec.accelerator_type", label: "Accelerator type", type: "str" },
  { key: "spec.worker_pool_specs[0].machine_spec.accelerator_count", label: "Accelerator count", type: "int" },
];

// Form state -> the submit request body; `errors` lists "what: why" for every invalid field.
export function submitBody({ notebook, queue, parameters = [], templateVars = [], overrides = [], priority, name }, values) {
  const body = { notebook, queue };
  const errors = [];
  const collect = (items, key, check, into) => {
    for (const item of items) {
      const result = check(item, values[`${key}:${item.name ?? item.key}`]);
      if (!result.ok) errors.push(`${item.name ?? item.label}: ${result.error}`);
      else if (result.value !== undefined) into[item.name ?? item.key] = result.value;
    }
  };
  const params = {};
  collect(parameters, "p", (p, raw) => coerce(p.type, raw), params);
  if (Object.keys(params).length) body.parameters = params;
  const template = {};
  collect(templateVars, "t", coerceTemplate, template);
  if (Object.keys(template).length) body.template_values = template;
  const resource = {};
  collect(overrides, "r", (o, raw) => coerce(o.type, raw), resource);
  if (Object.keys(resource).length) body.resource_args = resource;
  if (priority) body.priority = priority;
  if (name && name.trim()) body.name = name.trim();
  return { body, errors };
}

// One line per queue in the picker: path, resource, queue length, whether an agent serves it.
export function queueLabel(q) {
  const served = q.served === false ? "no agent serving" : q.served ? "served" : "";
  return [q.queue, q.resource, `${q.queued ?? 0} queued`, served].filter(Boolean).join(" · ");
}
