// The deliberations list (live: polled every 2 s) and the fleet's status. Each open* draws into
// `view` and returns its cleanup.
import { api } from "./api.js";
import { badge, errorBox, fmt, h } from "./dom.js";

const PAGE_SIZE = 20;
const POLL_MS = 2000;
const LIVE = new Set(["queued", "running"]);

function poll(draw) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    // A hidden tab does not poll; a failed poll keeps the last picture and the next one retries.
    if (!document.hidden) await draw().catch(() => {});
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

function wall(state) {
  if (state.record) return fmt.ms(state.record.duration_ms);
  if (state.started_at) return fmt.ms((state.finished_at ? new Date(state.finished_at) : Date.now()) - new Date(state.started_at));
  return "–";
}

function row(state, refresh) {
  const record = state.record;
  const tokens = record ? record.tokens.prompt_tokens + record.tokens.completion_tokens : null;
  const cancel = LIVE.has(state.status) && h("button", {
    class: "danger small", "data-cancel": state.deliberation_id,
    onclick: async (event) => {
      event.target.disabled = true;
      event.target.textContent = "Cancelling…";
      await api(`/deliberations/${encodeURIComponent(state.deliberation_id)}`, { method: "DELETE" }).catch(() => {});
      refresh();
    },
  }, "Cancel");
  return h("tr", { "data-id": state.deliberation_id, "data-status": state.status },
    h("td", { "data-label": "started" }, fmt.when(state.created_at)),
    h("td", { "data-label": "id" }, h("a", { href: `#/d/${encodeURIComponent(state.deliberation_id)}` }, state.deliberation_id)),
    h("td", { "data-label": "role" }, state.role),
    h("td", { "data-label": "task", class: "task" }, record ? record.task.description : state.task_id),
    h("td", { "data-label": "status" }, badge(state.status)),
    h("td", { "data-label": "winner", class: "winner-cell" }, record?.selection?.winner_id || "–"),
    h("td", { "data-label": "tokens", class: "num" }, fmt.int(tokens)),
    h("td", { "data-label": "wall", class: "num" }, wall(state)),
    h("td", {}, cancel || ""));
}

export function openList(view) {
  const filters = { role: "", status: "", offset: 0 };
  const roleSelect = h("select", { id: "filter-role", "aria-label": "role" }, h("option", { value: "" }, "every role"));
  const statusSelect = h("select", { id: "filter-status", "aria-label": "status" }, h("option", { value: "" }, "every status"),
    ["queued", "running", "done", "failed", "cancelled"].map((s) => h("option", { value: s }, s)));
  const body = h("tbody");
  const pager = h("div", { class: "pager" });
  const problem = h("div");
  api("/councils").then((councils) => roleSelect.append(...councils.map((c) => h("option", { value: c.role }, c.role))))
    .catch(() => {});
  const draw = async () => {
    const params = new URLSearchParams({ offset: filters.offset, limit: PAGE_SIZE });
    if (filters.role) params.set("role", filters.role);
    if (filters.status) params.set("status", filters.status);
    let page;
    try {
      page = await api(`/deliberations?${params}`);
    } catch (e) {
      problem.replaceChildren(errorBox(e));
      throw e;
    }
    problem.replaceChildren();
    body.replaceChildren(...page.items.map((s) => row(s, draw)));
    if (!page.items.length) body.append(h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No deliberations yet. ",
      h("a", { href: "#/start" }, "Start one"), ".")));
    const last = Math.min(page.offset + page.items.length, page.total);
    pager.replaceChildren(
      h("button", { class: "quiet", disabled: page.offset === 0, onclick: () => { filters.offset = Math.max(0, filters.offset - PAGE_SIZE); draw(); } }, "← newer"),
      h("span", { id: "page-info" }, page.total ? `${page.offset + 1}–${last} of ${page.total}` : "0"),
      h("button", { class: "quiet", disabled: page.next_offset === null, onclick: () => { filters.offset = page.next_offset; draw(); } }, "older →"));
  };
  for (const [select, key] of [[roleSelect, "role"], [statusSelect, "status"]]) {
    select.addEventListener("change", () => { filters[key] = select.value; filters.offset = 0; draw(); });
  }
  view.append(h("section", { class: "card" },
    h("div", { class: "toolbar" }, h("h1", {}, "Deliberations"), h("div", { class: "filters" }, roleSelect, statusSelect)),
    problem,
    h("table", { class: "list" }, h("thead", {}, h("tr", {}, ["started", "id", "role", "task", "status", "winner", "tokens", "wall", ""]
      .map((c) => h("th", {}, c)))), body),
    pager));
  return poll(draw);
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", { "data-field": k }, v ?? "–")]));
}

export function openStatus(view) {
  const box = h("div", { class: "grid" });
  view.append(h("section", {}, h("h1", {}, "Status"), box));
  return poll(async () => {
    const [status, running] = await Promise.all([api("/status"), api("/deliberations?status=running&limit=500")]);
    const inFlight = {};
    for (const s of running.items) inFlight[s.role] = (inFlight[s.role] || 0) + 1;
    const roles = [...new Set([...Object.keys(status.councils), ...Object.keys(status.per_role)])].sort();
    box.replaceChildren(
      h("section", { class: "card", id: "status-engine" }, h("h2", {}, "Engine"), kv([
        ["model", status.engine.model], ["kind", status.engine.kind], ["dtype", status.engine.dtype],
        ["state", badge(status.engine.status)]])),
      h("section", { class: "card", id: "status-queue" }, h("h2", {}, "Queue"), kv([
        ["in flight", status.in_flight], ["queued", `${status.queued} of ${status.max_queued}`],
        ["tracked", status.total], ["finished", status.finished]])),
      h("section", { class: "card", id: "status-store" }, h("h2", {}, "Store"), kv([
        ["dialect", status.store.dialect || "memory only"], ["location", status.store.location],
        ["errors", status.store.errors], ["last error", status.store.last_error]])),
      h("section", { class: "card wide", id: "status-roles" }, h("h2", {}, "Per role"),
        h("table", { class: "list" }, h("thead", {}, h("tr", {}, ["role", "agents", "in flight", "finished"].map((c) => h("th", {}, c)))),
          h("tbody", {}, roles.map((role) => h("tr", { "data-role": role },
            h("td", {}, role), h("td", { class: "num" }, (status.councils[role] || []).length),
            h("td", { class: "num", "data-in-flight": role }, inFlight[role] || 0),
            h("td", {}, Object.entries(status.per_role[role] || {}).map(([k, n]) => `${k} ${n}`).join(", ") || "–")))))));
  });
}
