"""What a person filters the memory list by: a validated filter and its SQL fragments.

The web UI pages through tens of thousands of memories; the filter becomes a fixed set of
``WHERE`` fragments with bound parameters (never text from the caller), read by
``CubeStore.page`` with a keyset cursor.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from memory.errors import InvalidInput
from memory.store.filter_sql import time_range
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

    def sql(self) -> tuple[list[str], list[object]]:
        where: list[str] = []
        params: list[object] = []
        if self.status != "any":
            where.append("status = ?")
            params.append(self.status)
        if self.type is not None:
            where.append("type = ?")
            params.append(self.type)
        if self.role is not None:
            where.append("role = ?")
            params.append(self.role)
        if self.tag is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(memories.tags) WHERE value = ?)")
            params.append(self.tag)
        created, bounds = time_range("created_at", self.since, self.until, names=("since", "until"))
        return where + created, params + bounds


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
