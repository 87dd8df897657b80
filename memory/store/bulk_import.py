"""Archived memories written in bulk: one transaction per chunk, a fixed number of statements per chunk.

``memcube import`` writes a large archive in chunks (see ``memory.io.archive``). Each chunk
is one transaction that stores each of its records in full, exactly as a single add
would: the memory row (its FTS row follows through the trigger), its archived versions
and one ``import`` version, its feedback log, its entity rows, the relations read from its
text (``ImportRow.relations``), its vector when it comes
with one (otherwise ``embedding_model`` stays NULL, which is what ``ensure_vectors`` looks
for), a graph outbox entry, and the context windows of the threads it joins. A process
killed between chunks therefore leaves whole records only, and importing the same
archive again skips the ids already there.

The work per chunk is a few statements, not a few per record: one lookup of the chunk's
ids and content hashes (a JSON array as one bound parameter, so no limit on bound
variables), then one ``executemany`` per table.

While an import runs, the cube's setting ``import_rows.UNFINISHED_KEY`` names it (written
with every chunk, removed when the import is complete), so a later run can say that it resumes one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from memory.entities import normalize
from memory.store import threads
from memory.store.change_log import ChangeLog
from memory.store.contract import RelationRow
from memory.store.import_rows import ImportRow, choose
from memory.store.rows import FIELDS, content_hash, dumps, to_column
from memory.store.writer import relation_rows

# Page cache (KiB) of the connection while an import runs. Each chunk updates indexes keyed by
# random values (content hashes) and the FTS index all over the file; with SQLite's default
# 2 MB cache a large cube's pages are read back from the OS for every chunk.
IMPORT_CACHE_KIB = 64 * 1024


def known(conn: sqlite3.Connection, ids: Sequence[str], hashes: Sequence[str]) -> tuple[set[str], set[str]]:
    """(those of ``ids`` already in the cube, those of ``hashes`` that a live memory has)."""
    taken = {r[0] for r in conn.execute("SELECT id FROM memories WHERE id IN (SELECT value FROM json_each(?))", (dumps(ids),))}
    live = {
        r[0]
        for r in conn.execute(
            "SELECT content_hash FROM memories WHERE content_hash IN (SELECT value FROM json_each(?)) AND status != 'deleted'",
            (dumps(hashes),),
        )
    }
    return taken, live


def insert(
    conn: sqlite3.Connection,
    items: Sequence[ImportRow],
    *,
    seq: int,
    model_id: str,
    client: str,
    note: dict[str, Any],
    at: str,
    changes: ChangeLog,
) -> list[str]:
    """Store ``items`` inside the caller's write transaction; per item "imported", "imported with
    vector", "existing" (the id is taken) or "duplicate" (a live memory has the same text)."""
    taken, live = known(conn, [item.row["id"] for item in items], [content_hash(item.row["text"]) for item in items])
    outcomes, picked = choose(items, taken, live)
    next_row_id = int(conn.execute("SELECT coalesce(max(row_id), 0) FROM memories").fetchone()[0]) + 1
    chosen = [(next_row_id + i, item, hash_) for i, (item, hash_) in enumerate(picked)]
    if not chosen:
        return outcomes

    columns = ["row_id", *chosen[0][1].row, "content_hash", "seq", "embedding_model"]
    unknown = [c for c in columns[1:] if c not in FIELDS and c != "seq"]
    if unknown:
        raise ValueError(f"not columns of memories: {unknown}")
    values = []
    for row_id, item, hash_ in chosen:
        if item.row.keys() != chosen[0][1].row.keys():
            raise ValueError("every row of an import chunk must name the same columns")
        given = item.vector is not None and item.row["status"] != "deleted"
        values.append([row_id, *(to_column(k, v) for k, v in item.row.items()), hash_, seq, model_id if given else None])
    conn.executemany(f"INSERT INTO memories({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values)

    conn.executemany(
        "INSERT INTO memory_versions(memory_id, version, op, at, client, changes) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (item.row["id"], v["version"], v["op"], v["at"], v["client"], dumps(v["changes"]))
            for _, item, _ in chosen
            for v in [
                *item.versions,
                {"version": item.row["version"], "op": "import", "at": at, "client": client, "changes": note},
            ]
        ],
    )
    conn.executemany(
        "INSERT INTO memory_feedback(memory_id, at, tried, result, client) VALUES (?, ?, ?, ?, ?)",
        [(item.row["id"], e["at"], e["tried"], e["result"], e["client"]) for _, item, _ in chosen for e in item.feedback],
    )
    live_rows = [(row_id, item) for row_id, item, _ in chosen if item.row["status"] != "deleted"]
    conn.executemany(
        "INSERT OR IGNORE INTO memory_entities(memory_rowid, name, norm) VALUES (?, ?, ?)",
        [(row_id, name, key) for row_id, item in live_rows for key, name in _entity_keys(item.row["entities"]).items()],
    )
    insert_relations(
        conn,
        [(row_id, r) for row_id, item in live_rows if not item.row["relations"] for r in relation_rows(item.relations or [])],
    )
    conn.executemany(
        "INSERT INTO memory_vec(rowid, embedding) VALUES (?, ?)",
        [(row_id, item.vector.astype(np.float32).tobytes()) for row_id, item in live_rows if item.vector is not None],
    )
    changes.queue(conn, [item.row["id"] for _, item, _ in chosen])
    # New rows have no context windows yet (``threads.refresh`` would look for one of each):
    # rebuild the threads they joined.
    first, last = chosen[0][0], chosen[-1][0]
    keys = conn.execute(
        "SELECT DISTINCT thread FROM memories WHERE row_id BETWEEN ? AND ? AND thread IS NOT NULL", (first, last)
    ).fetchall()
    threads.refresh_threads(conn, [key for (key,) in keys])
    return outcomes


def insert_relations(conn: sqlite3.Connection, rows: Sequence[tuple[int, RelationRow]]) -> None:
    """Relations read from texts, each ``(memory row id, relation)`` (``SqliteWriteTables.insert_relations`` writes through here)."""
    conn.executemany(
        "INSERT OR IGNORE INTO memory_relations(memory_rowid, source, source_norm, type, target, target_norm, ended) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(row_id, r.source, r.source_norm, r.type, r.target, r.target_norm, int(r.ended)) for row_id, r in rows],
    )


def _entity_keys(names: Sequence[str]) -> dict[str, str]:
    """Normalised key -> the first display name given for it (as ``CubeStore`` writes entity rows)."""
    keys: dict[str, str] = {}
    for name in names:
        key = normalize(name)
        if key:
            keys.setdefault(key, name)
    return keys


def enlarge_cache(conn: sqlite3.Connection) -> int:
    """Give ``conn`` at least ``IMPORT_CACHE_KIB`` of page cache; returns the setting to restore."""
    before = int(conn.execute("PRAGMA cache_size").fetchone()[0])
    # A negative cache_size is in KiB, a positive one in pages (4 KiB each by default).
    if (-before if before < 0 else before * 4) < IMPORT_CACHE_KIB:
        conn.execute(f"PRAGMA cache_size = {-IMPORT_CACHE_KIB}")
    return before


def restore_cache(conn: sqlite3.Connection, before: int) -> None:
    conn.execute(f"PRAGMA cache_size = {int(before)}")
