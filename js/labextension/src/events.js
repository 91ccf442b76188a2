// The server's live run events (GET /launch/api/events), shared: one EventSource per page whatever
// the number of open Runs tabs and run pages, opened with the first listener, closed with the last.

import { ServerConnection } from "@jupyterlab/services";

const listeners = new Set();
let source = null;

function open() {
  const settings = ServerConnection.makeSettings();
  const token = settings.token ? `?token=${encodeURIComponent(settings.token)}` : "";
  source = new EventSource(`${settings.baseUrl}launch/api/events${token}`, { withCredentials: true });
  source.addEventListener("run", (message) => {
    let event = null;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    for (const fn of [...listeners]) fn(event);
  });
  // After a reconnect events may have been missed: every listener hears `null` (read everything again).
  source.onopen = () => {
    for (const fn of [...listeners]) fn(null);
  };
}

// Call `fn(event)` for every run event (`fn(null)` when the stream (re)opens); returns the unsubscribe.
export function onRunEvents(fn) {
  listeners.add(fn);
  if (!source) open();
  return () => {
    listeners.delete(fn);
    if (!listeners.size && source) {
      source.close();
      source = null;
    }
  };
}
