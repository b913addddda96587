// The start form and the councils editor. The server validates: a 4xx answer's reasons are shown
// beside the fields they name (a 422's `fields`: dotted paths such as "task.tests.1.source").
import { api } from "./api.js";
import { errorBox, folded, h } from "./dom.js";

function field(name, label, input, hint, scope = "") {
  input.id = `f-${scope}${name}`;
  input.name = name;
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input,
    hint && h("small", {}, hint), h("p", { class: "field-error", "data-error-for": name, role: "alert" }));
}

// Which form field a server error names: its dotted path, and which test suite went where.
function fieldFor(path, suites) {
  // Field names and indexes only: pydantic also names the union branch ("Task",
  // "function-after[_language(), Task]") of `task: Task | str`.
  const parts = path.split(".").filter((p) => /^([a-z_][a-z0-9_]*|\d+)$/.test(p));
  if (parts[0] === "task" && parts[1] === "str") return null;  // the other branch: noise once a Task was sent
  if (parts[0] === "task" && parts[1] === "tests") return suites[Number(parts[2])] ?? "visible";
  if (parts[0] === "task" && ["description", "requirements"].includes(parts[1])) return parts[1];
  if (parts[0] === "task" && parts.length === 1) return "description";
  return { role: "role", num_agents: "num_agents", rounds: "rounds" }[parts[0]] ?? null;
}

export function showErrors(form, error, mapField) {
  for (const p of form.querySelectorAll(".field-error, .form-error")) p.textContent = "";
  const general = [];
  const fields = error.body.fields || [];
  for (const f of fields) {
    f.message = f.message.replace(/^Value error, /, "");  // pydantic's prefix for a validator's own words
    const name = mapField(f.field);
    const slot = name && form.querySelector(`[data-error-for="${name}"]`);
    if (slot) slot.textContent = [slot.textContent, f.message].filter(Boolean).join("; ");
    else if (name !== null || fields.length === 1) general.push(`${f.field}: ${f.message}`);
  }
  if (!fields.length) {
    const name = error.body.error === "NotFoundError" ? "role" : null;  // the only thing the form names that can be missing
    const slot = name && form.querySelector(`[data-error-for="${name}"]`);
    if (slot) slot.textContent = error.message;
    else general.push(error.message);
  }
  if (general.length) form.querySelector(".form-error").textContent = general.join("; ");
}

export function openStart(view) {
  const role = h("select", {});
  api("/councils").then((cs) => role.replaceChildren(...cs.map((c) => h("option", { value: c.role, selected: c.role === "DEV" }, c.role))))
    .catch(() => role.append(h("option", { value: "DEV" }, "DEV")));
  const form = h("form", { class: "card start", novalidate: true },
    h("h1", {}, "Start a deliberation"),
    field("description", "Task", h("textarea", { rows: 3, placeholder: "Add rate limiting to the login endpoint" })),
    field("requirements", "Requirements", h("textarea", { rows: 3, placeholder: "one per line" }), "one per line"),
    h("div", { class: "two" },
      field("visible", "Visible tests (pytest)", h("textarea", { rows: 6, class: "mono", placeholder: "from solution import *\n\ndef test_…():" }),
        "agents see these and their results"),
      field("hidden", "Hidden tests (pytest)", h("textarea", { rows: 6, class: "mono" }), "grading only, never shown to an agent")),
    h("div", { class: "three" },
      field("role", "Role", role),
      field("num_agents", "Agents", h("input", { type: "number", value: 3 })),
      field("rounds", "Rounds", h("input", { type: "number", value: 1 }))),
    h("p", { class: "form-error error", role: "alert" }),
    h("button", { type: "submit" }, "Start"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = (name) => form.elements[name].value;
    const suites = [];
    const tests = [];
    for (const kind of ["visible", "hidden"]) {
      if (v(kind).trim()) { suites.push(kind); tests.push({ kind: "pytest", source: v(kind), visible: kind === "visible" }); }
    }
    const body = {
      task: { description: v("description"), requirements: v("requirements").split("\n").map((r) => r.trim()).filter(Boolean), tests },
      role: v("role") || "DEV",
    };
    for (const name of ["num_agents", "rounds"]) if (v(name).trim() !== "") body[name] = Number(v(name));
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const state = await api("/deliberations", { method: "POST", body });
      location.hash = `#/d/${encodeURIComponent(state.deliberation_id)}`;
    } catch (e) {
      if (e.status === 401) return;
      showErrors(form, e, (path) => fieldFor(path, suites));
    } finally {
      button.disabled = false;
    }
  });
  view.append(form);
  return () => {};
}

function agentRow(role, agent, redraw) {
  const s = agent.sampling;
  return h("tr", { "data-agent": agent.agent_id },
    h("td", { "data-label": "agent" }, agent.agent_id),
    h("td", { "data-label": "lens" }, agent.lens || "–"),
    h("td", { "data-label": "persona", class: "task" }, folded(agent.persona, { limit: 60 })),
    h("td", { "data-label": "sampling", class: "mono" }, `T ${s.temperature} · top_p ${s.top_p} · max ${s.max_tokens} · seed ${s.seed}`),
    h("td", {}, h("button", { class: "danger small", "data-remove": agent.agent_id, onclick: async (event) => {
      event.target.disabled = true;
      await api(`/councils/${encodeURIComponent(role)}/agents/${encodeURIComponent(agent.agent_id)}`, { method: "DELETE" })
        .catch((e) => alert(e.message));
      redraw();
    } }, "Remove")));
}

function addAgentForm(role, redraw) {
  const form = h("form", { class: "inline", novalidate: true, "data-add-agent": role },
    field("lens", "Lens", h("input", { placeholder: "what sets this agent apart" }), null, `${role}-`),
    field("persona", "Persona", h("input", { placeholder: "the council's, if empty" }), null, `${role}-`),
    field("temperature", "Temperature", h("input", { type: "number", step: "0.1", placeholder: "0.8" }), null, `${role}-`),
    h("button", { type: "submit" }, "Add agent"), h("p", { class: "form-error error", role: "alert" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = (name) => form.elements[name].value.trim();
    const body = {};
    if (v("lens")) body.lens = v("lens");
    if (v("persona")) body.persona = v("persona");
    if (v("temperature")) body.sampling = { temperature: Number(v("temperature")) };
    try {
      await api(`/councils/${encodeURIComponent(role)}/agents`, { method: "POST", body });
      redraw();
    } catch (e) {
      showErrors(form, e, (path) => ({ lens: "lens", persona: "persona", "sampling.temperature": "temperature" })[path] ?? null);
    }
  });
  return form;
}

export function openCouncils(view) {
  const box = h("div");
  view.append(h("section", {}, h("h1", {}, "Councils"), box));
  const draw = async () => {
    try {
      const councils = await api("/councils");
      box.replaceChildren(...councils.map((c) => h("section", { class: "card council", "data-council": c.role },
        h("h2", {}, c.role, h("small", {}, ` ${c.agents.length} agents`)),
        h("table", { class: "list" }, h("thead", {}, h("tr", {}, ["agent", "lens", "persona", "sampling", ""].map((t) => h("th", {}, t)))),
          h("tbody", {}, c.agents.map((a) => agentRow(c.role, a, draw)))),
        addAgentForm(c.role, draw))));
    } catch (e) {
      box.replaceChildren(errorBox(e));
    }
  };
  draw();
  return () => {};
}
