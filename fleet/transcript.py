"""A deliberation record as people read it: `render` (the CLI's terminal text) and `markdown` (a
transcript to keep or share, `fleet show ID --format markdown`). Both read only the record."""

from __future__ import annotations

import textwrap

from fleet.schemas.record import DeliberationRecord, ExecutionFeedback
from fleet.schemas.scoring import ScoreCard
from fleet.selection.models import Behaviour


def _excerpt(text: str, full: bool, width: int = 700) -> str:
    body = text if full or len(text) <= width else text[:width].rstrip() + " [...]"
    return textwrap.indent(body, "    ")


def render(record: DeliberationRecord, engine_ready_s: float = 0.0, full: bool = False) -> str:
    """A deliberation record as a person reads it."""
    agents = {a.agent_id: a for a in record.council.agents}
    cfg = record.config
    out = [
        f"deliberation {record.deliberation_id}  role {record.council.role}  {len(agents)} agents  "
        f"{cfg.rounds} round(s) {cfg.topology}  quorum {record.quorum}  status {record.status.upper()}",
        f"task: {record.task.description}",
    ]
    for r in range(cfg.rounds + 1):
        drafts = [p for p in record.proposals if p.round == r]
        if r > 0:
            crit = [c for c in record.critiques if c.round == r]
            if crit:
                out.append(f"\n== critique, round {r} ({len(crit)}) ==")
            for c in crit:
                out.append(f"[{c.critic_id} -> {c.author_id}]  {c.usage.completion_tokens} tok, "
                           f"{c.usage.latency_ms / 1000:.1f} s")
                out.append(_excerpt(c.content, full, 300))
        if drafts:
            out.append(f"\n== {'proposals' if r == 0 else f'revisions, round {r}'} ({len(drafts)}) ==")
        for p in drafts:
            a = agents.get(p.author_id)
            samp = f"T={a.sampling.temperature} seed={a.sampling.seed}" if a else ""
            out.append(f"[{p.author_id}] {samp}  {p.usage.prompt_tokens} prompt + {p.usage.completion_tokens} "
                       f"completion tok, {p.usage.latency_ms / 1000:.1f} s, {p.usage.finish_reason}")
            if p.feedback is not None:
                out.append(f"    checks: {_feedback_line(p.feedback)}")
            out.append(_excerpt(p.content, full))
    if record.scores:
        out.append("\n== scores ==")
        out.append(f"{'rank':<5}{'candidate':<22}{'total':>7}{'tests':>8}{'lint':>6}{'judge':>7}  checks failed")
        for s in record.scores:
            tests = [c for c in s.checks if c.name.startswith("tests:") and c.status != "skipped"]
            passed, total = sum(c.tests_passed or 0 for c in tests), sum(c.tests_total or 0 for c in tests)
            tcol = f"{passed}/{total}" if tests else "-"
            lint = next((c for c in s.checks if c.name == "lint"), None)
            lcol = "-" if lint is None or lint.status == "skipped" else str(lint.detail.split()[0])
            judge = f"{s.judge.score:.1f}" if s.judge else "-"
            failed = ", ".join(f"{c.name} ({c.detail})" for c in s.checks if c.status == "failed") or "-"
            who = s.candidate_id or s.author_id
            out.append(f"{s.rank:<5}{who:<22}{s.total:>7.3f}{tcol:>8}{lcol:>6}{judge:>7}  {failed[:160]}")
            if s.judge and full:
                out += [f"      judge {c.criterion}: {c.score}/10 {c.reason}" for c in s.judge.criteria]
        sandbox = next((c.sandbox for s in record.scores for c in s.checks if c.sandbox), None)
        if sandbox:
            out.append(f"tests ran in the {sandbox} sandbox; lint = ruff findings; judge = mean criterion score /10")
    if record.behaviour is not None and record.behaviour.table:
        out += behaviour_lines(record.behaviour)
    if record.selection:
        sel = record.selection
        by = _chosen_by(sel.method, sel.architect_id, "top total")
        out.append(f"\nWINNER: {sel.winner_candidate or sel.winner_id}  chosen by {by} among {sel.candidates}"
                   + (f"; runner-up {sel.runner_up}" if sel.runner_up else ""))
        out.append(f"  why: {sel.reason}")
    out.append("\nfailures: " + ("none" if not record.failures else ""))
    for f in record.failures:
        out.append(f"  {f.agent_id} at {f.stage} round {f.round}: {f.error_type}: {f.message[:300]}")
    for n in record.notes:
        out.append(f"note: {n}")
    phases = "  ".join(f"{t.phase}{f' r{t.round}' if t.phase in ('critique', 'revise', 'check') else ''} "
                       f"{t.wall_ms / 1000:.1f}s" for t in record.timings)
    secs = record.duration_ms / 1000
    tok = record.tokens
    out.append(f"timings: {phases}  | deliberation {secs:.1f}s"
               + (f"  | engine start {engine_ready_s:.1f}s" if engine_ready_s else ""))
    rate = tok.completion_tokens / secs if secs else 0.0
    out.append(f"tokens: {tok.calls} calls, {tok.prompt_tokens} prompt + {tok.completion_tokens} completion "
               f"({rate:.1f} completion tok/s over the deliberation{tok.cache_text()})")
    if record.engine is not None:
        eng = record.engine
        out.append(f"engine: {eng.model} ({eng.kind}), {eng.dtype}, {'compiled' if eng.compiled else 'eager'}"
                   + (f"; {eng.dtype_reason}" if eng.dtype_reason else ""))
    return "\n".join(out)


def _feedback_line(fb: ExecutionFeedback) -> str:
    if not fb.code_found:
        return "no code block"
    parts = []
    if fb.truncated:
        parts.append("code cut off by max_tokens")
    if fb.parse_error:
        parts.append(f"does not parse ({fb.parse_error})")
    if fb.tests_total:
        parts.append(f"visible tests {fb.tests_passed}/{fb.tests_total}")
    parts.append(f"{len(fb.lint)} lint finding(s)")
    return ", ".join(parts)


def _md_block(text: str) -> str:
    """An agent's text as Markdown: as written (it is Markdown already), fences closed if cut off."""
    body = text.strip()
    if body.count("```") % 2:
        body += "\n```"
    return body


def _tests_cell(card: ScoreCard) -> str:
    tests = [c for c in card.checks if c.name.startswith("tests:") and c.status != "skipped"]
    if not tests:
        return "-"
    return f"{sum(c.tests_passed or 0 for c in tests)}/{sum(c.tests_total or 0 for c in tests)}"


def markdown(record: DeliberationRecord) -> str:
    """The whole deliberation as a Markdown transcript: the task, every proposal with its checks,
    every critique and revision in order, the scores, the winner and why, failures, notes, timings."""
    agents = {a.agent_id: a for a in record.council.agents}
    cfg = record.config
    out = [f"# Deliberation {record.deliberation_id}", "",
           f"{record.council.role} council of {len(agents)}, {cfg.rounds} round(s) {cfg.topology}, quorum "
           f"{record.quorum}: **{record.status}** in {record.duration_ms / 1000:.1f} s, started "
           f"{record.started_at:%Y-%m-%d %H:%M:%S} UTC", "", "## Task", "", record.task.render(), ""]
    for r in range(cfg.rounds + 1):
        if r > 0:
            crit = [c for c in record.critiques if c.round == r]
            if crit:
                out += [f"## Round {r}: critiques", ""]
            for c in crit:
                out += [f"### {c.critic_id} on {c.author_id}", "",
                        f"*{c.usage.completion_tokens} tokens, {c.usage.latency_ms / 1000:.1f} s*", "",
                        _md_block(c.content), ""]
        drafts = [p for p in record.proposals if p.round == r]
        if drafts:
            out += ["## Proposals" if r == 0 else f"## Round {r}: revisions", ""]
        for p in drafts:
            a = agents.get(p.author_id)
            who = f" (T={a.sampling.temperature}, seed {a.sampling.seed})" if a else ""
            out += [f"### {p.author_id}{who}", "",
                    f"*{p.usage.prompt_tokens} prompt + {p.usage.completion_tokens} completion tokens, "
                    f"{p.usage.latency_ms / 1000:.1f} s, {p.usage.finish_reason}*"
                    + (f"; checks: {_feedback_line(p.feedback)}" if p.feedback else ""), "",
                    _md_block(p.content), ""]
    if record.scores:
        out += ["## Scores", "", "| rank | agent | total | tests | judge | failed checks |",
                "|---:|---|---:|---:|---:|---|"]
        for s in record.scores:
            failed = ", ".join(c.name for c in s.checks if c.status == "failed") or "-"
            judge = f"{s.judge.score:.1f}" if s.judge else "-"
            out.append(f"| {s.rank} | {s.author_id} | {s.total:.3f} | {_tests_cell(s)} | {judge} | {failed} |")
        out.append("")
    if record.selection:
        sel = record.selection
        by = _chosen_by(sel.method, sel.architect_id, "the top total")
        out += ["## Winner", "", f"**{sel.winner_candidate or sel.winner_id}**, chosen by {by} among "
                f"{', '.join(sel.candidates)}"
                + (f" (runner-up {sel.runner_up})" if sel.runner_up else "") + ".", "", f"> {sel.reason}", ""]
    if record.failures:
        out += ["## Failures", ""] + [f"- {f.agent_id} at {f.stage} round {f.round}: {f.error_type}: {f.message}"
                                      for f in record.failures] + [""]
    if record.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in record.notes] + [""]
    tok = record.tokens
    out += ["## Timings", "", " | ".join(f"{t.phase}{f' r{t.round}' if t.round else ''} {t.wall_ms / 1000:.1f} s"
                                         for t in record.timings),
            "", f"{tok.calls} engine calls, {tok.prompt_tokens} prompt + {tok.completion_tokens} completion "
                f"tokens{tok.cache_text()}.",
            ""]
    if record.error:
        out += [f"**Error:** {record.error}", ""]
    return "\n".join(out)


def _chosen_by(method: str, architect_id: str | None, top: str) -> str:
    return {"architect": f"the architect {architect_id}", "consensus": "the consensus of behaviour"}.get(method, top)


def behaviour_lines(b: Behaviour) -> list[str]:
    """The probe table and the groups: each probe input, then each group's members and outputs."""
    out = ["\n== behaviour: probe inputs, and the candidates grouped by their outputs on them =="]
    out += [f"  p{i + 1} ({p.source}): {p.expression[:100]}" for i, p in enumerate(b.probes)]
    for i, g in enumerate(b.groups):
        out.append(f"  group {i + 1}: {g.visible_passed}/{g.visible_total} visible tests, {g.agreement} of "
                   f"{b.lineages} lineages agree: {', '.join(g.members)}")
        if g.outputs is None:
            row = next((r for r in b.table if r.candidate_id == g.members[0]), None)
            out.append(f"    did not run: {row.error[:160] if row else '?'}")
        else:
            out.append("    " + "  ".join(f"p{j + 1}={o[:24]}" for j, o in enumerate(g.outputs))[:200])
    return out

