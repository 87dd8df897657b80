"""SQL fragments shared by the filters of a search (``search_reads``) and of the memory list (``browse``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from memory.timeutil import stored_from_input, stored_until_from_input

Bound = str | datetime | date | None


@dataclass(frozen=True)
class Dialect:
    """How one engine writes what a shared read says."""

    param: str  # a bound parameter's placeholder
    # After a text column that is compared or sorted, so it orders as SQLite orders text: byte by byte.
    byte_order: str
    has_tag: str  # true when ``memories.tags`` (a JSON array) holds the one parameter


SQLITE = Dialect("?", "", "EXISTS (SELECT 1 FROM json_each(memories.tags) WHERE value = ?)")
POSTGRES = Dialect("%s", ' COLLATE "C"', "memories.tags ? %s")


def time_range(
    column: str, start: Bound, end: Bound, *, names: tuple[str, str], param: str = "?"
) -> tuple[list[str], list[object]]:
    """``WHERE`` fragments and their parameters for ``column`` from ``start`` to ``end``, both inclusive.

    Each bound is a time as a person writes it (a bare date as ``end``: to the end of that day); one
    left None leaves that side open. ``names`` are the two fields' names, for the error a bad time raises;
    ``param``: the engine's placeholder (``Dialect.param``).
    """
    clauses: list[str] = []
    params: list[object] = []
    if start is not None:
        clauses.append(f"{column} >= {param}")
        params.append(stored_from_input(start, field=names[0]))
    if end is not None:
        clauses.append(f"{column} <= {param}")
        params.append(stored_until_from_input(end, field=names[1]))
    return clauses, params
