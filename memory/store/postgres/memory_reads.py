"""The reads of a cube in the PostgreSQL store that the data folder's ``CubeStore`` also answers.

``PostgresMemoryReads`` gives ``PostgresCubeStore`` the listing, browsing, profile, activity,
export and re-embedding calls of ``CubeStore`` with the same signatures and results. Every
statement is bound (``%s``) and filtered by the store's cube. Where SQLite orders or compares
stored text (times, roles, tags, entity keys) the statements say ``COLLATE "C"``, so rows come
in SQLite's byte order whatever the database's locale. Rules beyond the SQL (the profile's
sections, the browse cursor, what of a refused call is kept) are ``memory.store.read_rules``'
and ``memory.store.browse``', run by both engines.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from memory.errors import InvalidInput
from memory.models import FeedbackEntry, Memory, MemoryStatus
from memory.store import read_rules
from memory.store.browse import BrowseFilter, Cursor, count_query, page_end, page_query
from memory.store.filter_sql import POSTGRES
from memory.store.postgres.schema import EMBEDDING_DIM
from memory.store.postgres.settings import meta, set_meta
from memory.store.postgres.write_tables import MEMORY_SELECT
from memory.store.read_rules import ProfileRows, by_row_id, goals_and_tasks_query, kept_denial, profile_sections
from memory.store.rows import row_to_memory
from memory.timeutil import now_stored

_C = POSTGRES.byte_order  # after a text column: SQLite's (byte) order


class PostgresMemoryReads:
    """``CubeStore``'s reads (and small writes) over one cube of the store; mixed into ``PostgresCubeStore``."""

    cube: str
    cube_id: int
    _conn: psycopg.Connection[Any]  # autocommit
    _lock: threading.RLock

    if TYPE_CHECKING:  # PostgresCubeStore's

        def write(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...

        def get_many(self, ids: Sequence[str], *, include_deleted: bool = True) -> list[Memory]: ...

    def _select(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(statement, params).fetchall()

    def _memories(self, where: str, params: Sequence[Any]) -> list[Memory]:
        """The memories of the cube that match ``where`` (with its order and limit), in its order."""
        rows = self._select(f"SELECT {MEMORY_SELECT} FROM memories WHERE cube = %s AND {where}", [self.cube_id, *params])
        return [row_to_memory(self.cube, row) for row in rows]

    def _attach_feedback(self, memories: Sequence[Memory]) -> None:
        tasks = {m.id: m for m in memories if m.type == "task"}
        if not tasks:
            return
        rows = self._select(
            "SELECT memory_id, at, tried, result, client FROM memory_feedback WHERE cube = %s AND memory_id = ANY(%s) ORDER BY seq",
            (self.cube_id, list(tasks)),
        )
        for memory_id, at, tried, result, client in rows:
            tasks[memory_id].feedback.append(FeedbackEntry(at=at, tried=tried, result=result, client=client))

    # -- metadata ------------------------------------------------------------------------

    def set_meta(self, conn: psycopg.Connection[Any], key: str, value: str) -> None:
        set_meta(conn, self.cube_id, key, value)

    def save_meta(self, key: str, value: str) -> None:
        """Set one cube setting in its own transaction (e.g. the client's entity alias choices)."""
        with self.write() as conn:
            self.set_meta(conn, key, value)

    def ensure_vector_table(self, model_id: str, dim: int) -> bool:
        """Record the cube's embedding model; True when the cube held another model's vectors.

        The store's vectors live in one ``vector(EMBEDDING_DIM)`` column under one HNSW index
        for every cube: a model of another width cannot be stored.
        """
        if dim != EMBEDDING_DIM:
            raise InvalidInput(
                f"the PostgreSQL store holds {EMBEDDING_DIM}-dimensional vectors and the embedding model {model_id!r} "
                f"makes {dim}: use a {EMBEDDING_DIM}-dimensional model (the default, all-MiniLM-L6-v2) with this store"
            )
        with self.write() as conn:
            current = meta(conn, self.cube_id, "embedding_model")
            changed = current is not None and current != model_id
            self.set_meta(conn, "embedding_model", model_id)
            self.set_meta(conn, "embedding_dim", str(dim))
        return changed

    # -- memories ------------------------------------------------------------------------

    def get_by_row_ids(self, row_ids: Sequence[int]) -> dict[int, Memory]:
        if not row_ids:
            return {}
        rows = self._select(
            f"SELECT {MEMORY_SELECT} FROM memories WHERE cube = %s AND row_id = ANY(%s)", (self.cube_id, list(row_ids))
        )
        return {int(row[0]): row_to_memory(self.cube, row) for row in rows}

    def row_ids_of(self, ids: Sequence[str]) -> list[int]:
        """The row ids of these memories (unknown ids have none), by memory id as SQLite reads them."""
        if not ids:
            return []
        rows = self._select(
            f"SELECT row_id FROM memories WHERE cube = %s AND id = ANY(%s) ORDER BY id{_C}", (self.cube_id, list(ids))
        )
        return [int(r[0]) for r in rows]

    def recent(self, limit: int = 20, status: MemoryStatus = "active") -> list[Memory]:
        return self._memories(f"status = %s ORDER BY created_at{_C} DESC, row_id DESC LIMIT %s", (status, limit))

    def iter_all(self, batch: int = 500) -> Iterator[Memory]:
        def read(after: int) -> list[tuple[Any, ...]]:
            return self._select(
                f"SELECT {MEMORY_SELECT} FROM memories WHERE cube = %s AND row_id > %s ORDER BY row_id LIMIT %s",
                (self.cube_id, after, batch),
            )

        for row in by_row_id(read):
            yield row_to_memory(self.cube, row)

    def live_versions(self) -> dict[str, int]:
        """The version of every active memory, by id (what a KV cache is checked against)."""
        rows = self._select("SELECT id, version FROM memories WHERE cube = %s AND status = 'active'", (self.cube_id,))
        return {str(i): int(v) for i, v in rows}

    def goals_and_tasks(self, states: Sequence[str], role: str | None) -> list[Memory]:
        """Active goals and tasks in these states (with a role: that role's and those without one), open ones first."""
        where, params = goals_and_tasks_query(states, role, POSTGRES)
        ids = [str(r[0]) for r in self._select(f"SELECT id FROM memories WHERE cube = %s AND {where}", [self.cube_id, *params])]
        return self.get_many(ids) if ids else []

    def profile_sections(self, *, role: str | None, now: str, horizon: str, done_since: str, top_facts: int) -> ProfileRows:
        """The memories each section of the profile draws from, in the section's order (``read_rules.profile_sections``)."""

        def load(where: str, params: list[object], order: str, limit: int) -> list[Memory]:
            memories = self._memories(f"{where} ORDER BY {order} LIMIT %s", [*params, limit])
            self._attach_feedback(memories)
            return memories

        return profile_sections(load, POSTGRES, role=role, now=now, horizon=horizon, done_since=done_since, top_facts=top_facts)

    # -- browsing (the web UI) -------------------------------------------------------------

    def page(self, browse: BrowseFilter, *, after: Cursor | None, limit: int) -> tuple[list[Memory], Cursor | None]:
        """One page of memories, newest first, and the cursor of the next page (None at the end): ``browse.page_query``."""
        statement, params = page_query(
            browse, MEMORY_SELECT, after=after, limit=limit, dialect=POSTGRES, scope=[("cube = %s", self.cube_id)]
        )
        rows, cursor = page_end(self._select(statement, params), limit)
        memories = [row_to_memory(self.cube, row) for row in rows]
        self._attach_feedback(memories)
        return memories, cursor

    def count_matching(self, browse: BrowseFilter) -> int:
        statement, params = count_query(browse, dialect=POSTGRES, scope=[("cube = %s", self.cube_id)])
        return int(self._select(statement, params)[0][0])

    def _in_use(self, column: str, limit: int | None = None) -> list[str]:
        """The values of a text column (``tags``: each tag) among memories not deleted, in byte order."""
        value = sql.SQL("t") if column == "tags" else sql.Identifier(column)
        source = sql.SQL(", jsonb_array_elements_text(m.tags) t" if column == "tags" else "")
        statement = sql.SQL(
            'SELECT DISTINCT {value} COLLATE "C" AS v FROM memories m{source} '
            "WHERE m.cube = %s AND m.status <> 'deleted' AND {value} IS NOT NULL ORDER BY v"
        ).format(value=value, source=source)
        if limit is not None:
            statement += sql.SQL(" LIMIT %s")
        with self._lock:
            rows = self._conn.execute(statement, (self.cube_id,) if limit is None else (self.cube_id, limit)).fetchall()
        return [str(r[0]) for r in rows]

    def facets(self) -> dict[str, list[str]]:
        """The types, roles and tags in use among memories not deleted, for filter menus."""
        return {"types": self._in_use("type"), "roles": self._in_use("role"), "tags": self._in_use("tags", 500)}

    def roles_and_tags(self) -> tuple[list[str], list[str]]:
        """The roles and the tags live memories use, each sorted: what a client's completion offers."""
        with self._lock, self._conn.transaction():  # one snapshot for both
            return self._in_use("role"), self._in_use("tags")

    # -- history and activity -------------------------------------------------------------

    def client_activity(self) -> list[dict[str, Any]]:
        """Per client and operation: how many changes it made and when it last did."""
        rows = self._select(
            f"SELECT client, op, count(*), max(at{_C}) AS last FROM memory_versions WHERE cube = %s "
            "GROUP BY client, op ORDER BY last DESC",
            (self.cube_id,),
        )
        return [{"client": c, "op": op, "count": int(n), "last": at} for c, op, n, at in rows]

    def recent_changes(self, limit: int = 50) -> list[dict[str, Any]]:
        """The last changes of the cube, newest first: ``{memory_id, version, op, at, client}``."""
        rows = self._select(
            "SELECT memory_id, version, op, at, client FROM memory_versions WHERE cube = %s ORDER BY seq DESC LIMIT %s",
            (self.cube_id, limit),
        )
        return [{"memory_id": m, "version": v, "op": op, "at": at, "client": c} for m, v, op, at, c in rows]

    def all_versions(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every version row of the cube, oldest first, as ``(memory id, {version, op, at, client, changes})``."""
        rows = self._select(
            "SELECT memory_id, version, op, at, client, changes FROM memory_versions WHERE cube = %s ORDER BY seq",
            (self.cube_id,),
        )
        for memory_id, version, op, at, client, changes in rows:
            yield memory_id, {"version": version, "op": op, "at": at, "client": client, "changes": changes}

    def entity_mentions(self, *, include_deleted: bool = False) -> list[tuple[str, str, str]]:
        """``(entity key, display name, memory id)`` for every entity a memory names, by key then memory."""
        rows = self._select(
            "SELECT e.norm, e.name, m.id FROM memory_entities e JOIN memories m ON m.cube = e.cube AND m.row_id = e.memory_row_id "
            "WHERE e.cube = %s" + ("" if include_deleted else " AND m.status <> 'deleted'") + f" ORDER BY e.norm{_C}, m.row_id",
            (self.cube_id,),
        )
        return [(str(n), str(name), str(i)) for n, name, i in rows]

    # -- refused calls --------------------------------------------------------------------

    def record_denial(self, *, client: str | None, action: str, need: str) -> None:
        """Keep a refused call (``read_rules.kept_denial``), the cube's newest ``MAX_DENIALS`` only."""
        with self.write() as conn:
            conn.execute(
                "INSERT INTO access_denials (cube, at, client, action, need) VALUES (%s, %s, %s, %s, %s)",
                (self.cube_id, now_stored(), *kept_denial(client, action, need)),
            )
            # One sequence numbers every cube's refusals: the cut is the cube's own newest rows.
            conn.execute(
                "DELETE FROM access_denials WHERE cube = %(cube)s AND seq <= (SELECT seq FROM access_denials "
                "WHERE cube = %(cube)s ORDER BY seq DESC OFFSET %(keep)s LIMIT 1)",
                {"cube": self.cube_id, "keep": read_rules.MAX_DENIALS},
            )

    def denials(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._select(
            "SELECT at, client, action, need FROM access_denials WHERE cube = %s ORDER BY seq DESC LIMIT %s",
            (self.cube_id, limit),
        )
        return [{"at": at, "client": client, "action": action, "need": need} for at, client, action, need in rows]

    # -- access counts and re-embedding ---------------------------------------------------

    def add_access(self, counts: dict[int, int]) -> None:
        """Add reads to memories' access counts (not a version: reading changes no content)."""
        if not counts:
            return
        now = now_stored()
        with self.write() as conn, conn.cursor() as cursor:
            cursor.executemany(
                "UPDATE memories SET access_count = access_count + %s, last_access = %s WHERE cube = %s AND row_id = %s",
                [(n, now, self.cube_id, row_id) for row_id, n in counts.items()],
            )

    def forget_embedding_models(self) -> None:
        """Mark every live memory's vector as stale, so the next ``stale_embeddings`` returns them all."""
        with self.write() as conn:
            conn.execute("UPDATE memories SET embedding_model = NULL WHERE cube = %s AND status <> 'deleted'", (self.cube_id,))

    def stale_embeddings(self, model_id: str, limit: int) -> list[tuple[int, str]]:
        rows = self._select(
            "SELECT row_id, text FROM memories WHERE cube = %s AND status <> 'deleted' AND "
            "(embedding_model IS NULL OR embedding_model <> %s) ORDER BY row_id LIMIT %s",
            (self.cube_id, model_id, limit),
        )
        return [(int(r), str(t)) for r, t in rows]
