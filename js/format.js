// Pure presentation helpers shared by the widgets: no DOM, unit-tested with node:test.

export const TERMINAL_STATES = ["succeeded", "failed", "cancelled"];

// The order a run normally passes through; the timeline colours follow it.
export const STATE_ORDER = [
  "queued", "claimed", "building", "submitted", "pending", "running",
  "cancelling", "succeeded", "failed", "cancelled",
];

/** Escape text for safe use inside HTML. */
export function escapeHtml(text) {
  return String(text ?? "")
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

/** "4s", "1m 05s", "2h 03m" for a number of seconds; "" when unknown. */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  return `${h}h ${String(m % 60).padStart(2, "0")}m`;
}

/** Whether a run state is final. */
export function isTerminal(state) {
  return TERMINAL_STATES.includes(state);
}

/** Seconds a run has lasted: from start (or creation) to its end, or to `now` while it goes on. */
export function runDuration(row, now) {
  const start = row.started_at ?? row.created_at;
  if (!start) return null;
  const end = row.finished_at ?? (isTerminal(row.state) ? row.updated_at : now);
  return end - start;
}

/**
 * How long a run waited (created → started, or → its end if it never started) and ran
 * (started → finished), in seconds; the open one counts to `now`. null when it does not apply.
 */
export function runTimes(row, now) {
  if (!row.created_at) return { waited: null, ran: null };
  const end = row.finished_at ?? (isTerminal(row.state) ? row.updated_at : null);
  const started = row.started_at ?? null;
  const waited = (started ?? end ?? now) - row.created_at;
  const ran = started === null ? null : (end ?? now) - started;
  return { waited: Math.max(0, waited), ran: ran === null ? null : Math.max(0, ran) };
}

/** Up to `n` evenly spaced axis ticks [{x (0..100), t}] between unix times `start` and `end`. */
export function axisTicks(start, end, n = 5) {
  if (!(end > start)) return [{ x: 0, t: start }];
  return Array.from({ length: n }, (_, i) => ({ x: (i * 100) / (n - 1), t: start + ((end - start) * i) / (n - 1) }));
}

/** CSS classes of a state badge. */
export function badgeClass(state) {
  const known = STATE_ORDER.includes(state) ? state : "unknown";
  return `lj-badge lj-state-${known}`;
}

/** Local wall-clock time "HH:MM:SS" of a unix time in seconds. */
export function formatTime(ts) {
  if (!ts) return "";
  const d = new Date(ts * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()]
    .map((n) => String(n).padStart(2, "0"))
    .join(":");
}

const VERTEX_JOB = /^projects\/([^/]+)\/locations\/([^/]+)\/customJobs\/([^/]+)$/;

/** The Google Cloud console page of a Vertex CustomJob resource name, or null for anything else. */
export function vertexConsoleUrl(externalId) {
  const m = VERTEX_JOB.exec(externalId ?? "");
  if (!m) return null;
  const [, project, location, id] = m;
  return (
    `https://console.cloud.google.com/vertex-ai/locations/${encodeURIComponent(location)}` +
    `/training/${encodeURIComponent(id)}/cpu?project=${encodeURIComponent(project)}`
  );
}

/**
 * What changed between two lists of rows keyed by `key`: rows to add, ids to remove,
 * rows whose content changed, and the new order. Lets the board touch only those DOM rows.
 */
export function diffRows(oldRows, newRows, key = "id") {
  const before = new Map(oldRows.map((r) => [r[key], r]));
  const after = new Set(newRows.map((r) => r[key]));
  const added = [];
  const changed = [];
  for (const row of newRows) {
    const old = before.get(row[key]);
    if (old === undefined) added.push(row);
    else if (JSON.stringify(old) !== JSON.stringify(row)) changed.push(row);
  }
  const removed = oldRows.map((r) => r[key]).filter((id) => !after.has(id));
  return { added, removed, changed, order: newRows.map((r) => r[key]) };
}

/**
 * A run's history as spans: [{state, start, end}] from its events [{state, time}],
 * the last span open until `now` unless the run has finished.
 */
export function timelineSegments(events, now) {
  const sorted = [...events].sort((a, b) => a.time - b.time);
  const spans = [];
  sorted.forEach((ev, i) => {
    const next = sorted[i + 1];
    if (isTerminal(ev.state)) {
      spans.push({ state: ev.state, start: ev.time, end: ev.time });
      return;
    }
    spans.push({ state: ev.state, start: ev.time, end: next ? next.time : now });
  });
  return spans;
}

/**
 * Bars for a timeline `width` pixels wide: one per run, each a list of {state, x, w},
 * all on one time scale from the earliest event to `now`.
 */
export function timelineBars(runs, width, now) {
  const all = runs.flatMap((r) => r.events ?? []);
  if (all.length === 0) return { start: now, end: now, bars: [] };
  const start = Math.min(...all.map((e) => e.time));
  const end = Math.max(now, ...all.map((e) => e.time));
  const scale = end > start ? width / (end - start) : 0;
  const bars = runs.map((r) => ({
    id: r.id,
    segments: timelineSegments(r.events ?? [], now).map((s) => ({
      state: s.state,
      x: (s.start - start) * scale,
      w: Math.max(isTerminal(s.state) ? 2 : 1, (s.end - s.start) * scale),
    })),
  }));
  return { start, end, bars };
}
