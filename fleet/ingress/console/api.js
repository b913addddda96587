// The console's one door to the fleet: the /v1 API with the bearer token, and the SSE reader.
// EventSource cannot send headers, so the event stream is read with fetch() and parsed here; the
// token travels only in the Authorization header (never a URL) and lives in this tab's sessionStorage.

const ROOT = document.documentElement.dataset.root || "";
const API = `${ROOT}/v1`;
const TOKEN_KEY = "fleet.token";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

let unauthorized = () => {};
export function onUnauthorized(handler) { unauthorized = handler; }

function headers(extra = {}) {
  const t = token.get();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

async function check(response) {
  if (response.status === 401) unauthorized();
  if (response.ok) return response;
  throw new ApiError(response.status, await response.json().catch(() => null));
}

export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal, headers: headers(), cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await check(await fetch(API + path, init));
  return response.status === 204 ? null : response.json();
}

// Reads a deliberation's events after `lastId` (sent as Last-Event-ID) and calls onEvent(event) for
// each, until the server ends the stream (the deliberation has ended) or `signal` aborts.
export async function readEvents(id, lastId, onEvent, signal) {
  const h = headers({ Accept: "text/event-stream" });
  if (lastId > 0) h["Last-Event-ID"] = String(lastId);
  const response = await check(await fetch(`${API}/deliberations/${encodeURIComponent(id)}/events`,
    { headers: h, signal, cache: "no-store" }));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const data = buffer.slice(0, end).split("\n")
        .filter((line) => line.startsWith("data:")).map((line) => line.slice(5).replace(/^ /, ""));
      buffer = buffer.slice(end + 2);
      if (data.length) onEvent(JSON.parse(data.join("\n")));  // comments (keep-alives) have no data
    }
  }
}
