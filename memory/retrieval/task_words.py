"""Task words in a query, read into structured filters against a reference time.

"which tasks are overdue", "what's due next week", "open tasks for the launch goal",
"tasks due by Friday", "finished goals": the words that name a state or a due date become
``states`` / ``due_after`` / ``due_before`` / ``overdue`` filters, the way ``time_words``
turns "last week" into an ``occurred_at`` window. State words ("open", "done") are read
only when the query talks about tasks or goals, so "the shop is open on Sundays" stays a
plain search; due words need "due" (or "overdue") and always mean open work. A goal named
as "for the X goal" is returned as a phrase for the caller to resolve to a memory id.
Weeks start on Monday, as in ``time_words``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from memory.errors import InvalidInput
from memory.models import OPEN_STATES, TaskFilter
from memory.retrieval.search import content_words
from memory.retrieval.time_words import _add_months, _capped, _day
from memory.timeutil import to_stored

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TASKY = re.compile(r"\b(tasks?|to-?dos?|goals?|chores?|errands?|deadlines?|due|overdue|work items?)\b", re.I)
_OVERDUE = re.compile(r"\b(overdue|past[- ]due|behind schedule|late)\b", re.I)
_STATE_WORDS: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    (re.compile(r"\b(open|unfinished|pending|outstanding|incomplete|not done|still to do|remaining)\b", re.I), OPEN_STATES),
    (re.compile(r"\b(done|finished|completed|closed)\b", re.I), ("done", "achieved")),
    (re.compile(r"\b(achieved|reached|met)\b", re.I), ("achieved",)),
    (re.compile(r"\b(blocked|stuck)\b", re.I), ("blocked",)),
    (re.compile(r"\b(in[ _-]progress|under way|underway|started)\b", re.I), ("in_progress",)),
    (re.compile(r"\b(dropped|abandoned|cancell?ed)\b", re.I), ("dropped",)),
]
_WEEKDAY = "|".join(WEEKDAYS)
_DUE = re.compile(
    r"\b(?:(?:is|are)\s+)?due\s+(?:"
    r"(?P<rel>this|next|coming)\s+(?P<unit>week|month)"
    r"|(?P<day>today|tomorrow|tonight)"
    rf"|(?P<by>by|before|until|on)\s+(?:(?:this|next)\s+)?(?:(?P<weekday>{_WEEKDAY})|(?P<date>\d{{4}}-\d{{2}}-\d{{2}})|(?P<byday>today|tomorrow|tonight|the end of (?:the )?(?P<endunit>week|month)))"
    r"|(?:on\s+)?(?P<onweekday>" + _WEEKDAY + r")"
    r"|soon"
    r")(?:'s)?\b",
    re.I,
)
# Each run of spaces is read one way only (possessive, and the name starts with no space): the
# pattern before, ``\s+(?:the|my|our|this)?\s*(?P<name>[\w' -]{2,60}?)\s+goal``, could split a run
# of spaces between four parts in every way, 3 s on a query with 2,000 spaces (issue 26).
_GOAL = re.compile(
    r"\b(?:for|of|under|toward|towards)\s++(?:(?:the|my|our|this)\s++)?(?P<name>[\w'-][\w' -]{0,59}?)\s++goal\b", re.I
)
SOON_DAYS = 7
# A type named with nothing else to search for ("what are my goals?", "list my tasks"): a listing
# of every open one, not a relevance-ranked few (a goal whose words the question does not share
# fell under the relevance floor).
_LISTED = re.compile(r"\b(?:(?P<goal>goals?)|tasks?|to-?dos?|chores?|errands?)\b", re.I)
_LISTING_WORDS = frozenset({"list", "show", "give", "tell", "remind", "current", "all", "every"})


@dataclass
class TaskWords:
    """What the task words of a query ask for, and the query without them."""

    filter: TaskFilter | None
    cleaned: str
    goal: str | None = None  # "the launch goal" -> "launch": a goal the caller resolves to its id
    types: list[str] = field(default_factory=list)
    listing: bool = False  # the query asks for every open memory of a type, nothing else


def _stamp(moment: datetime) -> str:
    return to_stored(moment)


def _due_span(match: re.Match[str], now: datetime) -> tuple[datetime | None, datetime]:
    """(start or None, exclusive end) of the due window a ``_DUE`` match names."""
    today = _day(now)
    groups = match.groupdict()
    if groups["rel"]:
        shift = 0 if groups["rel"].lower() == "this" else 1
        if groups["unit"].lower() == "week":
            start = today - timedelta(days=today.weekday()) + timedelta(weeks=shift)
            return start, start + timedelta(weeks=1)
        start = _add_months(today.replace(day=1), shift)
        return start, _add_months(start, 1)
    day_word = (groups["day"] or groups["byday"] or "").lower()
    if groups["endunit"]:
        if groups["endunit"].lower() == "week":
            return None, today - timedelta(days=today.weekday()) + timedelta(weeks=1)
        return None, _add_months(today.replace(day=1), 1)
    if day_word:
        offset = 1 if day_word == "tomorrow" else 0
        start = today + timedelta(days=offset)
        return (None if groups["by"] else start), start + timedelta(days=1)
    weekday = (groups["weekday"] or groups["onweekday"] or "").lower()
    if weekday:
        ahead = (WEEKDAYS.index(weekday) - today.weekday()) % 7
        start = today + timedelta(days=ahead)
        on_the_day = groups["onweekday"] or (groups["by"] or "").lower() == "on"
        return (start if on_the_day else None), start + timedelta(days=1)
    if groups["date"]:
        start = datetime.fromisoformat(groups["date"]).replace(tzinfo=UTC)
        on_the_day = (groups["by"] or "").lower() == "on"
        return (start if on_the_day else None), _capped(start, lambda s: s + timedelta(days=1))
    return today, today + timedelta(days=SOON_DAYS)  # "due soon"


def _cut(text: str, match: re.Match[str]) -> str:
    return re.sub(r"\s+", " ", text[: match.start()] + " " + text[match.end() :]).strip()


def read(query: str, now: datetime | None = None) -> TaskWords:
    """The task filters a query's words name (``filter`` None when it names none)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if not _TASKY.search(query):
        return TaskWords(filter=None, cleaned=query)
    cleaned = query
    words: list[str] = []
    states: list[str] = []
    due_after: str | None = None
    due_before: str | None = None
    overdue = False
    due = _DUE.search(cleaned)
    span = None
    if due:
        try:
            span = _due_span(due, now)
        except (OverflowError, ValueError):  # past the calendar's ends, or no date (2023-02-30) (issue 26)
            if not due.group("date"):
                raise InvalidInput(
                    f"{due.group(0).strip()!r} read from now={to_stored(now)} falls outside the calendar "
                    "(years 1 to 9999): pass a reference time `now` further from its ends"
                ) from None
            due = None  # not a date: the words stay in the query
    if due and span:
        start, end = span
        due_after = _stamp(start) if start is not None else None
        due_before = _stamp(end - timedelta(microseconds=1))  # the last second of the window
        words.append(due.group(0).strip())
        cleaned = _cut(cleaned, due)
    late = _OVERDUE.search(cleaned)
    if late:
        overdue = True
        words.append(late.group(0))
        cleaned = _cut(cleaned, late)
    for pattern, named in _STATE_WORDS:
        match = pattern.search(cleaned)
        if match:
            states.extend(s for s in named if s not in states)
            words.append(match.group(0))
            cleaned = _cut(cleaned, match)
    if (due_before or overdue) and not states:
        states = list(OPEN_STATES)  # what is due is what is still to do
    goal = _GOAL.search(cleaned)
    goal_name = None
    if goal and (states or due_before or overdue or re.search(r"\btasks?\b", cleaned, re.I)):
        goal_name = goal.group("name").strip()
        words.append(goal.group(0).strip())
    if not words:
        return _listing(query)
    asks_tasks = re.search(r"\b(tasks?|to-?dos?|chores?|errands?)\b", query, re.I) is not None
    asks_goals = re.search(r"\bgoals?\b", _GOAL.sub(" ", query)) is not None
    types = ["task"] if asks_tasks and not asks_goals else ["goal"] if asks_goals and not asks_tasks else []
    found = TaskFilter(
        expression=", ".join(words), states=states or None, due_after=due_after, due_before=due_before, overdue=overdue
    )
    if overdue:
        found.due_before = min(filter(None, [found.due_before, _stamp(now)]))
    return TaskWords(filter=found, cleaned=cleaned or query, goal=goal_name, types=types)


def _listing(query: str) -> TaskWords:
    """A query that names a type and nothing else to search for, read as every open one of it."""
    listed = _LISTED.search(query)
    if listed is None or set(content_words(_cut(query, listed))) - _LISTING_WORDS:
        return TaskWords(filter=None, cleaned=query)
    found = TaskFilter(expression=listed.group(0), states=list(OPEN_STATES))
    kind = "goal" if listed.group("goal") else "task"
    return TaskWords(filter=found, cleaned=_cut(query, listed) or query, types=[kind], listing=True)
