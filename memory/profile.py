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
from memory.store.engines import AnyCubeStore
from memory.timeutil import now_utc, shifted_stored, to_stored

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


def _task_line(task: Memory, now: str) -> str:
    parts = [f"[{task.state}]" if task.state else "", _short(task.text)]
    if task.due_at:
        parts.append(f"(due {_day(task.due_at)}{', overdue' if task.due_at < now and task.state != 'done' else ''})")
    if task.feedback:
        last = task.feedback[-1]
        said = "; ".join(
            p for p in (f"tried: {last.tried}" if last.tried else "", f"result: {last.result}" if last.result else "") if p
        )
        parts.append(f"— latest feedback {_day(last.at)}: {_short(said)}")
    return " ".join(p for p in parts if p)


def build_profile(
    store: AnyCubeStore, *, role: str | None = None, budget_tokens: int = DEFAULT_BUDGET_TOKENS, now: datetime | None = None
) -> Profile:
    moment = now or now_utc()
    now_s = to_stored(moment)
    horizon = shifted_stored(moment, timedelta(days=UPCOMING_DAYS))  # cut at the calendar's ends (issue 26)
    since = shifted_stored(moment, -timedelta(days=RECENTLY_DONE_DAYS))
    rows = store.profile_sections(role=role, now=now_s, horizon=horizon, done_since=since, top_facts=TOP_FACTS)
    goals, open_tasks, upcoming, preferences, done, facts = (
        rows.goals,
        rows.open_tasks,
        rows.upcoming,
        rows.preferences,
        rows.done,
        rows.facts,
    )
    # Overdue work first, whatever its state.
    open_tasks.sort(key=lambda t: 0 if t.due_at and t.due_at < now_s else 1)

    sections: list[ProfileSection] = [
        ProfileSection(title="Active goals", lines=[ProfileLine(id=g.id, text=_short(g.text)) for g in goals]),
        ProfileSection(title="Open tasks", lines=[ProfileLine(id=t.id, text=_task_line(t, now_s)) for t in open_tasks]),
        ProfileSection(
            title="Coming up", lines=[ProfileLine(id=m.id, text=f"{_day(m.occurred_at)} {_short(m.text)}") for m in upcoming]
        ),
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
        fitting: list[ProfileLine] = []
        for line in section.lines:
            cost = estimate_tokens(f"- [{line.id}] {line.text}") + 1 + (title_cost if not fitting else 0)
            if used + cost > budget_tokens:
                omitted += 1
                continue
            used += cost
            fitting.append(line)
        if fitting:
            kept.append(ProfileSection(title=section.title, lines=fitting))
    text_lines = [header]
    for section in kept:
        text_lines.append(f"\n{section.title}:")
        text_lines += [f"- [{line.id}] {line.text}" for line in section.lines]
    text = "\n".join(text_lines)
    return Profile(
        cube=store.cube,
        role=role,
        now=now_s,
        budget_tokens=budget_tokens,
        tokens=estimate_tokens(text),
        sections=kept,
        omitted=omitted,
        text=text,
    )
