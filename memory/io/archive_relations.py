"""The relations read from memories' texts, carried in an archive (``relations_read.jsonl``).

MemCube reads typed relations from what a memory says ("Bob's daughter Carol": Carol
daughter_of Bob; "Elena moved from Lyon": lives_in Lyon, ended), one language parse per text
(``memory.relations``), and keeps them beside the memory; the graph and ``memory_graph`` are
built from them. An import that rebuilt everything else but not these left a restored cube
without a single relation between its entities. Reading them again on import costs a parse a
memory (about 3.5 ms, five times what writing a record with its vector takes), so an export
carries them, like vectors, one relation a line:

    {"memory_id": "mem_...", "source": "Carol", "type": "daughter_of", "target": "Bob", "ended": false}

An archive without the member (written before it existed) has its memories' relations read
from their texts on import. A memory whose client gave relations has none read from its text
(the client's win, as on any write), so none are carried or read for it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, field_validator

from memory.errors import InvalidInput
from memory.ids import is_memory_id

MEMBER = "relations_read.jsonl"
MAX_PER_MEMORY = 256  # a memory's text is at most 32,000 characters; the reader finds a few per sentence
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class ReadRelation(BaseModel):
    """One line of ``relations_read.jsonl``, checked before anything is written."""

    model_config = ConfigDict(extra="forbid", strict=True)

    memory_id: str
    source: Name
    type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{0,39}$")]
    target: Name
    ended: bool = False

    @field_validator("memory_id")
    @classmethod
    def _memory_id(cls, value: str) -> str:
        if not is_memory_id(value):
            raise ValueError("must be a memory id (mem_ followed by 26 characters)")
        return value


def exported(
    graph_rows: Callable[[Sequence[str]], dict[str, Any]], ids: Sequence[str], batch: int = 1_000
) -> Iterator[dict[str, Any]]:
    """The relations read from the texts of the memories ``ids``, as archive lines (``graph_rows``:
    the store's read of what the graph derives from each memory)."""
    for start in range(0, len(ids), batch):
        part = ids[start : start + batch]
        rows = graph_rows(part)
        for memory_id in part:
            row = rows.get(memory_id)
            for rel in row.extracted if row is not None else ():
                yield {"memory_id": memory_id, **{k: rel[k] for k in ("source", "type", "target")}, "ended": bool(rel["ended"])}


def carried(
    archive: zipfile.ZipFile, records: Iterator[dict[str, Any]], archived: set[str]
) -> dict[str, list[dict[str, Any]]] | None:
    """The archive's relations by memory id (``records``: the member's lines), each line checked;
    None when the archive has no such member (its memories' relations are read from their texts).

    A bad line refuses the archive, naming it; lines of memories the archive does not hold are left out."""
    if MEMBER not in archive.namelist():
        return None
    found: dict[str, list[dict[str, Any]]] = {}
    for number, record in enumerate(records, start=1):
        try:
            rel = ReadRelation.model_validate(record)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "line"
            raise InvalidInput(f"{MEMBER} line {number} cannot be stored: {where}: {first['msg']}") from None
        if rel.memory_id not in archived:
            continue
        rows = found.setdefault(rel.memory_id, [])
        if len(rows) >= MAX_PER_MEMORY:
            raise InvalidInput(f"{MEMBER} line {number}: more than {MAX_PER_MEMORY} relations for {rel.memory_id}")
        rows.append(rel.model_dump(exclude={"memory_id"}))
    return found
