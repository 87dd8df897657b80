"""Time expressions in a query, resolved against a reference time.

"today's meetings", "what did I decide last week", "notes from May 2023", "the last annual
meeting": the words that name a time become an ``occurred_at`` window, and "last X" /
"latest X" / "most recent X" asks for the most recent matching occasion only. The caller
may pass the reference time (``now``); by default it is the current time. Weeks start on
Monday. Windows are half-open in spirit but stored inclusive: ``until`` is the last second.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from memory.errors import InvalidInput
from memory.models import TimeWindow
from memory.timeutil import to_stored

MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH_WORDS = "|".join(sorted(MONTHS, key=len, reverse=True))
_UNITS = ("week", "month", "year")


@dataclass
class _Span:
    start: datetime
    end: datetime  # exclusive


def _day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1, day=1)


def _relative(word: str, unit: str, now: datetime) -> _Span:
    today = _day(now)
    shift = {"this": 0, "last": -1, "past": -1, "previous": -1, "next": 1, "coming": 1}[word]
    if unit == "week":
        start = today - timedelta(days=today.weekday()) + timedelta(weeks=shift)
        return _Span(start, start + timedelta(weeks=1))
    if unit == "month":
        start = _add_months(today.replace(day=1), shift)
        return _Span(start, _add_months(start, 1))
    start = today.replace(month=1, day=1).replace(year=today.year + shift)
    return _Span(start, start.replace(year=start.year + 1))


_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(today|tonight|this morning|this afternoon|this evening)(?:'s)?\b", re.I), "today"),
    (re.compile(r"\byesterday(?:'s)?\b", re.I), "yesterday"),
    (re.compile(r"\btomorrow(?:'s)?\b", re.I), "tomorrow"),
    (re.compile(r"\b(this|last|past|previous|next|coming)\s+(week|month|year)(?:'s)?\b", re.I), "relative"),
    (re.compile(rf"\b(?:in|during|from|of)?\s*({_MONTH_WORDS})\.?\s+(\d{{4}})\b", re.I), "month_year"),
    (re.compile(r"\b(?:in|during|of)\s+(\d{4})\b", re.I), "year"),
    (re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"), "date"),
]
_LATEST = re.compile(r"\b(?:the\s+)?(last|latest|most recent|previous)\s+(?!(?:week|month|year|time)\b)([a-z])", re.I)


_FROM_NOW = ("today", "yesterday", "tomorrow", "relative")
END_OF_TIME = datetime.max.replace(tzinfo=UTC)


def _capped(start: datetime, step: Callable[[datetime], datetime]) -> datetime:
    """The end of a span from ``start``, cut at the calendar's last moment: "December 9999" has one."""
    try:
        return step(start)
    except (OverflowError, ValueError):
        return END_OF_TIME


def _span(kind: str, match: re.Match[str], now: datetime, today: datetime) -> _Span | None:
    """The span one matched expression names; None for one that names no date (2023-02-30)."""
    if kind == "today":
        return _Span(today, today + timedelta(days=1))
    if kind == "yesterday":
        return _Span(today - timedelta(days=1), today)
    if kind == "tomorrow":
        return _Span(today + timedelta(days=1), today + timedelta(days=2))
    if kind == "relative":
        return _relative(match.group(1).lower(), match.group(2).lower(), now)
    if kind == "month_year":
        start = _month_start(int(match.group(2)), MONTHS[match.group(1).lower()])
        return _Span(start, _capped(start, lambda s: _add_months(s, 1)))
    if kind == "year":
        year = int(match.group(1))
        if not 1900 <= year <= 2200:
            return None
        return _Span(datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC))
    start = datetime(int(match.group(1)), int(match.group(2)), int(match.group(3)), tzinfo=UTC)  # kind == "date"
    return _Span(start, _capped(start, lambda s: s + timedelta(days=1)))


def resolve(query: str, now: datetime | None = None) -> tuple[TimeWindow | None, str]:
    """The time window a query names (or None), and the query without the time words."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    today = _day(now)
    span: _Span | None = None
    expression = ""
    cleaned = query
    for pattern, kind in _PATTERNS:
        match = pattern.search(query)
        if not match:
            continue
        try:
            span = _span(kind, match, now, today)
        except (OverflowError, ValueError):  # a span past the calendar's ends (issue 26)
            if kind in _FROM_NOW:
                raise InvalidInput(
                    f"{match.group(0).strip()!r} read from now={to_stored(now)} falls outside the calendar "
                    "(years 1 to 9999): pass a reference time `now` further from its ends"
                ) from None
            span = None  # "December 9999" in the text: not read as a window
        if span is None:
            continue
        expression = match.group(0).strip()
        cleaned = (query[: match.start()] + " " + query[match.end() :]).strip()
        break
    latest = _LATEST.search(cleaned)
    if span is None and latest is None:
        return None, query
    latest_words = cleaned[latest.start() : latest.start(2)].strip() if latest else ""
    window = TimeWindow(expression=" ".join(w for w in (expression, latest_words) if w))
    if span is not None:
        window.since = to_stored(span.start)
        window.until = to_stored(span.end - timedelta(microseconds=1))  # the last second of the span
    if latest is not None:
        window.latest = True
        if window.until is None:
            # "the last X" means the most recent X that already happened.
            window.until = to_stored(now)
        cleaned = (cleaned[: latest.start()] + " " + latest.group(2) + cleaned[latest.end() :]).strip()
    return window, re.sub(r"\s+", " ", cleaned) or query
