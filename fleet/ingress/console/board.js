// One deliberation, live, as a board: a column per agent (its state, proposals with their checks and
// lineage, the critiques it received, its score, failures in plain words), then the selection, the
// score table, tokens and time per stage, and the event log. Driven by the SSE stream: events are
// kept per tab (sessionStorage) and a reload or a dropped stream resumes with Last-Event-ID, so each
// event is applied once (deduplicated by its id).
import { api, readEvents } from "./api.js";
import { badge, errorBox, fill, fmt, folded, h } from "./dom.js";
import { renderAnswer } from "./highlight.js";

const FINISHED = new Set(["done", "failed", "cancelled"]);
const STAGES = ["setup", "generate", "check", "critique", "revise", "score", "judge", "select"];  // record order
const VERB = { setup: "start", generate: "write its draft", critique: "write a critique", revise: "revise its proposal",
  judge: "be judged", select: "choose the winner" };
const PLAIN = { EngineTimeoutError: "the engine did not answer in time", EngineDeadError: "the engine process died",
  EngineNotReadyError: "the engine was not ready", EngineError: "the engine call failed",
  AgentCallError: "the agent's process failed", TimeoutError: "it ran out of time", CancelledError: "it was cancelled" };

const cacheKey = (id) => `fleet.events.${id}`;

function loadCache(id) {
  try { return JSON.parse(sessionStorage.getItem(cacheKey(id)) || "[]"); } catch { return []; }
}

function saveCache(id, events) {
  try { sessionStorage.setItem(cacheKey(id), JSON.stringify(events)); } catch { sessionStorage.removeItem(cacheKey(id)); }
}

class Model {
  constructor() {
    this.status = "queued";
    this.error = null;
    this.agents = new Map();  // agent_id -> {proposals, received, given, failures, score}
    this.failures = [];
    this.scores = [];
    this.selection = null;
    this.usage = [];  // every call's usage seen in events
    this.record = null;
  }

  agent(id) {
    if (!this.agents.has(id)) this.agents.set(id, { id, proposals: [], received: [], given: [], failures: [], score: null });
    return this.agents.get(id);
  }

  apply({ type, data }) {
    if (type === "status") { this.status = data.status; this.error = data.error; }
    if (type === "proposal" || type === "revision") { this.agent(data.author_id).proposals.push(data); this.usage.push(data.usage); }
    if (type === "critique") {
      this.agent(data.critic_id).given.push(data);
      this.agent(data.author_id).received.push(data);
      this.usage.push(data.usage);
    }
    if (type === "failure") { this.failures.push(data); if (data.stage !== "select") this.agent(data.agent_id).failures.push(data); }
    if (type === "score") {
      this.scores.push(data);
      this.agent(data.author_id).score = data;
      if (data.judge) this.usage.push(data.judge.usage);
    }
    if (type === "winner") { this.selection = data; if (data.usage) this.usage.push(data.usage); }
  }

  stateOf(a) {
    if (this.selection?.winner_id === a.id) return "winner";
    if (a.score) return "scored";
    if (a.failures.length) return "failed";
    const last = a.proposals.length ? a.proposals[a.proposals.length - 1].round : -1;
    if (FINISHED.has(this.status)) return last < 0 ? "stopped" : "checked";
    if (last < 0) return "drafting";
    if (this.scores.length) return "scoring";
    if (a.received.some((c) => c.round > last)) return "revising";
    if (a.given.some((c) => c.round > last)) return "critiquing";
    return "checked";
  }
}

function plainFailure(f) {
  return `${f.agent_id} could not ${VERB[f.stage] || f.stage} (round ${f.round}): ${PLAIN[f.error_type] || f.error_type}. ${f.message}`;
}

function usageLine(u) {
  return u ? h("small", { class: "usage" }, `${fmt.int(u.prompt_tokens)} → ${fmt.int(u.completion_tokens)} tok · ${fmt.ms(u.latency_ms)}`
    + (u.finish_reason === "length" ? " · cut at max_tokens" : "")) : null;
}

function feedbackChips(fb) {
  if (!fb) return h("div", { class: "chips" }, h("span", { class: "chip" }, "not checked"));
  const tests = fb.tests_total
    ? h("span", { class: `chip ${fb.tests_passed === fb.tests_total ? "ok" : "bad"}`, "data-tests": `${fb.tests_passed}/${fb.tests_total}` },
      `visible tests ${fb.tests_passed}/${fb.tests_total}`)
    : h("span", { class: "chip" }, "no visible tests");
  const lint = !fb.code_found ? h("span", { class: "chip bad" }, "no code block")
    : fb.lint.length ? h("span", { class: "chip warn" }, `lint: ${fb.lint.length} finding${fb.lint.length > 1 ? "s" : ""}`)
      : h("span", { class: "chip ok" }, "lint clean");
  return h("div", { class: "chips" }, tests, lint, fb.truncated && h("span", { class: "chip bad" }, "code cut off"),
    fb.parse_error && h("span", { class: "chip bad" }, `does not parse: ${fb.parse_error}`));
}

function proposalCard(p) {
  const key = `p-${p.author_id}-${p.round}`;
  const fb = p.feedback;
  return h("article", { class: "proposal", "data-round": p.round },
    h("header", {}, h("strong", {}, p.round === 0 ? "Draft" : `Revision ${p.round}`),
      p.round > 0 && h("span", { class: "lineage" }, `↳ revises round ${p.round - 1}`), usageLine(p.usage)),
    feedbackChips(fb),
    fb?.lint?.length ? folded(fb.lint.join("\n"), { limit: 0, key: `${key}-lint` }) : null,
    fb?.failure ? folded(`First failing visible test:\n${fb.failure}`, { limit: 0, key: `${key}-fail` }) : null,
    h("div", { class: "answer" }, renderAnswer(p.content, key)));
}

function critiqueCard(c) {
  return h("details", { class: "critique", "data-key": `c-${c.critic_id}-${c.author_id}-${c.round}` },
    h("summary", {}, `critique from ${c.critic_id} · round ${c.round}`), usageLine(c.usage), h("pre", { class: "text" }, c.content));
}

function scoreBlock(card) {
  return h("div", { class: "score" }, h("strong", {}, `score ${fmt.score(card.total)} · rank ${card.rank}`),
    h("ul", { class: "checks" }, card.checks.map((c) => h("li", { class: `c-${c.status}` },
      `${c.name}: ${c.status}${c.tests_total ? ` ${c.tests_passed}/${c.tests_total}` : ""}${c.detail ? ` — ${c.detail}` : ""}`))));
}

function column(model, a) {
  const state = model.stateOf(a);
  return h("section", { class: `agent st-${state}`, "data-agent-column": a.id, "data-state": state },
    h("header", {}, h("h3", {}, a.id), h("span", { class: `state st-${state}`, "data-agent-state": state }, state)),
    a.given.length ? h("small", { class: "muted" }, `reviewed ${[...new Set(a.given.map((c) => c.author_id))].join(", ")}`) : null,
    a.failures.map((f) => h("p", { class: "failure" }, plainFailure(f))),
    a.proposals.map((p, i) => [i > 0 && h("div", { class: "arrow" }, "↓"), proposalCard(p)]),
    a.received.length ? h("div", { class: "received" }, h("h4", {}, "Critiques received"), a.received.map(critiqueCard)) : null,
    a.score && scoreBlock(a.score));
}

function selectionPanel(sel) {
  return h("section", { class: "card selection", "data-winner": sel.winner_id },
    h("h2", {}, "Winner: ", h("span", { id: "winner" }, sel.winner_id)),
    h("p", {}, `chosen by ${sel.method === "architect" ? sel.architect_id || "the architect" : "the top score"} among ${sel.candidates.join(", ")}`
      + (sel.runner_up ? `; runner-up ${sel.runner_up}` : "")),
    folded(sel.reason, { open: true, key: "reason", limit: 600 }));
}

function scoreTable(scores) {
  const components = [...new Set(scores.flatMap((s) => Object.keys(s.components)))];
  return h("section", { class: "card" }, h("h2", {}, "Scores"), h("div", { class: "scroll" }, h("table", { class: "list", id: "score-table" },
    h("thead", {}, h("tr", {}, ["rank", "agent", "total", ...components, "judge's criteria"].map((c) => h("th", {}, c)))),
    h("tbody", {}, [...scores].sort((x, y) => x.rank - y.rank).map((s) => h("tr", { "data-score-for": s.author_id },
      h("td", { class: "num" }, s.rank), h("td", {}, s.author_id), h("td", { class: "num" }, fmt.score(s.total)),
      components.map((c) => h("td", { class: "num" }, fmt.score(s.components[c]))),
      h("td", {}, s.judge ? s.judge.criteria.map((c) => `${c.criterion} ${c.score}`).join(", ") : "–")))))));
}

function stageTable(model) {
  const usage = model.record ? model.record.usage : model.usage;
  const wall = {};
  for (const t of model.record?.timings || []) wall[t.phase] = (wall[t.phase] || 0) + t.wall_ms;
  const rows = [...new Set([...STAGES, ...Object.keys(wall)])].map((stage) => {
    const calls = usage.filter((u) => u.stage === stage);
    return [stage, calls.length, calls.reduce((n, u) => n + u.prompt_tokens, 0), calls.reduce((n, u) => n + u.completion_tokens, 0), wall[stage]];
  }).filter(([, calls, , , w]) => calls || w !== undefined);
  return h("section", { class: "card" }, h("h2", {}, "Stages"), h("div", { class: "scroll" }, h("table", { class: "list", id: "stage-table" },
    h("thead", {}, h("tr", {}, ["stage", "calls", "prompt tok", "completion tok", "wall"].map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map(([stage, calls, prompt, completion, w]) => h("tr", {}, h("td", {}, stage), h("td", { class: "num" }, calls),
      h("td", { class: "num" }, fmt.int(prompt)), h("td", { class: "num" }, fmt.int(completion)), h("td", { class: "num" }, fmt.ms(w))))))));
}

export function openBoard(view, id) {
  const model = new Model();
  const seen = new Map();  // seq -> event: each applied once
  const cached = loadCache(id);
  let stopped = false;
  let state = null;
  let connection = "connecting";
  let pending = null;

  const head = h("div", { class: "board-head card" });
  const summary = h("div");
  const columns = h("div", { class: "columns" });
  const below = h("div", { class: "below" });
  const log = h("ol", { id: "event-log", class: "events" });
  const logBox = h("details", { class: "card", "data-key": "log" }, h("summary", {}, "Event log"), log);
  const root = h("div", { class: "board", id: "board", "data-deliberation": id }, head, summary, columns, below, logBox);
  view.append(root);

  const draw = () => {
    pending = null;
    saveCache(id, [...seen.values()]);
    const open = new Set([...root.querySelectorAll("details[open][data-key]")].map((d) => d.dataset.key));
    const closed = new Set([...root.querySelectorAll("details:not([open])[data-key]")].map((d) => d.dataset.key));
    root.dataset.status = model.status;
    if (model.selection) root.dataset.winner = model.selection.winner_id;
    // The final picture (the stream has ended and the record is in): nothing redraws after it.
    if (model.record && connection === "ended") root.dataset.record = model.record.status;
    const record = model.record;
    const tokens = model.usage.reduce((n, u) => n + u.prompt_tokens + u.completion_tokens, 0);
    const wallMs = record ? record.duration_ms : state?.started_at ? Date.now() - new Date(state.started_at) : null;
    fill(head,
      h("div", { class: "toolbar" }, h("h1", {}, id), badge(model.status),
        !FINISHED.has(model.status) && h("button", { class: "danger small", id: "cancel", onclick: () => api(`/deliberations/${encodeURIComponent(id)}`, { method: "DELETE" }).catch(() => {}) }, "Cancel")),
      h("p", { class: "task" }, record ? record.task.description : state ? `${state.role} · ${state.task_id}` : ""),
      h("p", { class: "muted" }, [state && `${state.role} council`, `${model.agents.size} agents`, `${fmt.int(record ? record.tokens.prompt_tokens + record.tokens.completion_tokens : tokens)} tokens`,
        `wall ${fmt.ms(wallMs)}`, `${seen.size} events`].filter(Boolean).join(" · "),
      h("span", { class: `conn c-${connection}`, id: "connection" }, ` · ${connection}`),
      cached.length ? h("span", { id: "resumed-from", "data-resumed-from": cached.length }, ` · reload resumed after event ${cached.length}`) : null),
      model.error && h("p", { class: "failure" }, `The deliberation ${model.status === "cancelled" ? "was cancelled" : "failed"}: ${model.error}`),
      record?.error && record.error !== model.error ? h("p", { class: "failure" }, record.error) : null);
    const agents = [...model.agents.values()].sort((x, y) => x.id.localeCompare(y.id));
    fill(columns, ...(agents.length ? agents.map((a) => column(model, a))
      : [h("p", { class: "muted waiting" }, FINISHED.has(model.status) ? "No proposals." : "The council is drafting…")]));
    const general = model.failures.filter((f) => f.stage === "select");
    fill(summary, model.selection ? selectionPanel(model.selection) : null);
    fill(below,
      general.length ? h("section", { class: "card" }, general.map((f) => h("p", { class: "failure" }, plainFailure(f)))) : null,
      model.scores.length ? scoreTable(model.scores) : null,
      stageTable(model),
      record?.notes?.length ? h("section", { class: "card" }, h("h2", {}, "Notes"), h("ul", {}, record.notes.map((n) => h("li", {}, n)))) : null);
    for (const d of root.querySelectorAll("details[data-key]")) {
      if (open.has(d.dataset.key)) d.open = true;
      else if (closed.has(d.dataset.key)) d.open = false;
    }
  };
  const redraw = () => { pending ??= setTimeout(draw, 50); };  // not rAF: hidden tabs must keep up too

  const onEvent = (event) => {
    if (seen.has(event.seq)) return;
    seen.set(event.seq, event);
    model.apply(event);
    log.append(h("li", { "data-event-seq": event.seq, class: `ev-${event.type}` },
      `#${event.seq} ${fmt.time(event.at)} ${event.type} ${event.data.author_id || event.data.agent_id || event.data.winner_id || event.data.status || ""}`));
    redraw();
  };

  const fetchState = async () => {
    state = await api(`/deliberations/${encodeURIComponent(id)}`);
    model.record = state.record;
    redraw();
  };

  // Follows the stream while this tab is visible: a browser holds 6 connections per host (HTTP/1.1),
  // so 20 streaming tabs would stall every call of the console. A hidden tab lets go of its stream
  // and, shown again, resumes after the last event it has (Last-Event-ID), as after a dropped one.
  let controller = null;
  const follow = async () => {
    if (controller || stopped || document.hidden) return;
    controller = new AbortController();
    const { signal } = controller;
    let delay = 500;
    while (!signal.aborted) {
      try {
        connection = "live";
        redraw();
        await readEvents(id, Math.max(0, ...seen.keys()), (event) => { onEvent(event); delay = 500; }, signal);
        if (FINISHED.has(model.status)) {  // the server ends the stream when the deliberation ends
          await fetchState().catch(() => {});
          connection = "ended";
          redraw();
          break;
        }
      } catch (e) {
        if (signal.aborted || e.status === 401) break;
        if (e.status === 404) { columns.replaceChildren(errorBox(e)); break; }
      }
      if (signal.aborted) break;
      connection = "reconnecting";
      redraw();
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
    if (controller?.signal === signal) controller = null;
  };
  const onVisibility = () => {
    if (document.hidden && controller) {
      controller.abort();
      controller = null;
      connection = "paused";
      redraw();
    } else if (!document.hidden && connection !== "ended") {
      follow();
    }
  };

  cached.forEach(onEvent);
  fetchState().catch(() => {});
  follow();
  document.addEventListener("visibilitychange", onVisibility);
  return () => {
    stopped = true;
    controller?.abort();
    clearTimeout(pending);
    saveCache(id, [...seen.values()]);
    document.removeEventListener("visibilitychange", onVisibility);
  };
}
