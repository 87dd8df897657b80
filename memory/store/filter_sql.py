"""SQL fragments shared by the filters of a search (``search_reads``) and of the memory list (``browse``)."""

from __future__ import annotations

from datetime import date, datetime

from memory.timeutil import stored_from_input, stored_until_from_input

Bound = str | datetime | date | None


def time_range(column: str, start: Bound, end: Bound, *, names: tuple[str, str]) -> tuple[list[str], list[object]]:
    """``WHERE`` fragments and their parameters for ``column`` from ``start`` to ``end``, both inclusive.

    Each bound is a time as a person writes it (a bare date as ``end``: to the end of that day); one
    left None leaves that side open. ``names`` are the two fields' names, for the error a bad time raises.
    """
    clauses: list[str] = []
    params: list[object] = []
    if start is not None:
        clauses.append(f"{column} >= ?")
        params.append(stored_from_input(start, field=names[0]))
    if end is not None:
        clauses.append(f"{column} <= ?")
        params.append(stored_until_from_input(end, field=names[1]))
    return clauses, params
