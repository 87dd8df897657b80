"""Time expressions in a query, resolved against a reference time, the way people mean them.

"today's meetings", "what did I decide last week", "in the past 10 days", "a few days ago",
"back in October", "in the summer", "notes from May 2023", "the last retro": the words that
name a time become an ``occurred_at`` window, and "the last X" / "latest X" / "most recent X"
asks for the most recent matching memory (ranked by recency among the relevant ones, no
window but "up to now"). The caller may pass the reference time (``now``); by default it is
the current time. Windows are stored inclusive: ``until`` is the last second.

What each phrase means (people are loose with time words, so a window errs on the wide side;
the search treats it as a strong preference, not a wall: see ``memory.retrieval.planning``):

- calendar periods: "this/last/next week|month|year", "last weekend", "earlier this month";
  "last week" is the week before this one as either of the two common calendars counts it
  (weeks starting on Monday, ISO; or on Sunday, as in the US): on a Sunday the two readings are
  six days apart, and "last week" asked on a Sunday often means the week just ending;
- rolling windows, up to now: "the past week", "in the last week", "the last 7 days",
  "last 10 days", "past 3 months";
- a moment back, with slack: "yesterday", "three days ago" (a day either side), "a few days
  ago" (two to five days), "two weeks ago" (half a week either side), "a couple of months ago";
- months and seasons, the most recent one that has begun: "in October", "back in October",
  "October 2023", "last October" (the most recent one that has ended), "in the summer";
  seasons are the northern hemisphere's meteorological ones (spring March to May, summer June
  to August, autumn/fall September to November, winter December to February);
- days: "2026-03-04", "March 4", "on Monday", "last Friday", "on the 3rd" (the most recent 3rd);
  years: "in 2022"; quarters and halves: "in Q3", "the third quarter of 2025", "last quarter",
  "the first half of the year" (a quarter needs a preposition or its year: "the Q3 numbers" is no time);
- hours: "in the past 48 hours", "3 hours ago"; "the week before last", "the other day" (up to a week
  back), "a week or two ago", "a month or so ago", "three days back";
- holidays kept on the same days everywhere: Christmas (Eve to Boxing Day), New Year's Eve and
  Day, Halloween, Valentine's Day, Easter (Good Friday to Easter Monday), and Thanksgiving (the
  United States': the fourth Thursday of November), with a preposition or "last"/"next";
- "since <any of the above>" runs from its start to now, "before"/"until <it>" up to its start,
  "after <it>" from its end ("before Monday's meeting" is Monday: bounded by an event of that day);
- ranges: "between May 3 and May 9", "from Monday to Wednesday", "May 3 to 9", "in March through May".

A bare word is never read as time: "a week in Lyon", "summer dress", "may", "Monday meetings"
(a month, season or weekday needs a preposition, a determiner or a year). The parser is a
small grammar of patterns (numbers, units, months, seasons, weekdays combined), about 0.2 ms
a query; a general date library was measured and not used (issue 27: dateparser takes 0.75 s
to import and 1-13 ms a query, reads "we" and "a week in" as dates, misses "in the past week",
"a few days ago", "in the summer" and gives moments, not windows; spaCy's DATE entities take
15-30 ms a query after a 3-7 s load, miss seasons and read "a week" as a date). "early",
"mid" and "late" take a third of the period ("early September": the 1st to the 10th).
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from memory.errors import InvalidInput
from memory.models import TimeWindow
from memory.retrieval.holidays import HOLIDAY_PATTERN, HOLIDAYS, holiday_key
from memory.stopwords import STOPWORDS
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
WEEKDAYS = {
    name: index for index, name in enumerate(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])
}
# Meteorological seasons of the northern hemisphere: the month each begins (winter runs into the next year).
SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}
NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
# Loose quantities: the range of counts people mean by them.
LOOSE = {"couple": (2, 3), "few": (2, 5), "several": (3, 7)}
UNIT_DAYS = {"hour": 1 / 24, "day": 1.0, "week": 7.0, "fortnight": 14.0, "month": 30.44, "year": 365.25}

_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_MONTH_FULL = "|".join(sorted((m for m in MONTHS if len(m) > 3 or m == "may"), key=len, reverse=True))
_WEEKDAY = "|".join(WEEKDAYS)
_SEASON = "|".join(SEASONS)
_COUNT = r"(?P<count>\d{1,3}|" + "|".join(NUMBERS) + r"|(?:a\s+)?(?:couple|few)(?:\s+of)?|several)"
_UNIT = r"(?P<unit>hour|day|week|fortnight|month|year)s?"
_PREP = r"(?:(?:back\s+)?(?:in|during|over|within|throughout|from|since|for|of|on|at)\s+)"
_END = r"(?:'s)?\b"
# A month or season bounded on one side ("before June", "until spring"; read by ``resolve``). Not a
# lower-case "may" ("the test before may fail"), nor "the": "after the summer party" is an event
# (``memory.retrieval.event_anchor``).
_ONE_SIDED = r"before|after|until|till|prior\s+to"
_BOUND = rf"(?:(?:{_ONE_SIDED})\s+(?!(?-i:may)\b))"
# "early September", "mid-2024", "late last year", "the end of last month": a third of the period.
_PART = r"(?P<part>early|mid|late|the\s+(?:start|beginning|middle|end)\s+of)[\s-]+"
_PART2 = _PART.replace("?P<part>", "?P<part2>")
PARTS = {"early": 0, "start": 0, "beginning": 0, "mid": 1, "middle": 1, "late": 2, "end": 2}


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


END_OF_TIME = datetime.max.replace(tzinfo=UTC)


def _capped(start: datetime, step: Callable[[datetime], datetime]) -> datetime:
    """The end of a span from ``start``, cut at the calendar's last moment: "December 9999" has one."""
    try:
        return step(start)
    except (OverflowError, ValueError):
        return END_OF_TIME


def _count(word: str) -> tuple[int, int]:
    """The range of counts a number word means: "3" (3, 3), "two" (2, 2), "a few" (2, 5)."""
    word = re.sub(r"\s+", " ", word.lower())
    if word.isdigit():
        return int(word), int(word)
    for loose, bounds in LOOSE.items():
        if loose in word:
            return bounds
    return NUMBERS[word], NUMBERS[word]


def _back(now: datetime, count: int, unit: str) -> datetime:
    """``count`` units before the start of ``now``'s day (months and years on the calendar; hours before ``now``)."""
    if unit == "hour":
        return now - timedelta(hours=count)
    today = _day(now)
    if unit in ("month", "year"):
        months = count * (12 if unit == "year" else 1)
        index = today.year * 12 + today.month - 1 - months
        year, month = index // 12, index % 12 + 1
        day = min(today.day, _days_in(year, month))
        return today.replace(year=year, month=month, day=day)
    return today - timedelta(days=count * UNIT_DAYS[unit])


def _days_in(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _g(match: re.Match[str], name: str) -> str:
    """A named group's text, "" when the pattern has no such group or it matched nothing."""
    return match.groupdict().get(name) or ""


# -- one resolver per kind of phrase: (match, now) -> span -------------------------------------


_SHIFTS = {"this": 0, "last": -1, "previous": -1, "next": 1, "coming": 1}


def _quarter_start(moment: datetime) -> datetime:
    return moment.replace(month=(moment.month - 1) // 3 * 3 + 1, day=1)


def _calendar(match: re.Match[str], now: datetime) -> _Span:
    """ "this/last/next week|weekend|month|quarter|year"; "the week before last" is two back."""
    unit = match.group("unit").lower()
    shift = -2 if _g(match, "before_last") else _SHIFTS[match.group("which").lower()]
    today = _day(now)
    if unit == "week":
        monday = today - timedelta(days=today.weekday())
        start = monday + timedelta(weeks=shift)
        span = _Span(start, start + timedelta(weeks=1))
        if shift < 0:
            # The week that far back where weeks start on Sunday too: the union of both readings.
            sunday = today - timedelta(days=(today.weekday() + 1) % 7) + timedelta(weeks=shift + 1)
            span = _Span(min(span.start, sunday - timedelta(weeks=1)), max(span.end, sunday))
        return span
    if unit == "weekend":
        saturday = today - timedelta(days=today.weekday()) + timedelta(days=5, weeks=shift)
        return _Span(saturday, saturday + timedelta(days=2))
    if unit == "month":
        start = _add_months(today.replace(day=1), shift)
        return _Span(start, _add_months(start, 1))
    if unit == "quarter":
        start = _add_months(_quarter_start(today), 3 * shift)
        return _Span(start, _add_months(start, 3))
    start = today.replace(month=1, day=1).replace(year=today.year + shift)
    return _Span(start, start.replace(year=start.year + 1))


ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
_ORDINAL = "|".join(ORDINALS)


def _part_of_year(match: re.Match[str], now: datetime) -> _Span | None:
    """ "Q3", "the third quarter of 2025", "the first half of the year": a quarter or half of a year
    (that year, or the most recent such part that has begun)."""
    number = int(_g(match, "qn")) if _g(match, "qn") else ORDINALS[match.group("which").lower()]
    months = 6 if _g(match, "half") else 3
    if months == 6 and number > 2:
        return None  # "the third half": no such part
    year_text = _g(match, "year").lower()
    if year_text.isdigit():
        if not 1 <= int(year_text) <= 9999:
            return None
        years = [int(year_text)]
    elif year_text:  # "this year", "last year", "the year"
        years = [now.year - 1] if "last" in year_text else [now.year]
    else:
        years = [now.year - 1, now.year]
    candidates = [_month_start(year, (number - 1) * months + 1) for year in years]
    start = candidates[0] if len(candidates) == 1 else _most_recent_start(candidates, now)
    return _Span(start, _capped(start, lambda s: _add_months(s, months)))


def _so_far(match: re.Match[str], now: datetime) -> _Span:
    """ "earlier this week/month/year", "earlier today": from the period's start to now; "later ...": from now to its end."""
    unit = (match.group("unit") or "day").lower()
    today = _day(now)
    if unit == "day":
        period = _Span(today, today + timedelta(days=1))
    elif unit == "week":
        period = _Span(today - timedelta(days=today.weekday()), today - timedelta(days=today.weekday()) + timedelta(weeks=1))
    elif unit == "month":
        period = _Span(today.replace(day=1), _add_months(today.replace(day=1), 1))
    else:
        period = _Span(today.replace(month=1, day=1), today.replace(month=1, day=1, year=today.year + 1))
    if match.group("side").lower() == "earlier":
        return _Span(period.start, now)
    return _Span(now, period.end)


def _rolling(match: re.Match[str], now: datetime) -> _Span:
    """ "the past week", "the last 10 days": from that many units before today's start up to now."""
    count = _count(_g(match, "count"))[1] if _g(match, "count") else 1
    unit = match.group("unit").lower()
    return _Span(_back(now, count, unit), now)


def _ago(match: re.Match[str], now: datetime) -> _Span:
    """ "three days ago", "a few weeks back", "a month or so ago", "a week or two ago", "5 hours ago":
    the moment that far back, with slack either side."""
    low, high = _count(match.group("count"))
    unit = match.group("unit").lower()
    more = _g(match, "more").lower()
    if more == "so":  # "a month or so ago": one to two months
        high += 1
    elif more:  # "a week or two ago"
        high = max(high, NUMBERS[more])
    if unit == "hour":
        return _Span(now - timedelta(hours=high + 1), now - timedelta(hours=max(low - 1, 0)))
    size = UNIT_DAYS[unit]
    if unit == "day":
        slack = 1.0 if low == high and low > 1 else 0.0
    else:
        slack = 0.5
    today = _day(now)
    start = today - timedelta(days=math.ceil((high + slack) * size))
    end = today - timedelta(days=math.floor((low - slack) * size)) + timedelta(days=1)
    return _Span(start, min(end, today + timedelta(days=1)))


def _named_day(match: re.Match[str], now: datetime) -> _Span:
    word = match.group("word").lower()
    today = _day(now)
    back = {"today": 0, "tonight": 0, "this morning": 0, "this afternoon": 0, "this evening": 0}
    if word in back:
        offset = 0
    elif word == "tomorrow":
        offset = 1
    elif word.startswith("the day after"):
        offset = 2
    elif word.startswith("the day before"):
        offset = -2
    else:  # yesterday, last night
        offset = -1
    start = today + timedelta(days=offset)
    return _Span(start, start + timedelta(days=1))


def _weekday(match: re.Match[str], now: datetime) -> _Span:
    which = (match.group("which") or "on").lower()
    target = WEEKDAYS[match.group("weekday").lower()]
    today = _day(now)
    if which == "next":
        ahead = (target - today.weekday()) % 7 or 7
        start = today + timedelta(days=ahead)
    elif which == "this":
        start = today - timedelta(days=today.weekday()) + timedelta(days=target)
    else:  # on / since / from (the most recent, today included), last / past / previous (before today)
        back = (today.weekday() - target) % 7
        if back == 0 and which in ("last", "past", "previous"):
            back = 7
        start = today - timedelta(days=back)
    return _Span(start, start + timedelta(days=1))


def _most_recent_start(
    candidates: list[datetime], now: datetime, *, ended: Callable[[datetime], datetime] | None = None
) -> datetime:
    """The latest start that has begun by ``now`` (or whose period has ended, given ``ended``)."""
    passed = [c for c in candidates if (ended(c) if ended else c) <= now]
    return max(passed) if passed else min(candidates)


def _month(match: re.Match[str], now: datetime) -> _Span:
    month = MONTHS[match.group("month").lower().rstrip(".")]
    year_text = _g(match, "year")
    which = (_g(match, "which") or _g(match, "which2")).lower()
    if year_text:
        start = _month_start(int(year_text), month)
    else:
        candidates = [_month_start(year, month) for year in (now.year - 1, now.year, now.year + 1) if 1 <= year <= 9999]
        step: Callable[[datetime], datetime] = lambda s: _capped(s, lambda x: _add_months(x, 1))  # noqa: E731
        if which == "next":
            start = min(c for c in candidates if c > now)
        elif which == "this":
            start = _month_start(now.year, month)
        elif which in ("last", "past", "previous"):
            start = _most_recent_start(candidates, now, ended=step)
        else:
            start = _most_recent_start(candidates, now)
    return _Span(start, _capped(start, lambda s: _add_months(s, 1)))


def _season(match: re.Match[str], now: datetime) -> _Span:
    # The pattern's two alternatives ("summer of 2023", "in the summer") name their groups apart.
    first = SEASONS[(_g(match, "season") or _g(match, "season2")).lower()]
    which = (_g(match, "which") or _g(match, "which2")).lower()
    year_text = _g(match, "year")

    def span(start: datetime) -> _Span:
        return _Span(start, _capped(start, lambda s: _add_months(s, 3)))

    if year_text:
        return span(_month_start(int(year_text), first))
    candidates = [_month_start(year, first) for year in (now.year - 1, now.year, now.year + 1) if 1 <= year <= 9999]
    if which == "next":
        return span(min(c for c in candidates if c > now))
    if which == "this":
        # The one under way, else this year's.
        current = [c for c in candidates if c <= now < span(c).end]
        return span(current[0] if current else _month_start(now.year, first))
    if which in ("last", "past", "previous"):
        return span(_most_recent_start(candidates, now, ended=lambda s: span(s).end))
    return span(_most_recent_start(candidates, now))


def _holiday(match: re.Match[str], now: datetime) -> _Span:
    """ "over Christmas", "last Thanksgiving", "on New Year's Eve 2025": the holiday's days, the most
    recent that has begun (or ended, after "last"; the next after "next")."""
    days_of = HOLIDAYS[holiday_key(match.group("holiday"))]

    def span(year: int) -> _Span:
        first, days = days_of(year)
        return _Span(first, first + timedelta(days=days))

    if _g(match, "year"):
        return span(int(match.group("year")))
    which = _g(match, "which").lower()
    spans = [span(year) for year in (now.year - 1, now.year, now.year + 1) if 2 <= year <= 9998]
    if which == "next":
        return min((s for s in spans if s.start > now), key=lambda s: s.start)
    if which == "this":
        return span(now.year)
    ended = which in ("last", "past", "previous")
    passed = [s for s in spans if (s.end if ended else s.start) <= now]
    return max(passed, key=lambda s: s.start) if passed else spans[0]


def _day_of_month(match: re.Match[str], now: datetime) -> _Span | None:
    """ "on the 1st": the most recent day of that number, today included."""
    day = int(match.group("day"))
    if not 1 <= day <= 31:
        return None
    month = _day(now).replace(day=1)
    for _ in range(12):
        if day <= _days_in(month.year, month.month):
            start = month.replace(day=day)
            if start <= now:
                return _Span(start, start + timedelta(days=1))
        month = _add_months(month, -1)
    raise ValueError("no such day")


def _other_day(match: re.Match[str], now: datetime) -> _Span:
    """ "the other day": a few days back, up to a week (loosely)."""
    today = _day(now)
    return _Span(today - timedelta(days=7), today)


def _date(match: re.Match[str], now: datetime) -> _Span:
    start = datetime(int(match.group("y")), int(match.group("m")), int(match.group("d")), tzinfo=UTC)
    return _Span(start, _capped(start, lambda s: s + timedelta(days=1)))


def _month_day(match: re.Match[str], now: datetime) -> _Span:
    month = MONTHS[match.group("month").lower().rstrip(".")]
    day = int(match.group("day"))
    if match.group("year"):
        start = datetime(int(match.group("year")), month, day, tzinfo=UTC)
    else:
        candidates = []
        for year in (now.year - 1, now.year):
            try:
                candidates.append(datetime(year, month, day, tzinfo=UTC))
            except ValueError:
                continue
        if not candidates:
            raise ValueError("no such day")
        start = _most_recent_start(candidates, now)
    return _Span(start, _capped(start, lambda s: s + timedelta(days=1)))


def _year(match: re.Match[str], now: datetime) -> _Span | None:
    year = int(match.group("year"))
    if not 1900 <= year <= 2200:
        return None
    return _Span(datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC))


@dataclass(frozen=True)
class _Phrase:
    pattern: re.Pattern[str]
    read: Callable[[re.Match[str], datetime], _Span | None]
    from_now: bool  # read relative to now (an overflow is the caller's `now` too near the calendar's ends)


def _p(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


# Tried in order; the first that reads a span wins (more specific phrases first).
_PHRASES: list[_Phrase] = [
    _Phrase(_p(r"\b(?:on\s+)?(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})\b"), _date, False),
    _Phrase(
        _p(rf"\b(?:{_PREP}|the\s+)?(?:the\s+|this\s+)?(?:past|last|previous|recent)\s+{_COUNT}\s+{_UNIT}{_END}"),
        _rolling,
        True,
    ),
    _Phrase(
        _p(
            rf"\b(?:{_PREP}?(?:the\s+|this\s+)?past|(?:{_PREP}the|the)\s+(?:last|previous))\s+{_UNIT}{_END}(?!\s+(?:of|before|after)\b)"
        ),
        _rolling,
        True,
    ),
    _Phrase(
        _p(
            rf"\b(?:about\s+|around\s+|roughly\s+)?{_COUNT}\s+{_UNIT}\s+(?:or\s+(?P<more>so|two|three)\s+)?"
            r"(?:ago\b|back\b(?!\s+(?:in|to|from|at|on|home|then)\b))"
        ),
        _ago,
        True,
    ),
    _Phrase(_p(r"\bthe\s+other\s+day\b"), _other_day, True),
    _Phrase(_p(r"\b(?P<side>earlier|later)\s+(?:this\s+(?P<unit>week|month|year)|today)\b"), _so_far, True),
    _Phrase(
        _p(
            r"\b(?P<word>the\s+day\s+before\s+yesterday|the\s+day\s+after\s+tomorrow|today|tonight|this\s+morning|this\s+afternoon|this\s+evening|yesterday|last\s+night|tomorrow)(?:'s)?\b"
        ),
        _named_day,
        True,
    ),
    # A quarter or half needs its year ("the first half of 2025", "Q3 of last year") or, for a quarter,
    # a preposition ("in Q3"): "the Q3 numbers" and "the first half of the film" are no time.
    _Phrase(
        _p(
            rf"\b{_PREP}?(?:the\s+)?(?:(?P<which>{_ORDINAL})\s+(?:(?P<quarter>quarter)|(?P<half>half))|q(?P<qn>[1-4]))"
            r"(?:\s+of)?\s+(?P<year>\d{4}|(?:the|this|last)\s+year)\b"
        ),
        _part_of_year,
        True,
    ),
    _Phrase(
        _p(rf"\b(?:in|during|over|from|since|by)\s+(?:the\s+)?(?:(?P<which>{_ORDINAL})\s+quarter|q(?P<qn>[1-4]))\b(?!\s+of\b)"),
        _part_of_year,
        True,
    ),
    _Phrase(
        _p(
            rf"\b(?:{_PREP}?(?:the\s+)?{_PART})?(?P<which>this|last|previous|next|coming)\s+(?P<unit>week|month|quarter|year|weekend)"
            rf"{_END}(?!\s+(?:of|before)\b)"
        ),
        _calendar,
        True,
    ),
    _Phrase(
        _p(rf"\b(?:{_PREP}?the\s+)?(?P<unit>week|month|quarter|year|weekend)\s+before\s+(?P<before_last>last)\b"), _calendar, True
    ),
    _Phrase(
        _p(
            # "before/after/since the Christmas party" names an event: memory.retrieval.event_anchor reads it.
            r"\b(?:(?:(?:back\s+)?(?:in|during|over|within|throughout|for|of|on|at|around))\s+(?:the\s+)?"
            r"|(?:since|from|before|after|until|till)\s+(?!the\b)|(?P<which>last|this|next|past|previous)\s+)"
            rf"(?P<holiday>{HOLIDAY_PATTERN})\b(?:,?\s+(?P<year>\d{{4}})\b)?"
        ),
        _holiday,
        True,
    ),
    _Phrase(
        _p(
            rf"\b(?:on\s+)?(?P<month>{_MONTH})\.?\s+(?P<day>[0-3]?\d)(?:st|nd|rd|th)?\b(?:,?\s+(?P<year>\d{{4}})\b)?(?!\s*(?:am|pm|:))"
        ),
        _month_day,
        False,
    ),
    _Phrase(
        _p(
            rf"\b(?:on\s+)?(?:the\s+)?(?P<day>[0-3]?\d)(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month>{_MONTH})\b\.?(?:,?\s+(?P<year>\d{{4}})\b)?"
        ),
        _month_day,
        False,
    ),
    _Phrase(_p(rf"\b{_PREP}?(?:(?:the\s+)?{_PART})?(?P<month>{_MONTH})\.?,?\s+(?P<year>\d{{4}})\b"), _month, False),
    _Phrase(
        _p(
            rf"\b(?:{_PREP}?(?:the\s+)?{_PART}(?:(?P<which2>last|this|next|past|previous)\s+)?"
            rf"|(?:{_PREP}|{_BOUND})(?:the\s+month\s+of\s+)?|(?P<which>last|this|next|past|previous)\s+)(?P<month>{_MONTH_FULL})(?P<year>)\b(?!\s+\d)"
        ),
        _month,
        True,
    ),
    _Phrase(
        _p(
            rf"\b(?:{_PREP}?(?:the\s+)?(?:{_PART2})?(?P<season>{_SEASON})\s+(?:of\s+)?(?P<year>\d{{4}})\b"
            rf"|(?:{_PREP}?(?:the\s+)?{_PART}(?:(?P<which2>last|this|next|past|previous)\s+)?|{_PREP}(?:the\s+)?|{_BOUND}"
            rf"|(?:{_PREP}?(?P<which>last|this|next|past|previous)\s+))(?P<season2>{_SEASON})\b)"
        ),
        _season,
        True,
    ),
    _Phrase(
        _p(rf"\b(?:(?P<which>on|last|this|next|past|previous|since|from|before|after)\s+)(?P<weekday>{_WEEKDAY})(?!s\b)\b"),
        _weekday,
        True,
    ),
    _Phrase(
        _p(rf"\bon\s+the\s+(?P<day>[0-3]?\d)(?:st|nd|rd|th)\b(?!\s*(?:of\s+)?(?:{_MONTH})\b)(?!\s+[a-z])"), _day_of_month, True
    ),
    _Phrase(_p(rf"\b(?:{_PREP}?(?:the\s+)?{_PART})(?P<year>\d{{4}})\b"), _year, False),
    _Phrase(_p(r"\b(?:in|during|of|back\s+in|from|throughout)\s+(?P<year>\d{4})\b"), _year, False),
    # "since 2020", "before 2020": not "after 2000 steps".
    _Phrase(_p(r"\b(?:since|before|after|until|till)\s+(?P<year>\d{4})\b(?!\s*(?:[a-z]|%))"), _year, False),
]


# "the last retro", "latest news", "most recent visit", "when did I last see": the most recent one.
_NOT_AFTER_LAST = (
    r"time|times|one|ones|night|week|weeks|weekend|month|months|year|years|day|days|fortnight|minute|minutes|hour|hours|few|couple|several|but|"
    + r"\d+|"
    + "|".join(NUMBERS)
    + "|"
    + _WEEKDAY
    + "|"
    + _MONTH_FULL
    + "|"
    + _SEASON
)
_LATEST = re.compile(rf"\b(?:the\s+)?(last|latest|most recent|newest|previous)\s+(?!(?:{_NOT_AFTER_LAST})\b)([a-z])", re.I)


def latest_subject(query: str) -> str:
    """What "the last X" asks about: the words after "last" / "latest" / "most recent", up to a stop word.

    "what did we agree at the last retro?" -> "retro"; "the most recent dentist visit" -> "dentist visit".
    "" when the query has no such phrase.
    """
    match = _LATEST.search(query)
    if match is None:
        return ""
    words: list[str] = []
    for word in re.findall(r"[^\W_][\w'-]*|[^\w\s]", query[match.start(2) :])[:3]:
        if not word[0].isalnum() or word.lower() in STOPWORDS:
            break
        words.append(word)
    return " ".join(words)


def _third(span: _Span, which: int) -> _Span:
    """The first, middle or last third of a span ("early", "mid", "late"), in whole days."""
    third = (span.end - span.start) / 3
    start = _day(span.start + third * which) if which else span.start
    end = _day(span.start + third * (which + 1) + timedelta(hours=12)) if which < 2 else span.end
    return _Span(start, max(end, start + timedelta(days=1)))


# Every phrase holds one of these words: a query without any is not read further (a 2,000-character
# query costs ~15 ms through all the patterns, ~0.1 ms through this check).
_ANY_TIME_WORD = re.compile(
    r"\b(?:hour|day|week|fortnight|month|quarter|half|q[1-4]|year|ago|today|tonight|morning|afternoon|evening|yesterday|"
    r"tomorrow|night|last|latest|recent|newest|previous|\d{4}|\d{1,2}(?:st|nd|rd|th)|christmas|xmas|boxing|easter|"
    rf"halloween|thanksgiving|valentine|new\s+year|{_MONTH}|{_WEEKDAY}|{_SEASON})",
    re.I,
)


def _read(query: str, now: datetime) -> tuple[_Span, re.Match[str], bool] | None:
    """The first phrase that names a span: (span, its match, whether it was read from now)."""
    for phrase in _PHRASES:
        for match in phrase.pattern.finditer(query):
            try:
                span = phrase.read(match, now)
            except (OverflowError, ValueError):  # a span past the calendar's ends (issue 26)
                if phrase.from_now:
                    raise InvalidInput(
                        f"{match.group(0).strip()!r} read from now={to_stored(now)} falls outside the calendar "
                        "(years 1 to 9999): pass a reference time `now` further from its ends"
                    ) from None
                span = None  # "December 9999" or "February 30" in the text: not read as a window
            if span is not None:
                part = (_g(match, "part") or _g(match, "part2")).lower().split()
                if part:
                    span = _third(span, PARTS[part[-2] if part[0] == "the" else part[0]])
                return span, match, phrase.from_now
    return None


# A time phrase bounded on one side: "since May" runs from its start to now, "before May" up to its
# start, "after May" from its end (to now, when that is past).
_BOUND_BEFORE = re.compile(rf"\b(?P<bound>since|{_ONE_SIDED})\s+$", re.I)
_BOUND_WORD = re.compile(rf"\s*(?P<bound>since|{_ONE_SIDED})\b", re.I)
# A range: "between May 3 and May 9", "from Monday to Wednesday", "March through May".
_RANGE_JOIN = re.compile(r"\s*(?:and|to|until|till|through|thru|-|–)\s+", re.I)
_BARE_DAY = re.compile(r"(?:the\s+)?(?P<day>[0-3]?\d)(?:st|nd|rd|th)?\b(?!\s*(?:am|pm|:|%))", re.I)
_POSSESSIVE = re.compile(r"['’]s\b")
_RANGE_OPEN = re.compile(r"\b(?:between|from)\s+$", re.I)


def _range_end(query: str, first: re.Match[str], now: datetime) -> tuple[_Span, int] | None:
    """The span of a range's second phrase right after ``first`` ("... and May 9", "... to Wednesday",
    "... and 25th" of a month-day), and where it ends in ``query``; None when no phrase follows."""
    join = _RANGE_JOIN.match(query, first.end())
    if join is None:
        return None
    rest = query[join.end() :]
    day = _BARE_DAY.match(rest)
    if day is not None and _g(first, "month") and _g(first, "day"):  # "May 3 to 9": the first one's month
        trial = f"{first.group('month')} {day.group('day')}" + (f" {first.group('year')}" if _g(first, "year") else "")
        read = _read(trial, now)
        return (read[0], join.end() + day.end()) if read is not None else None
    # A month or weekday alone is read as time after the join, as after a preposition.
    for prefix in ("", "in ", "on "):
        read = _read(prefix + rest, now)
        if read is not None and read[1].start() == 0:
            return read[0], join.end() + read[1].end() - len(prefix)
    return None


def _bounded(query: str, match: re.Match[str], span: _Span, now: datetime) -> tuple[datetime | None, datetime | None, int, int]:
    """The window a phrase read at ``match`` names, with what bounds it or continues it in ``query``
    ("since ...", "before ...", "... to Wednesday"): (since, until exclusive; None: open on that side,
    and where the whole expression starts and ends in ``query``)."""
    start, end = match.start(), match.end()
    before = _BOUND_BEFORE.search(query[:start])
    bounded = before or _BOUND_WORD.match(match.group(0))  # "since" before the phrase, or its own first word
    bound = bounded.group("bound").lower().split()[0] if bounded else ""
    possessive = _POSSESSIVE.match(query, end)
    if possessive and bound != "since":
        bound = ""  # "before Monday's meeting": bounded by an event of that day, which the day holds
        end = possessive.end()
    if before:
        start = before.start()
    ranged = _range_end(query, match, now) if not bound else None
    if ranged is not None:
        opening = _RANGE_OPEN.search(query[:start])
        start = opening.start() if opening else start
        second, end = ranged
        span = _Span(min(span.start, second.start), max(span.end, second.end))
    if bound == "since":
        return span.start, (max(now, span.end) if span.start > now else now), start, end
    if bound in ("before", "until", "till", "prior"):
        return None, span.start, start, end
    if bound == "after":
        return span.end, (now if span.end < now else None), start, end
    return span.start, span.end, start, end


def resolve(query: str, now: datetime | None = None) -> tuple[TimeWindow | None, str]:
    """The time window a query names (or None), and the query without the time words."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if not _ANY_TIME_WORD.search(query):
        return None, query
    read = _read(query, now)
    since: datetime | None = None
    until: datetime | None = None
    expression = ""
    cleaned = query
    if read is not None:
        since, until, start, end = _bounded(query, read[1], read[0], now)
        expression = query[start:end].strip()
        cleaned = (query[:start] + " " + query[end:]).strip()
    latest = _LATEST.search(cleaned)
    if read is None and latest is None:
        return None, query
    latest_words = cleaned[latest.start() : latest.start(2)].strip() if latest else ""
    window = TimeWindow(expression=" ".join(w for w in (expression, latest_words) if w))
    if since is not None:
        window.since = to_stored(since)
    if until is not None:
        # Windows are inclusive: the span's last second ("until May": April 30th's).
        last = until - timedelta(microseconds=1) if until > datetime.min.replace(tzinfo=UTC) else until
        window.until = to_stored(max(since, last) if since is not None else last)
    if latest is not None:
        window.latest = True
        if window.until is None and (since is None or since <= now):
            # "the last X" means the most recent X that already happened.
            window.until = to_stored(now)
        cleaned = (cleaned[: latest.start()] + " " + latest.group(2) + cleaned[latest.end() :]).strip()
    return window, re.sub(r"\s+", " ", cleaned).strip(" ,") or query
