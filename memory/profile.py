"""The profile: what the assistant should know about the user at the start of a conversation.

A compact view, most important first, each line with its memory id, cut to a token budget:

1. active goals;
2. open tasks (blocked and overdue first, then by due date), each with its latest feedback;
3. upcoming dated items (due dates and events in the next two weeks);
4. preferences, grouped by role;
5. tasks finished in the last two weeks, with what came of them;
6. the facts used most often.

With a ``role``, only memories in that role and memories without a role are shown.
Tokens are estimated at four characters each, the usual rule of thumb for English with
BPE tokenizers; the budget is a ceiling, never exceeded.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from memory.models import Memory
from memory.store.cube_store import CubeStore, row_to_memory, MEMORY_COLUMNS
from memory.timeutil import now_utc, to_stored

DEFAULT_BUDGET_TOKENS = 1_500
UPCOMING_DAYS = 14
RECENTLY_DONE_DAYS = 14
TOP_FACTS = 5
MAX_LINE_CHARS = 240


class ProfileLine(BaseModel):
    id: str
    text: str


class ProfileSection(BaseModel):
    title: str
    lines: list[ProfileLine]


class Profile(BaseModel):
    cube: str
    role: str | None
    now: str
    budget_tokens: int
    tokens: int = Field(description="estimated tokens of `text` (4 characters per token)")
    sections: list[ProfileSection]
    omitted: int = Field(description="lines left out to stay within the budget")
    text: str = Field(description="the profile as one block to put at the start of a conversation")


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_LINE_CHARS else text[: MAX_LINE_CHARS - 1] + "…"


def _day(stamp: str | None) -> str:
    return stamp[:10] if stamp else ""


def _load(store: CubeStore, where: str, params: list[object], order: str, limit: int = 200) -> list[Memory]:
    with store.lock:
        rows = store.conn.execute(
            f"SELECT {MEMORY_COLUMNS} FROM memories WHERE status = 'active' AND {where} ORDER BY {order} LIMIT ?",
            [*params, limit],
        ).fetchall()
    memories = [row_to_memory(store.cube, row) for row in rows]
    store._attach_feedback(memories)  # noqa: SLF001 - same layer; feedback lives beside the row
    return memories


def _task_line(task: Memory, now: str) -> str:
    parts = [f"[{task.state}]" if task.state else "", _short(task.text)]
    if task.due_at:
        parts.append(f"(due {_day(task.due_at)}{', overdue' if task.due_at < now and task.state != 'done' else ''})")
    if task.feedback:
        last = task.feedback[-1]
        said = "; ".join(p for p in (f"tried: {last.tried}" if last.tried else "", f"result: {last.result}" if last.result else "") if p)
        parts.append(f"— latest feedback {_day(last.at)}: {_short(said)}")
    return " ".join(p for p in parts if p)


def build_profile(store: CubeStore, *, role: str | None = None, budget_tokens: int = DEFAULT_BUDGET_TOKENS, now: datetime | None = None) -> Profile:
    moment = now or now_utc()
    now_s = to_stored(moment)
    role_sql, role_params = ("(role IS NULL OR role = ?)", [role]) if role else ("1", [])

    goals = _load(store, f"type = 'goal' AND state = 'active' AND {role_sql}", role_params, "importance DESC, updated_at DESC")
    open_tasks = _load(
        store, f"type = 'task' AND state IN ('todo', 'in_progress', 'blocked') AND {role_sql}", role_params,
        "CASE state WHEN 'blocked' THEN 0 WHEN 'in_progress' THEN 1 ELSE 2 END, due_at IS NULL, due_at, importance DESC",
    )
    # Overdue work first, whatever its state.
    open_tasks.sort(key=lambda t: (0 if t.due_at and t.due_at < now_s else 1))
    horizon = to_stored(moment + timedelta(days=UPCOMING_DAYS))
    upcoming = _load(
        store,
        f"type != 'task' AND occurred_at > ? AND occurred_at <= ? AND {role_sql}",
        [now_s, horizon, *role_params], "occurred_at",
    )
    preferences = _load(store, f"type = 'preference' AND {role_sql}", role_params, "role IS NOT NULL, role, importance DESC, updated_at DESC")
    since = to_stored(moment - timedelta(days=RECENTLY_DONE_DAYS))
    done = _load(store, f"type = 'task' AND state = 'done' AND updated_at >= ? AND {role_sql}", [since, *role_params], "updated_at DESC", 20)
    facts = _load(store, f"type = 'fact' AND {role_sql}", role_params, "access_count DESC, importance DESC, updated_at DESC", TOP_FACTS)

    sections: list[ProfileSection] = [
        ProfileSection(title="Active goals", lines=[ProfileLine(id=g.id, text=_short(g.text)) for g in goals]),
        ProfileSection(title="Open tasks", lines=[ProfileLine(id=t.id, text=_task_line(t, now_s)) for t in open_tasks]),
        ProfileSection(title="Coming up", lines=[ProfileLine(id=m.id, text=f"{_day(m.occurred_at)} {_short(m.text)}") for m in upcoming]),
    ]
    by_role: dict[str, list[ProfileLine]] = {}
    for p in preferences:
        by_role.setdefault(p.role or "general", []).append(ProfileLine(id=p.id, text=_short(p.text)))
    for name, lines in by_role.items():
        sections.append(ProfileSection(title=f"Preferences ({name})", lines=lines))
    sections.append(ProfileSection(title="Recently done", lines=[ProfileLine(id=t.id, text=_task_line(t, now_s)) for t in done]))
    sections.append(ProfileSection(title="Facts used most", lines=[ProfileLine(id=f.id, text=_short(f.text)) for f in facts]))

    # Fill the budget in priority order; a section header is paid for with its first line.
    header = f"What I know about the user{f' (role: {role})' if role else ''}, as of {_day(now_s)}:"
    used = estimate_tokens(header) + 1
    kept: list[ProfileSection] = []
    omitted = 0
    for section in sections:
        title_cost = estimate_tokens(f"\n{section.title}:") + 1
        lines: list[ProfileLine] = []
        for line in section.lines:
            cost = estimate_tokens(f"- [{line.id}] {line.text}") + 1 + (title_cost if not lines else 0)
            if used + cost > budget_tokens:
                omitted += 1
                continue
            used += cost
            lines.append(line)
        if lines:
            kept.append(ProfileSection(title=section.title, lines=lines))
    text_lines = [header]
    for section in kept:
        text_lines.append(f"\n{section.title}:")
        text_lines += [f"- [{line.id}] {line.text}" for line in section.lines]
    text = "\n".join(text_lines)
    return Profile(
        cube=store.cube, role=role, now=now_s, budget_tokens=budget_tokens, tokens=estimate_tokens(text),
        sections=kept, omitted=omitted, text=text,
    )
