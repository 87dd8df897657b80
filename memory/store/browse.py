"""What a person filters the memory list by: a validated filter and its SQL fragments.

The web UI pages through tens of thousands of memories; the filter becomes a fixed set of
``WHERE`` fragments with bound parameters (never text from the caller), in either engine's
dialect, read by ``CubeStore.page`` and ``PostgresCubeStore.page`` with a keyset cursor
(``page_query``, ``page_end``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from memory.errors import InvalidInput
from memory.store.filter_sql import SQLITE, Dialect, time_range
from memory.store.rows import FIELDS

Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
# Position of created_at in a ``SELECT {MEMORY_COLUMNS}`` row (row_id comes first).
CREATED_AT_COLUMN = 1 + FIELDS.index("created_at")
MAX_PAGE = 200


class BrowseFilter(BaseModel):
    """Which memories to list. Every field is optional; times compare with ``created_at``."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["active", "archived", "deleted", "any"] = "active"
    type: Short | None = None
    role: Short | None = None
    tag: Short | None = None
    since: Annotated[str, StringConstraints(max_length=40)] | None = Field(
        default=None, description="created at or after (ISO 8601)"
    )
    until: Annotated[str, StringConstraints(max_length=40)] | None = Field(
        default=None, description="created at or before (ISO 8601; a bare date: that whole day)"
    )

    def sql(self, dialect: Dialect = SQLITE) -> tuple[list[str], list[object]]:
        p = dialect.param
        where: list[str] = []
        params: list[object] = []
        if self.status != "any":
            where.append(f"status = {p}")
            params.append(self.status)
        if self.type is not None:
            where.append(f"type = {p}")
            params.append(self.type)
        if self.role is not None:
            where.append(f"role = {p}")
            params.append(self.role)
        if self.tag is not None:
            where.append(dialect.has_tag)
            params.append(self.tag)
        created, bounds = time_range(f"created_at{dialect.byte_order}", self.since, self.until, names=("since", "until"), param=p)
        return where + created, params + bounds


Cursor = tuple[str, int]  # (created_at, row_id) of the last memory of a page


def page_query(
    browse: BrowseFilter,
    columns: str,
    *,
    after: Cursor | None,
    limit: int,
    dialect: Dialect = SQLITE,
    scope: Sequence[tuple[str, object]] = (),
) -> tuple[str, list[object]]:
    """The statement of one page of ``browse``, newest first, and its parameters.

    A keyset cursor ``after``, the ``(created_at, row_id)`` of the last row seen: each page is
    an index range read, so the 1,000th page costs what the first does. It reads one row more
    than ``limit``, for ``page_end`` to tell whether there is a next page. ``scope``: more
    ``(fragment, parameter)`` conditions, first (a shared store's cube).
    """
    p, created = dialect.param, f"created_at{dialect.byte_order}"
    where, params = _scoped(browse, dialect, scope)
    if after is not None:
        where.append(f"({created} < {p} OR ({created} = {p} AND row_id < {p}))")
        params += [after[0], after[0], after[1]]
    statement = f"SELECT {columns} FROM memories" + (" WHERE " + " AND ".join(where) if where else "")
    return statement + f" ORDER BY {created} DESC, row_id DESC LIMIT {p}", [*params, limit + 1]


def count_query(
    browse: BrowseFilter, *, dialect: Dialect = SQLITE, scope: Sequence[tuple[str, object]] = ()
) -> tuple[str, list[object]]:
    """The statement that counts the memories ``browse`` matches (``page_query``'s ``scope``), and its parameters."""
    where, params = _scoped(browse, dialect, scope)
    return "SELECT count(*) FROM memories" + (" WHERE " + " AND ".join(where) if where else ""), params


def _scoped(browse: BrowseFilter, dialect: Dialect, scope: Sequence[tuple[str, object]]) -> tuple[list[str], list[object]]:
    where, params = browse.sql(dialect)
    return [fragment for fragment, _ in scope] + where, [value for _, value in scope] + params


def page_end(rows: Sequence[Any], limit: int) -> tuple[list[Any], Cursor | None]:
    """The rows of a page read by ``page_query`` (``SELECT {MEMORY_COLUMNS}`` rows), and the next page's cursor (None at the end)."""
    more = len(rows) > limit
    kept = list(rows[:limit])
    return kept, ((kept[-1][CREATED_AT_COLUMN], kept[-1][0]) if more and kept else None)


def encode_cursor(cursor: tuple[str, int] | None) -> str | None:
    """The next-page cursor as an opaque URL-safe string."""
    if cursor is None:
        return None
    return base64.urlsafe_b64encode(json.dumps(list(cursor)).encode()).decode().rstrip("=")


def decode_cursor(token: str | None) -> tuple[str, int] | None:
    if not token:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        created_at, row_id = value
        if not isinstance(created_at, str) or not isinstance(row_id, int) or len(created_at) > 40:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("the page cursor is not one this server gave; start again from the first page") from None
    return created_at, row_id
