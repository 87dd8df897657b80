"""One timestamp format everywhere, so SQL can compare timestamps as strings.

Stored form: UTC, second precision, ``YYYY-MM-DDTHH:MM:SSZ``. Lexicographic order is
chronological order, which lets ``since``/``until`` filters use plain ``>=``/``<=``.
Every moment from ``0001-01-01T00:00:00Z`` to ``9999-12-31T23:59:59Z`` can be stored; a
date whose UTC reading falls outside (``9999-12-31T23:00:00-05:00``) is refused as input,
and a span reaching past either end is cut there (``shifted_stored``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from memory.errors import InvalidInput

STORED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
EARLIEST_STORED = "0001-01-01T00:00:00Z"
LATEST_STORED = "9999-12-31T23:59:59Z"


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def to_stored(moment: datetime) -> str:
    """A datetime as the stored string; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    # Not strftime: it writes year 999 as '999', which would sort after '2023' (issue 26).
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"


def shifted_stored(moment: datetime, delta: timedelta) -> str:
    """``moment + delta`` as the stored string, cut at the first or last storable second."""
    try:
        return to_stored(moment + delta)
    except OverflowError:
        return LATEST_STORED if delta > timedelta(0) else EARLIEST_STORED


def now_stored() -> str:
    return to_stored(now_utc())


def parse_moment(value: str | datetime | date, *, field: str = "time") -> datetime:
    """Accept an ISO 8601 date or date-time (``2023-05-08``, ``2023-05-08T13:56:00+02:00``, ``...Z``)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(
                f"{field} {value!r} is not an ISO 8601 date or date-time; use e.g. '2023-05-08' or '2023-05-08T13:56:00Z'"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC).replace(microsecond=0)
    except (OverflowError, ValueError):  # 9999-12-31T23:00:00-05:00 is in year 10000 in UTC
        raise InvalidInput(
            f"{field} {str(value)[:64]!r} falls outside the dates MemCube can store once read in UTC "
            f"({EARLIEST_STORED} to {LATEST_STORED})"
        ) from None


def stored_from_input(value: str | datetime | date | None, *, field: str) -> str | None:
    if value is None:
        return None
    return to_stored(parse_moment(value, field=field))


def stored_until_from_input(value: str | datetime | date | None, *, field: str = "until") -> str | None:
    """The end of a window: a bare date means the end of that day, so until=2023-05-08 includes its evening."""
    if value is None:
        return None
    is_bare_date = (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and len(value.strip()) == 10
    )
    moment = parse_moment(value, field=field)
    if is_bare_date:
        moment = moment.replace(hour=23, minute=59, second=59)
    return to_stored(moment)
