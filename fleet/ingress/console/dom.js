// Small DOM helpers. Every text from the server goes in as a text node, never as HTML.

// Replace el's children; null, undefined and false are left out (as in h).
export function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// A long text folded: its first line as the summary, the rest on a click.
export function folded(text, { open = false, limit = 240, key } = {}) {
  if (text.length <= limit && !text.includes("\n")) return h("p", { class: "text" }, text);
  const first = text.split("\n")[0].slice(0, 120);
  return h("details", { open, "data-key": key }, h("summary", {}, first || "(text)"), h("pre", { class: "text" }, text));
}

export const fmt = {
  ms: (ms) => (ms === null || ms === undefined ? "–" : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`),
  int: (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en")),
  time: (iso) => (iso ? new Date(iso).toLocaleTimeString("en-GB") : "–"),
  when: (iso) => (iso ? new Date(iso).toLocaleString("en-GB", { dateStyle: "short", timeStyle: "medium" }) : "–"),
  score: (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(2)),
};

export function badge(status) {
  return h("span", { class: `badge s-${status}`, "data-status": status }, status);
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error instanceof Error ? error.message : String(error));
}
