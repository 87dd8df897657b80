"""What some reads of a cube mean, apart from the engine that runs them.

The data folder's ``CubeStore`` (SQLite) and the shared store's ``PostgresCubeStore`` answer
the same calls; where a read holds a rule beyond its SQL (which memories each section of the
profile draws from and in what order, how goals and tasks are ordered, what of a refused call
is kept), the rule is written once here, in the engine's ``Dialect``, and each store runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from memory.models import Memory
from memory.store.filter_sql import Dialect

MAX_DENIALS = 1000  # refused calls kept per cube (the newest)
DENIAL_CHARS = 200  # of a refused call's client name and action


@dataclass
class ProfileRows:
    """The memories each section of the profile draws from."""

    goals: list[Memory]
    open_tasks: list[Memory]
    upcoming: list[Memory]
    preferences: list[Memory]
    done: list[Memory]
    facts: list[Memory]


# Reads the active memories that match ``where`` (with its parameters) in the order ``order``, up to a limit.
SectionLoad = Callable[[str, list[object], str, int], list[Memory]]


def profile_sections(
    load: SectionLoad, dialect: Dialect, *, role: str | None, now: str, horizon: str, done_since: str, top_facts: int
) -> ProfileRows:
    """The memories each section of the profile draws from, in the section's order (with a role:
    that role's and those without one), each read through the engine's ``load``."""
    p, b = dialect.param, dialect.byte_order
    role_sql, role_params = (f" AND (role IS NULL OR role = {p})", [role]) if role else ("", [])

    def section(where: str, params: list[object], order: str, limit: int = 200) -> list[Memory]:
        return load(f"status = 'active' AND {where}{role_sql}", [*params, *role_params], order, limit)

    return ProfileRows(
        goals=section("type = 'goal' AND state = 'active'", [], f"importance DESC, updated_at{b} DESC"),
        open_tasks=section(
            "type = 'task' AND state IN ('todo', 'in_progress', 'blocked')",
            [],
            f"CASE state WHEN 'blocked' THEN 0 WHEN 'in_progress' THEN 1 ELSE 2 END, due_at IS NULL, due_at{b}, importance DESC",
        ),
        upcoming=section(f"type != 'task' AND occurred_at{b} > {p} AND occurred_at{b} <= {p}", [now, horizon], f"occurred_at{b}"),
        preferences=section("type = 'preference'", [], f"role IS NOT NULL, role{b}, importance DESC, updated_at{b} DESC"),
        done=section(f"type = 'task' AND state = 'done' AND updated_at{b} >= {p}", [done_since], f"updated_at{b} DESC", 20),
        facts=section("type = 'fact'", [], f"access_count DESC, importance DESC, updated_at{b} DESC", top_facts),
    )


def goals_and_tasks_query(states: Sequence[str], role: str | None, dialect: Dialect) -> tuple[str, list[object]]:
    """The condition and order (after ``WHERE``) of the active goals and tasks in these states
    (with a role: that role's and those without one), open ones first, and its parameters."""
    p, b = dialect.param, dialect.byte_order
    params: list[object] = [*states]
    role_sql = ""
    if role:
        role_sql = f" AND (role IS NULL OR role = {p})"
        params.append(role)
    return (
        f"status = 'active' AND type IN ('goal', 'task') AND state IN ({','.join([p] * len(states)) or 'NULL'}){role_sql} "
        f"ORDER BY type{b}, CASE state WHEN 'done' THEN 1 WHEN 'achieved' THEN 1 WHEN 'dropped' THEN 1 ELSE 0 END, "
        f"due_at IS NULL, due_at{b}, created_at{b}",
        params,
    )


def kept_denial(client: str | None, action: str, need: str) -> tuple[str | None, str, str]:
    """What is kept of a refused call: its client, action and need cut to ``DENIAL_CHARS``.

    Whoever is refused chooses what is written (a client name, a tool name of any length):
    unbounded, a client with no rights at all could fill the owner's disk (R1). Each store
    keeps the newest ``MAX_DENIALS`` of a cube only.
    """
    return (client[:DENIAL_CHARS] if client is not None else None), action[:DENIAL_CHARS], need[:DENIAL_CHARS]


Row = TypeVar("Row", bound=tuple[Any, ...])


def by_row_id(read: Callable[[int], Sequence[Row]]) -> Iterator[Row]:
    """Every row of a keyset scan, batch by batch: ``read(after)`` returns the next batch of rows
    (row id first) past row id ``after``, in row-id order; an empty batch ends the scan."""
    last = 0
    while rows := read(last):
        yield from rows
        last = rows[-1][0]
