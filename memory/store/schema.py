"""The cube database's schema and its migrations.

A cube's ``memory.db`` records its schema version in ``PRAGMA user_version``. Each
migration is a function from version N-1 to N, run in one transaction, so an old cube
is brought forward step by step on open. sqlite-utils creates the plain tables (it
keeps column definitions readable); FTS5, sqlite-vec and triggers need raw SQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils

SCHEMA_VERSION = 11  # == len(MIGRATIONS)


def _v1(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    db.table("cube_meta").create({"key": str, "value": str}, pk="key")
    db.table("memories").create(
        {
            # An INTEGER PRIMARY KEY keeps rowids stable across VACUUM; FTS and vec rows use it.
            "row_id": int,
            "id": str,
            "text": str,
            "kind": str,
            "type": str,
            "status": str,
            "tags": str,  # JSON array
            "entities": str,  # JSON array of display names
            "relations": str,  # JSON array of {subject, predicate, object, valid_from, valid_to}
            "source": str,
            "client": str,
            "user_id": str,
            "agent_id": str,
            "session_id": str,
            "created_at": str,
            "updated_at": str,
            "occurred_at": str,
            "valid_from": str,
            "valid_to": str,
            "version": int,
            "importance": float,
            "confidence": float,
            "access_count": int,
            "last_access": str,
            "content_hash": str,
            "embedding_model": str,
            "metadata": str,  # JSON object
            "seq": int,  # change sequence: which write last touched this row
        },
        pk="row_id",
        not_null={"id", "text", "kind", "type", "status", "created_at", "updated_at", "version", "content_hash", "seq"},
        defaults={
            "kind": "plaintext",
            "status": "active",
            "tags": "[]",
            "entities": "[]",
            "relations": "[]",
            "metadata": "{}",
            "version": 1,
            "importance": 0.5,
            "confidence": 1.0,
            "access_count": 0,
        },
    )
    conn.execute("CREATE UNIQUE INDEX memories_id ON memories(id)")
    # An exact duplicate of a live memory is refused by the index itself, so two
    # processes adding the same text at once still end with one memory.
    conn.execute("CREATE UNIQUE INDEX memories_live_hash ON memories(content_hash) WHERE status != 'deleted'")
    conn.execute("CREATE INDEX memories_status_created ON memories(status, created_at)")
    conn.execute("CREATE INDEX memories_occurred ON memories(occurred_at)")
    conn.execute("CREATE INDEX memories_seq ON memories(seq)")

    db.table("memory_versions").create(
        {"seq": int, "memory_id": str, "version": int, "op": str, "at": str, "client": str, "changes": str},
        pk="seq",
        not_null={"memory_id", "version", "op", "at", "changes"},
    )
    conn.execute("CREATE INDEX memory_versions_memory ON memory_versions(memory_id, version)")

    # Entities per memory, normalised for lookup: the source of truth the graph is built from.
    db.table("memory_entities").create(
        {"memory_rowid": int, "name": str, "norm": str},
        pk=("memory_rowid", "norm"),
    )
    conn.execute("CREATE INDEX memory_entities_norm ON memory_entities(norm)")

    # Pending graph work, written in the same transaction as the change it follows.
    db.table("graph_outbox").create({"seq": int, "memory_id": str, "op": str}, pk="seq", not_null={"memory_id", "op"})

    conn.execute(
        "CREATE VIRTUAL TABLE memory_fts USING fts5(text, tags, entities, tokenize = 'porter unicode61 remove_diacritics 2')"
    )
    fts_row = (
        "SELECT new.rowid, new.text, "
        "(SELECT group_concat(value, ' ') FROM json_each(new.tags)), "
        "(SELECT group_concat(value, ' ') FROM json_each(new.entities)) "
        "WHERE new.status != 'deleted'"
    )
    # executescript() would COMMIT the migration's transaction first: one statement at a time.
    conn.execute(
        "CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN "
        f"INSERT INTO memory_fts(rowid, text, tags, entities) {fts_row}; END"
    )
    conn.execute(
        "CREATE TRIGGER memories_fts_update AFTER UPDATE OF text, tags, entities, status ON memories BEGIN "
        "DELETE FROM memory_fts WHERE rowid = old.rowid; "
        f"INSERT INTO memory_fts(rowid, text, tags, entities) {fts_row}; END"
    )
    conn.execute(
        "CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN "
        "DELETE FROM memory_fts WHERE rowid = old.rowid; "
        "DELETE FROM memory_entities WHERE memory_rowid = old.rowid; END"
    )
    conn.executemany(
        "INSERT INTO cube_meta(key, value) VALUES (?, ?)",
        [("change_seq", "0"), ("vector_epoch", "0")],
    )


def _v2(conn: sqlite3.Connection) -> None:
    """Context windows: each memory's text with its thread neighbours, for keyword search (see memory.store.threads)."""
    conn.execute("CREATE VIRTUAL TABLE memory_context_fts USING fts5(text, tokenize = 'porter unicode61 remove_diacritics 2')")
    conn.execute("CREATE INDEX memories_thread ON memories(session_id, occurred_at) WHERE session_id IS NOT NULL")
    # The windows themselves are built by _v6, once the thread column they are keyed on exists.
    # Vectors are now made from the text less a leading speaker ("Alice: ..."): re-embed those lazily.
    conn.execute("UPDATE memories SET embedding_model = NULL WHERE status != 'deleted' AND text GLOB '*: *'")
    # A purged memory's context row goes with it, like its FTS row.
    conn.execute(
        "CREATE TRIGGER memories_context_delete AFTER DELETE ON memories BEGIN "
        "DELETE FROM memory_context_fts WHERE rowid = old.rowid; END"
    )


def _v3(conn: sqlite3.Connection) -> None:
    """Structured memories: goals and tasks with a state, preferences per role, supersession."""
    for column in ("role", "subject", "state", "due_at", "parent_id", "supersedes", "superseded_by"):
        conn.execute(f"ALTER TABLE memories ADD COLUMN {column} TEXT")
    conn.execute("CREATE INDEX memories_type_state ON memories(type, state) WHERE status = 'active'")
    conn.execute("CREATE INDEX memories_subject ON memories(subject, role) WHERE subject IS NOT NULL AND status = 'active'")
    conn.execute("CREATE INDEX memories_due ON memories(due_at) WHERE due_at IS NOT NULL")
    # A task's feedback log: what was tried, what happened, when. Append-only; each entry is also a version row.
    sqlite_utils.Database(conn).table("memory_feedback").create(
        {"seq": int, "memory_id": str, "at": str, "tried": str, "result": str, "client": str},
        pk="seq",
        not_null={"memory_id", "at"},
    )
    conn.execute("CREATE INDEX memory_feedback_memory ON memory_feedback(memory_id, seq)")
    conn.execute(
        "CREATE TRIGGER memories_feedback_delete AFTER DELETE ON memories BEGIN "
        "DELETE FROM memory_feedback WHERE memory_id = old.id; END"
    )


def _v4(conn: sqlite3.Connection) -> None:
    """Refused calls, kept in the cube they were aimed at (see memory.access)."""
    sqlite_utils.Database(conn).table("access_denials").create(
        {"seq": int, "at": str, "client": str, "action": str, "need": str}, pk="seq", not_null={"at", "action", "need"}
    )


def _v5(conn: sqlite3.Connection) -> None:
    """A memory without a session is no longer indexed as its own context window (see memory.store.threads)."""
    conn.execute("DELETE FROM memory_context_fts WHERE rowid IN (SELECT row_id FROM memories WHERE session_id IS NULL)")


def _v6(conn: sqlite3.Connection) -> None:
    """Inferred threads: memories without a session that one client dates to the same day (see memory.store.threads)."""
    from memory.store import threads

    # VIRTUAL: computed on read from the row's own columns, so it can never drift from them.
    # Idempotent, so that a cube whose version number was set back (a restored copy) can run it again.
    if "thread" not in {row[1] for row in conn.execute("PRAGMA table_xinfo(memories)")}:
        conn.execute(f"ALTER TABLE memories ADD COLUMN thread TEXT GENERATED ALWAYS AS ({threads.THREAD_KEY}) VIRTUAL")
    conn.execute("CREATE INDEX IF NOT EXISTS memories_thread_key ON memories(thread, occurred_at) WHERE thread IS NOT NULL")
    # Every live memory: the sessions' windows of a cube coming from before v2, the new inferred threads' of any.
    threads.refresh(conn, [r[0] for r in conn.execute("SELECT row_id FROM memories WHERE status != 'deleted'")])


def _v7(conn: sqlite3.Connection) -> None:
    """Entity keys with their names in one index: the alias table reads every key with a display
    name after each change of the cube, from the index alone (a table scan at 100,000 memories
    took over half a second). It also serves every lookup by key the old index did."""
    conn.execute("CREATE INDEX IF NOT EXISTS memory_entities_norm_name ON memory_entities(norm, name)")
    conn.execute("DROP INDEX IF EXISTS memory_entities_norm")


def _v8(conn: sqlite3.Connection) -> None:
    """A search's time window (``since``/``until``, or time words in the query) is a range on
    ``coalesce(occurred_at, due_at)``: with the expression indexed it reads the memories of the
    window alone (a month of a 100,000-memory cube: 0.2 ms, against 25-37 ms for a table scan)."""
    conn.execute("CREATE INDEX IF NOT EXISTS memories_when ON memories(coalesce(occurred_at, due_at))")


def _v9(conn: sqlite3.Connection) -> None:
    """Entity rows by key in memory order: the entity stage reads a name's first memories
    straight from the index and stops after the few it needs (a name in half of 100,000
    memories: 0.05 ms, against 3 ms sorting them all). The display name stays in the index,
    so the alias table and every lookup by key still read the index alone."""
    conn.execute("CREATE INDEX IF NOT EXISTS memory_entities_norm_row ON memory_entities(norm, memory_rowid, name)")
    conn.execute("DROP INDEX IF EXISTS memory_entities_norm_name")


def _v10(conn: sqlite3.Connection) -> None:
    """How many memories have each status, kept by triggers in the transaction of every change:
    a search needs the number of searchable memories (the entity signal's specificity, the
    choice of keyword path), and counting them walked the status index after each write (6 ms
    at 100,000 memories, paid by the first search after every add)."""
    from memory.store import maintenance

    # Idempotent, like the other migrations: a cube whose version was set back runs it again.
    conn.execute("CREATE TABLE IF NOT EXISTS memory_status_counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID")
    maintenance.recount_statuses(conn)
    up = "INSERT INTO memory_status_counts(status, n) VALUES ({}, 1) ON CONFLICT(status) DO UPDATE SET n = n + 1"
    down = "UPDATE memory_status_counts SET n = n - 1 WHERE status = {}"
    conn.execute(
        f"CREATE TRIGGER IF NOT EXISTS memories_count_insert AFTER INSERT ON memories BEGIN {up.format('new.status')}; END"
    )
    conn.execute(
        f"CREATE TRIGGER IF NOT EXISTS memories_count_delete AFTER DELETE ON memories BEGIN {down.format('old.status')}; END"
    )
    conn.execute(
        "CREATE TRIGGER IF NOT EXISTS memories_count_status AFTER UPDATE OF status ON memories WHEN old.status IS NOT new.status BEGIN "
        f"{down.format('old.status')}; {up.format('new.status')}; END"
    )


def _v11(conn: sqlite3.Connection) -> None:
    """Relations read from a memory's text (memory.relations), beside the client's own in
    ``memories.relations``: the graph derives its RELATED edges and their validity from both.
    Keyed by (source, type) so that a newer memory finds the relations it ends. Memories of an
    older cube have none until ``memcube doctor`` reads them (extraction takes ~2 ms a memory,
    too long for opening a large cube)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS memory_relations ("
        "memory_rowid INTEGER NOT NULL, source TEXT NOT NULL, source_norm TEXT NOT NULL, type TEXT NOT NULL, "
        "target TEXT NOT NULL, target_norm TEXT NOT NULL, ended INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY (memory_rowid, source_norm, type, target_norm)) WITHOUT ROWID"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS memory_relations_source ON memory_relations(source_norm, type)")
    conn.execute(
        "CREATE TRIGGER IF NOT EXISTS memories_relations_delete AFTER DELETE ON memories BEGIN "
        "DELETE FROM memory_relations WHERE memory_rowid = old.rowid; END"
    )
    # The graph's relations gain an origin and an end: derive again the memories that have any.
    conn.execute(
        "INSERT INTO graph_outbox(memory_id, op) SELECT id, 'sync' FROM memories WHERE relations != '[]' "
        "AND (status = 'active' OR (status = 'archived' AND superseded_by IS NOT NULL))"
    )
    # The memories written before this version, whose texts doctor reads for relations (then drops the mark).
    conn.execute(
        "INSERT INTO cube_meta(key, value) SELECT 'relations_unread_below', CAST(max(row_id) + 1 AS TEXT) FROM memories "
        "WHERE EXISTS (SELECT 1 FROM memories) ON CONFLICT(key) DO NOTHING"
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _v9, _v10, _v11]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to ``SCHEMA_VERSION``; returns the version it was at."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        if found > SCHEMA_VERSION:
            raise RuntimeError(
                f"this cube was written by a newer MemCube (schema {found}, this one knows {SCHEMA_VERSION}); upgrade memcube-mcp"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version - 1](conn)
            conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("COMMIT")
        return found
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def create_vector_table(conn: sqlite3.Connection, dim: int) -> None:
    """The sqlite-vec table; its width is the embedding model's, so it is made when the model is known."""
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS memory_vec USING vec0(embedding float[{int(dim)}] distance_metric=cosine)")
