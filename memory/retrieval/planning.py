"""Query planning: what a search's words ask for, and the ranking passes that answer it.

``MemCube.search`` hands its query here with a ``Rank`` (the hybrid ranking on its cube,
``memory.retrieval.search.hybrid_search``). The plan:

1. Task words ("which tasks are overdue", "open tasks for the launch goal", "what are my
   goals?") become state, due-date, type and goal filters (``memory.retrieval.task_words``),
   unless the caller gave such filters; ``overdue`` becomes a concrete ``due_before``.
2. Time words ("last week", "the last retro") become an ``occurred_at`` window
   (``memory.retrieval.time_words``), unless the caller gave ``since``/``until``; when the
   window holds nothing relevant, the best matches nearest it come back marked
   ``outside_window`` (``memory.retrieval.time_preference``). Without time words, an event
   can name the window ("before the budget meeting": ``memory.retrieval.event_anchor``).
3. When the goal the words named leaves nothing, the search runs again without it.
4. The relevance floor (``memory.retrieval.relevance``) applies to free text only: structured
   filters already say what is relevant. Inside a time window a query with a topic keeps no
   absolute floor but leaves out the hits far weaker than its best that share nothing with it
   (the rest of the day is not padding); a query about the time alone keeps the whole window.
5. Questions about due dates ("what is overdue", "what's due next week") and listings of a
   type ("what are my goals?") come back by due date, earliest first (undated last).

At most five ranking passes: the goal's name, the event that names the window, the search
itself, a wider one around the time window, one without the goal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from memory.models import MAX_LIMIT, OPEN_STATES, SearchHit, SearchQuery, TaskFilter, TimeWindow
from memory.retrieval.event_anchor import EventPhrase, event_behind_topic, event_window, read_event
from memory.retrieval.relevance import apply_floor, asks_anything
from memory.retrieval.task_words import read as read_task_words
from memory.retrieval.time_preference import (
    better_outside,
    happened_first,
    holds_relevant,
    most_recent_first,
    names_no_topic,
    nearest_outside,
    topic_query,
)
from memory.retrieval.time_words import latest_subject
from memory.retrieval.time_words import resolve as resolve_time
from memory.timeutil import stored_from_input, to_stored

MAX_LIMIT_FOR_LATEST = 100

Rank = Callable[[SearchQuery], list[SearchHit]]
"""The hybrid ranking of one cube: the ``q.limit`` best hits for ``q`` (no time words read)."""


@dataclass
class Answer:
    """What the plan found: the hits and how the query's words were read."""

    query: SearchQuery  # the query with the filters its words named
    hits: list[SearchHit]
    time: TimeWindow | None
    time_applied: bool
    tasks: TaskFilter | None
    relevance: str
    below_floor: int


def has_task_filter(q: SearchQuery) -> bool:
    return bool(q.states or q.due_before or q.due_after or q.parents)


def answer(q: SearchQuery, rank: Rank, now: datetime | None = None) -> Answer:
    """Plan ``q`` against the reference time ``now`` (default: the current time) and run it through ``rank``."""
    q, tasks, text, listing = task_filters(q, rank, now)
    by_due = listing or bool(q.due_before or q.due_after)
    limit = q.limit
    if by_due and not asks_anything(text):
        # Nothing but the filters asked for ("what is overdue?"): every match is read (up to
        # MAX_LIMIT) and the earliest due kept, not the `limit` that best match the filler words.
        q = q.model_copy(update={"limit": MAX_LIMIT})
    window, cleaned = resolve_time(text, now)
    event: tuple[EventPhrase, SearchHit] | None = None
    if window is None and q.since is None and q.until is None:
        window, cleaned, event = _event_window(q, text, rank, now)
    hits: list[SearchHit]
    applied = False
    if window is None or q.since is not None or q.until is not None:
        window = None
        hits = rank(q.model_copy(update={"query": text}))
    else:
        # Inside the window the rest of the question decides the order: its topic words, not the
        # time words nor the words that ask about happening (memory.retrieval.time_preference).
        topic = topic_query(cleaned) or text
        timed = q.model_copy(
            update={
                "query": topic,
                "since": window.since,
                "until": window.until,
                "limit": min(MAX_LIMIT_FOR_LATEST, q.limit * 3) if window.latest else q.limit,
            }
        )
        hits = happened_first(rank(timed), window, now or datetime.now(UTC))
        if event is not None:
            hits = event_behind_topic(hits, *event)
        if window.latest and hits:
            hits = most_recent_first(hits, cleaned, latest_subject(text))[: q.limit]
        applied = bool(hits)
        if not (hits and (names_no_topic(cleaned) or holds_relevant(hits))):
            # Time is a strong preference, not a wall: when the window holds nothing relevant, the
            # best matches nearest it come back, marked outside_window (memory.retrieval.time_preference).
            wider = q.model_copy(update={"query": text, "limit": min(MAX_LIMIT_FOR_LATEST, q.limit * 3)})
            everywhere = rank(wider)
            if not hits or better_outside(hits, everywhere):
                hits, applied = nearest_outside(everywhere, window, q.limit), False
    if not hits and tasks is not None and q.parents:
        # The goal the words named may be the wrong one: the other filters still hold.
        q = q.model_copy(update={"parents": None})
        hits = rank(q.model_copy(update={"query": text}))
    if by_due:
        hits = sorted(hits, key=lambda h: (h.due_at is None, h.due_at or ""))[:limit]
        q = q.model_copy(update={"limit": limit})
    # Structured filters (task words, a time window, the caller's types, tags or dates) say
    # what is relevant; the floor is for free text.
    filters = has_task_filter(q) or bool(q.types or q.tags or q.since or q.until)
    # Inside a window, a query with a topic ("what did I buy last week") still leaves out the hits
    # far weaker than its best that share nothing with it; one about the time alone keeps them all.
    windowed = applied and not filters and not names_no_topic(cleaned)
    hits, dropped = apply_floor(
        hits,
        keep_weak=q.include_weak or filters or (applied and not windowed),
        filtered=has_task_filter(q),
        query=text,
        windowed=windowed,
    )
    return Answer(
        query=q,
        hits=hits,
        time=window,
        time_applied=applied,
        tasks=tasks,
        relevance=_relevance(q, hits, dropped, window),
        below_floor=dropped,
    )


def _event_window(
    q: SearchQuery, text: str, rank: Rank, now: datetime | None
) -> tuple[TimeWindow | None, str, tuple[EventPhrase, SearchHit] | None]:
    """The window an event in ``text`` names ("before the budget meeting"), the text to search it with,
    and the phrase with the event's memory; else (None, text, None)."""
    phrase = read_event(text)
    if phrase is None:
        return None, text, None

    def find(words: str, limit: int) -> list[SearchHit]:
        return rank(SearchQuery(query=words, limit=limit, include_archived=q.include_archived))

    found = event_window(phrase, find, now or datetime.now(UTC))
    if found is None:
        return None, text, None
    window, event = found
    return window, phrase.rest, (phrase, event)


def _relevance(q: SearchQuery, hits: list[SearchHit], dropped: int, window: TimeWindow | None) -> str:
    """How the hits were chosen against the relevance floor, for a person."""
    if hits:
        relevance = (
            "filtered by the task words and filters"
            if has_task_filter(q)
            else (f"{dropped} weak matches left out (include_weak returns them)" if dropped else "")
        )
    elif dropped:
        relevance = f"nothing relevant found: the {dropped} closest memories matched too weakly (include_weak returns them)"
    else:
        relevance = "nothing found" + (" that matches the filters" if has_task_filter(q) or q.types or q.tags else "")
    if window is not None and any(h.outside_window for h in hits):
        relevance = f"nothing relevant within {window.expression!r}: the best matches nearest it, marked outside_window" + (
            f"; {relevance}" if relevance else ""
        )
    return relevance


def task_filters(q: SearchQuery, rank: Rank, now: datetime | None) -> tuple[SearchQuery, TaskFilter | None, str, bool]:
    """``q`` with the filters its task words name (and ``overdue`` made concrete), what was read,
    the text left, and whether the words list a type ("what are my goals?")."""
    reference = now or datetime.now(UTC)
    words = read_task_words(q.query, reference)
    update: dict[str, Any] = {}
    found = words.filter
    given = bool(q.states or q.due_before or q.due_after or q.overdue or q.parents)
    if found is not None and not given:
        update.update(states=found.states, due_after=found.due_after, due_before=found.due_before)
        if not q.types and words.types:
            update["types"] = words.types
        if words.goal:
            goal = goal_named(words.goal, rank, q.include_archived)
            if goal is not None:
                update["parents"] = [goal]
    elif found is not None:
        found = None  # the caller's own filters win; the words stay in the text
    if q.overdue:
        states = [s for s in (q.states or OPEN_STATES) if s in OPEN_STATES] or list(OPEN_STATES)
        now_text = to_stored(reference)
        given_before = stored_from_input(q.due_before, field="due_before") if q.due_before is not None else None
        due_before = now_text if given_before is None or given_before > now_text else given_before
        update.update(states=states, due_before=due_before, overdue=False)
    text = words.cleaned if found is not None else q.query
    return (q.model_copy(update=update) if update else q), found, text, found is not None and words.listing


def goal_named(phrase: str, rank: Rank, include_archived: bool) -> str | None:
    """The goal a phrase such as "launch" names: the best goal match, when it matches at all."""
    hits = rank(SearchQuery(query=phrase, types=["goal"], limit=1, include_archived=include_archived))
    hits, _ = apply_floor(hits, keep_weak=False)
    return hits[0].id if hits else None
