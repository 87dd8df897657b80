"""Holidays kept on the same days wherever they are kept, for time words ("over Christmas", "before Thanksgiving").

Each maps a year to its first day and how many days it lasts. "Christmas" is Christmas Eve to
Boxing Day (people say "over Christmas" of those days), Easter Good Friday to Easter Monday; Thanksgiving is the United States' (the fourth Thursday of
November). "The new year" is left alone (often the months ahead, not a day). Holidays that move with a local calendar (Diwali, Lunar New Year, Eid) are not here:
their dates need tables, not rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def _easter(year: int) -> datetime:
    """Easter Sunday of ``year`` (Gregorian; the anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 19 * l_) // 433
    month = (h + l_ - 7 * m + 90) // 25
    return datetime(year, month, (h + l_ - 7 * m + 33 * month + 19) % 32, tzinfo=UTC)


def _thanksgiving(year: int) -> datetime:
    """The fourth Thursday of November (the United States' Thanksgiving)."""
    first = datetime(year, 11, 1, tzinfo=UTC)
    return first + timedelta(days=(3 - first.weekday()) % 7 + 21)


# name -> (its first day in year Y, how many days it lasts)
HOLIDAYS: dict[str, Callable[[int], tuple[datetime, int]]] = {
    "christmas eve": lambda y: (datetime(y, 12, 24, tzinfo=UTC), 1),
    "christmas day": lambda y: (datetime(y, 12, 25, tzinfo=UTC), 1),
    "christmas": lambda y: (datetime(y, 12, 24, tzinfo=UTC), 3),
    "xmas": lambda y: (datetime(y, 12, 24, tzinfo=UTC), 3),
    "boxing day": lambda y: (datetime(y, 12, 26, tzinfo=UTC), 1),
    "new year's eve": lambda y: (datetime(y, 12, 31, tzinfo=UTC), 1),
    "new year's day": lambda y: (datetime(y, 1, 1, tzinfo=UTC), 1),
    "halloween": lambda y: (datetime(y, 10, 31, tzinfo=UTC), 1),
    "valentine's day": lambda y: (datetime(y, 2, 14, tzinfo=UTC), 1),
    "thanksgiving": lambda y: (_thanksgiving(y), 1),
    "easter": lambda y: (_easter(y) - timedelta(days=2), 4),
}
HOLIDAY_PATTERN = r"christmas\s+eve|christmas\s+day|christmas|xmas|boxing\s+day|new\s+year[’']?s\s+eve|new\s+year[’']?s(?:\s+day)?|halloween|valentine[’']?s(?:\s+day)?|thanksgiving|easter"


def holiday_key(text: str) -> str:
    """The ``HOLIDAYS`` key of a matched name ("New Years", "Valentine’s" -> "new year's day", "valentine's day")."""
    key = re.sub(r"\s+", " ", text.lower().replace("’", "'"))
    if key.startswith("valentine"):
        return "valentine's day"
    if key in ("new years", "new year's"):
        return "new year's day"
    return key.replace("new years", "new year's")
