"""One timestamp format everywhere, so SQL can compare timestamps as strings.

Stored form: UTC, second precision, ``YYYY-MM-DDTHH:MM:SSZ``. Lexicographic order is
chronological order, which lets ``since``/``until`` filters use plain ``>=``/``<=``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from memory.errors import InvalidInput

STORED_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def to_stored(moment: datetime) -> str:
    """A datetime as the stored string; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(STORED_FORMAT)


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
    return moment.astimezone(UTC).replace(microsecond=0)


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
