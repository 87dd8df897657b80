"""How a ``Memory`` maps to a row of ``memories``: one column list, derived from the model.

The pydantic model is the one place a memory's fields are written out. Every field of
``Memory`` except those the store fills from elsewhere (``cube``: the file it lives in;
``feedback``: its own table) is a column of the same name; list and dict fields are
stored as JSON text. Adding a field is an edit of ``Memory`` plus a migration that adds
the column; reads, inserts and imports follow from here.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import types
import typing
from typing import Any

from memory.models import Memory

NOT_COLUMNS = frozenset({"cube", "feedback"})
FIELDS: tuple[str, ...] = tuple(name for name in Memory.model_fields if name not in NOT_COLUMNS)


def _is_json(annotation: Any) -> bool:
    """A list or dict field (possibly optional) is kept as JSON text."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_json(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    return origin in (list, dict) or annotation in (list, dict)


JSON_FIELDS = frozenset(name for name in FIELDS if _is_json(Memory.model_fields[name].annotation))
# ``row_id`` first: callers key rows by it; the rest in the model's order.
MEMORY_COLUMNS = ", ".join(("row_id", *FIELDS))


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def to_column(name: str, value: Any) -> Any:
    """A field's value as SQLite stores it."""
    if name in JSON_FIELDS and value is not None:
        return dumps(value)
    return value


def row_to_memory(cube: str, row: sqlite3.Row | tuple[Any, ...]) -> Memory:
    """A ``SELECT {MEMORY_COLUMNS}`` row as a ``Memory`` (without its feedback log)."""
    values: dict[str, Any] = {}
    for name, value in zip(FIELDS, row[1:], strict=True):
        values[name] = json.loads(value) if name in JSON_FIELDS and value else value
    for name in JSON_FIELDS:
        if values[name] is None:
            values[name] = {} if typing.get_origin(Memory.model_fields[name].annotation) is dict else []
    return Memory(cube=cube, **values)


def insert_sql(columns: typing.Iterable[str]) -> str:
    """An INSERT of these columns into ``memories`` that returns the new row id."""
    names = list(columns)
    unknown = [n for n in names if n not in FIELDS and n != "seq"]
    if unknown:
        raise ValueError(f"not columns of memories: {unknown}")
    return f"INSERT INTO memories({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) RETURNING row_id"
