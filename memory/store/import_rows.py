"""Archived memories as an import writes them, on either engine: the checked row, and which rows a chunk writes.

``memory.io.archive`` checks an archive's records into ``ImportRow``s and hands them to the
target cube's store in chunks: the data folder's ``CubeStore`` writes a chunk with a few bulk
statements (``memory.store.bulk_import``), the PostgreSQL store through ``MemoryWriter``'s
table objects (``MemoryWriter.import_rows``). Both skip the same rows (``choose``): a memory
whose id the cube holds, or whose exact text a live memory of the cube has, is not written.
While an import runs, the cube's setting ``UNFINISHED_KEY`` names it, so a later run can say
that it resumes one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memory.store.rows import content_hash

UNFINISHED_KEY = "import_unfinished"
IMPORTED = "imported"
IMPORTED_WITH_VECTOR = "imported with vector"
EXISTING = "existing"  # the id is taken
DUPLICATE = "duplicate"  # a live memory has the same text


@dataclass
class ImportRow:
    """One memory from an archive, checked: its stored values by column, history, feedback log and vector."""

    row: dict[str, Any]  # Memory fields as Python values (lists and dicts unencoded)
    versions: list[dict[str, Any]]  # {version, op, at, client, changes}
    feedback: list[dict[str, Any]]  # {at, tried, result, client}
    vector: np.ndarray | None = None
    # Relations read from the text ({source, type, target, ended}: ``memory.io.archive_relations``);
    # None: not known yet. A memory with the client's relations keeps none (as on any write).
    relations: list[dict[str, Any]] | None = None

    @property
    def live(self) -> bool:
        return self.row["status"] != "deleted"


@dataclass(frozen=True)
class ImportRun:
    """What every chunk of one import writes with its rows: the embedding model of the vectors it
    brings, the client it records, the ``note`` of each memory's ``import`` version and its time,
    and (``unfinished``) how the import is named in the cube until it finishes."""

    model_id: str
    client: str
    note: dict[str, Any]
    at: str
    unfinished: dict[str, Any] | None = None


def unfinished_value(what: dict[str, Any]) -> str:
    """How ``UNFINISHED_KEY`` names an import (``unfinished_from`` reads it back)."""
    return json.dumps(what, ensure_ascii=False)


def unfinished_from(value: str | None) -> dict[str, Any] | None:
    """The import a cube's ``UNFINISHED_KEY`` setting names ({} when it cannot be read), None when none."""
    if value is None:
        return None
    try:
        found = json.loads(value)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def choose(items: Sequence[ImportRow], taken: set[str], live: set[str]) -> tuple[list[str], list[tuple[ImportRow, str]]]:
    """Per item its outcome, and the items to write with their content hashes, given the ids the cube
    holds (``taken``) and the hashes of its live memories (``live``); both grow with the chosen items,
    so a second record of the chunk with the same id or text is skipped too."""
    outcomes: list[str] = []
    chosen: list[tuple[ImportRow, str]] = []
    for item in items:
        hash_ = content_hash(item.row["text"])
        if item.row["id"] in taken:
            outcomes.append(EXISTING)
            continue
        if item.live and hash_ in live:
            outcomes.append(DUPLICATE)
            continue
        taken.add(item.row["id"])
        if item.live:
            live.add(hash_)
        chosen.append((item, hash_))
        outcomes.append(IMPORTED_WITH_VECTOR if item.vector is not None and item.live else IMPORTED)
    return outcomes, chosen
