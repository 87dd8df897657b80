"""Time expressions in a query ("last week", "in May 2023", "3 days ago") as a time range.

Search uses the range as a soft boost on ``occurred_at``, not as a filter: a question
about "May 2023" should rank May's memories first without hiding a memory whose date
was recorded a day off, or one that has no date at all. Relative expressions are read
against ``now`` (the time of the search, in UTC). Only the first expression counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .timeutil import to_stored

MONTHS = {
    name: number
    for number, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
         ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
         ("november", "nov"), ("december", "dec")],
        start=1,
    )
    for name in names
}
NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a few": 3, "couple of": 2, "few": 3,
}
_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_NUMBER = r"(?P<n>\d{1,3}|" + "|".join(sorted((re.escape(k) for k in NUMBERS), key=len, reverse=True)) + r")"
_UNIT = r"(?P<unit>day|week|month|year)s?"

PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("iso", re.compile(r"\b(?P<year>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b")),
    ("day_month_year", re.compile(rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+(?P<year>\d{{4}})\b", re.I)),
    ("month_day_year", re.compile(rf"\b{_MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<year>\d{{4}})\b", re.I)),
    ("month_year", re.compile(rf"\b{_MONTH},?\s+(?:of\s+)?(?P<year>\d{{4}})\b", re.I)),
    ("ago", re.compile(rf"\b{_NUMBER}\s+{_UNIT}\s+ago\b", re.I)),
    ("last_unit", re.compile(r"\b(?P<which>last|past|previous|this|current)\s+(?P<unit>week|month|year|weekend)\b", re.I)),
    ("yesterday", re.compile(r"\b(?P<word>yesterday|today|tonight|last night)\b", re.I)),
    ("in_month", re.compile(rf"\b(?:in|during|since|by)\s+{_MONTH}\b", re.I)),
    ("year", re.compile(r"\b(?:in|during|of|since)\s+(?P<year>(?:19|20)\d{2})\b", re.I)),
]


@dataclass(frozen=True)
class TimeRange:
    """A half-open range ``[start, end)`` in UTC, with the words it came from."""

    start: datetime
    end: datetime
    text: str

    @property
    def start_stored(self) -> str:
        return to_stored(self.start)

    @property
    def end_stored(self) -> str:
        return to_stored(self.end)

    def contains(self, stored: str | None) -> bool:
        return stored is not None and self.start_stored <= stored < self.end_stored


def _day(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _month_range(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _shift_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(d.day, 28))


def parse_time_range(query: str, now: datetime | None = None) -> TimeRange | None:
    """The period the query talks about, or None when it names none."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    today = now.date()
    best: tuple[int, TimeRange] | None = None
    for kind, pattern in PATTERNS:
        match = pattern.search(query)
        if match is None:
            continue
        found = _range(kind, match, today)
        if found is not None and (best is None or match.start() < best[0]):
            best = (match.start(), TimeRange(found[0], found[1], match.group(0)))
        if found is not None and kind in ("iso", "day_month_year", "month_day_year", "month_year"):
            break  # the most specific forms come first: take them over a looser reading of the same words
    return best[1] if best else None


def _range(kind: str, m: re.Match[str], today: date) -> tuple[datetime, datetime] | None:
    try:
        if kind == "iso":
            start = _day(date(int(m["year"]), int(m["m"]), int(m["d"])))
            return start, start + timedelta(days=1)
        if kind in ("day_month_year", "month_day_year"):
            start = _day(date(int(m["year"]), MONTHS[m["month"].lower()], int(m["day"])))
            return start, start + timedelta(days=1)
        if kind == "month_year":
            return _month_range(int(m["year"]), MONTHS[m["month"].lower()])
        if kind == "in_month":
            month = MONTHS[m["month"].lower()]
            if month == 5 and m["month"] == "may":  # lower-case "may" is a verb far more often than a month
                return None
            year = today.year if month <= today.month else today.year - 1
            return _month_range(year, month)
        if kind == "year":
            year = int(m["year"])
            return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
        if kind == "yesterday":
            word = m["word"].lower()
            day = today - timedelta(days=1) if word in ("yesterday", "last night") else today
            return _day(day), _day(day) + timedelta(days=1)
        if kind == "ago":
            raw = m["n"].lower()
            n = int(raw) if raw.isdigit() else NUMBERS[raw]
            unit = m["unit"].lower()
            # "3 weeks ago" is around then, not exactly then: a window the size of the unit around it.
            if unit == "day":
                day = today - timedelta(days=n)
                return _day(day), _day(day) + timedelta(days=1)
            if unit == "week":
                centre = today - timedelta(weeks=n)
                return _day(centre - timedelta(days=centre.weekday())), _day(centre - timedelta(days=centre.weekday())) + timedelta(weeks=1)
            if unit == "month":
                shifted = _shift_months(today, -n)
                return _month_range(shifted.year, shifted.month)
            return datetime(today.year - n, 1, 1, tzinfo=UTC), datetime(today.year - n + 1, 1, 1, tzinfo=UTC)
        if kind == "last_unit":
            which, unit = m["which"].lower(), m["unit"].lower()
            back = 0 if which in ("this", "current") else 1
            if unit in ("week", "weekend"):
                monday = today - timedelta(days=today.weekday()) - timedelta(weeks=back)
                if unit == "weekend":
                    saturday = monday + timedelta(days=5)
                    return _day(saturday), _day(saturday) + timedelta(days=2)
                return _day(monday), _day(monday) + timedelta(weeks=1)
            if unit == "month":
                shifted = _shift_months(today, -back)
                return _month_range(shifted.year, shifted.month)
            year = today.year - back
            return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    except (ValueError, KeyError):  # "31 February": not a date, so no range
        return None
    return None
