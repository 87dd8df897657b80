"""The cube's entity graph in Kuzu, derived from SQLite.

Nodes: ``Memory`` (live, active memories only) and ``Entity`` (keyed by normalised name).
Edges: ``MENTIONS`` (memory to entity), ``RELATED`` (entity to entity, with predicate,
source memory and valid time), ``SUPERSEDES`` and ``DERIVED_FROM`` (memory to memory).

The graph is never written directly by a tool call. A change to a memory queues a row
in SQLite's ``graph_outbox`` in the same transaction; ``apply_outbox`` then re-derives
that memory's part of the graph from its SQLite row. Re-deriving is idempotent, so a
crash between the two steps only leaves work that the next run finishes, and
``rebuild`` can always recreate the whole graph from SQLite. All Cypher uses bound
parameters.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memory.entities import normalize
from memory.errors import NotFound, Unavailable
from memory.graph import file_lock as interprocess
from memory.models import EntityView, GraphMemoryRef, GraphRelation
from memory.store import filemodes
from memory.store.cube_store import CubeStore

log = logging.getLogger(__name__)

SCHEMA = [
    # No text in the graph: texts live in SQLite only, so a purge erases them in one place.
    "CREATE NODE TABLE IF NOT EXISTS Memory(id STRING, type STRING, PRIMARY KEY(id))",
    "CREATE NODE TABLE IF NOT EXISTS Entity(name STRING, display STRING, PRIMARY KEY(name))",
    "CREATE REL TABLE IF NOT EXISTS MENTIONS(FROM Memory TO Entity)",
    "CREATE REL TABLE IF NOT EXISTS RELATED(FROM Entity TO Entity, predicate STRING, source_memory STRING, valid_from STRING, valid_to STRING)",
    "CREATE REL TABLE IF NOT EXISTS SUPERSEDES(FROM Memory TO Memory)",
    "CREATE REL TABLE IF NOT EXISTS DERIVED_FROM(FROM Memory TO Memory)",
]
PREVIEW_CHARS = 280  # of a memory's text in graph views (read from SQLite)
LOCK_TIMEOUT_S = 30.0


class GraphStore:
    """One cube's Kuzu database (``graph/``); blocking methods.

    Kuzu lets one process open a database for writing, and every MCP client starts its own
    ``memcube serve``. So no process keeps the graph open: each graph operation takes an
    OS file lock beside the database (``graph/lock``), opens it, works and closes it, and
    the next process in line goes on. Opening costs a fraction of a second, paid once per burst of
    writes (the outbox is applied in batches between tool calls) and once per graph read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        self._db: Any = None
        self._conn: Any = None
        self._lock_file: Any = None
        self.needs_rebuild = False

    @contextmanager
    def _session(self) -> Iterator[Any]:
        """Exclusive use of the graph, across threads and processes; re-entrant within a thread."""
        with self._lock:
            if self._depth == 0:
                self._open()
            self._depth += 1
            try:
                yield self._conn
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._close()

    def _open(self) -> None:
        import kuzu

        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise Unavailable(
                f"{self.path.parent} is not a folder, so the graph cannot be opened; "
                "`memcube doctor` moves it aside and rebuilds the graph from SQLite"
            )
        filemodes.private_dir(self.path.parent)
        self._lock_file = open(self.path.parent / "lock", "a+b")  # noqa: SIM115 - held for the session
        if not interprocess.acquire(self._lock_file, timeout=LOCK_TIMEOUT_S):
            self._lock_file.close()
            self._lock_file = None
            raise Unavailable(
                f"the graph at {self.path} stayed busy for {LOCK_TIMEOUT_S:.0f} s (other memcube processes); try again"
            )
        try:
            try:
                self._db = kuzu.Database(str(self.path))
            except RuntimeError as exc:
                # We hold the lock, so no other memcube process has it open: the files are damaged
                # (e.g. a crash mid-checkpoint). The graph is derived: set it aside and rebuild.
                log.warning("graph at %s cannot be opened (%s); recreating it from SQLite", self.path, exc)
                self._set_aside()
                self._db = kuzu.Database(str(self.path))
                self.needs_rebuild = True
            filemodes.tighten(self.path.parent)  # Kuzu creates its files with the umask's modes
            self._conn = kuzu.Connection(self._db)
            for statement in SCHEMA:
                self._conn.execute(statement)
        except BaseException:
            self._close()
            raise

    def _set_aside(self) -> None:
        for path in self.path.parent.glob(self.path.name + "*"):
            path.rename(path.with_name(path.name + ".damaged"))

    def _close(self) -> None:
        try:
            if self._conn is not None:
                self._conn.close()
            if self._db is not None:
                self._db.close()
        finally:
            self._conn = self._db = None
            if self._lock_file is not None:
                interprocess.release(self._lock_file)
                self._lock_file.close()
                self._lock_file = None

    def close(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._close()

    def _connection(self) -> Any:
        assert self._conn is not None, "graph used outside a session"
        return self._conn

    def _rows(self, query: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        result = self._connection().execute(query, params or {})
        rows = []
        while result.has_next():
            rows.append(result.get_next())
        return rows

    # -- deriving from SQLite -------------------------------------------------------

    def apply_outbox(self, store: CubeStore, limit: int = 1000) -> int:
        """Bring the graph up to date with queued changes; returns how many were applied."""
        pending = store.outbox_batch(limit)
        if not pending and not self.needs_rebuild:
            return 0
        with self._session():
            if self.needs_rebuild:
                return self.rebuild(store)
            # Another process may have applied these while we waited for the lock: re-read.
            pending = store.outbox_batch(limit)
            if not pending:
                return 0
            memory_ids = list(dict.fromkeys(memory_id for _, memory_id in pending))
            self._resync(store, memory_ids)
            # Still inside the session: no other process can empty the outbox (and let seqs
            # restart) between the read above and this delete.
            store.outbox_done(pending[-1][0])
        return len(pending)

    def rebuild(self, store: CubeStore) -> int:
        """Drop the graph and derive it again from every memory in SQLite."""
        with self._session() as conn:
            self.needs_rebuild = False
            conn.execute("MATCH (n) DETACH DELETE n")
            high = store.outbox_high()
            ids = store.graph_member_ids()
            for start in range(0, len(ids), 200):
                self._resync(store, ids[start : start + 200])
            store.outbox_done(high, rebuilt=True)
        return len(ids)

    def _resync(self, store: CubeStore, memory_ids: list[str]) -> None:
        conn = self._connection()
        rows = store.graph_rows(memory_ids)
        touched: set[str] = set()
        conn.execute("BEGIN TRANSACTION")
        try:
            for memory_id in memory_ids:
                for (name,) in self._rows("MATCH (m:Memory {id: $id})-[:MENTIONS]->(e:Entity) RETURN e.name", {"id": memory_id}):
                    touched.add(name)
                for a, b in self._rows(
                    "MATCH (a:Entity)-[r:RELATED {source_memory: $id}]->(b:Entity) RETURN a.name, b.name", {"id": memory_id}
                ):
                    touched.update((a, b))
                conn.execute("MATCH ()-[r:RELATED {source_memory: $id}]->() DELETE r", {"id": memory_id})
                conn.execute("MATCH (m:Memory {id: $id}) DETACH DELETE m", {"id": memory_id})
                row = rows.get(memory_id)
                if row is None:
                    continue
                status, type_, supersedes, superseded_by = row.status, row.type, row.supersedes, row.superseded_by
                if status != "active":
                    if status == "archived" and superseded_by:
                        # A superseded memory stays as the end of its SUPERSEDES link, without mentions.
                        self._memory_node(memory_id, type_)
                        self._link_supersedes(superseded_by, memory_id)
                    continue
                self._memory_node(memory_id, type_)
                if supersedes:
                    self._link_supersedes(memory_id, supersedes)
                for display in row.entities:
                    key = normalize(display)
                    if not key:
                        continue
                    self._merge_entity(key, display)
                    conn.execute(
                        "MATCH (m:Memory {id: $id}), (e:Entity {name: $name}) CREATE (m)-[:MENTIONS]->(e)",
                        {"id": memory_id, "name": key},
                    )
                for rel in row.relations:
                    subject, obj = normalize(rel["subject"]), normalize(rel["object"])
                    if not subject or not obj:
                        continue
                    self._merge_entity(subject, rel["subject"])
                    self._merge_entity(obj, rel["object"])
                    conn.execute(
                        "MATCH (a:Entity {name: $a}), (b:Entity {name: $b}) "
                        "CREATE (a)-[:RELATED {predicate: $p, source_memory: $id, valid_from: $vf, valid_to: $vt}]->(b)",
                        {
                            "a": subject,
                            "b": obj,
                            "p": rel["predicate"],
                            "id": memory_id,
                            "vf": rel.get("valid_from"),
                            "vt": rel.get("valid_to"),
                        },
                    )
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        # Entities that nothing mentions or relates any more leave the graph. This runs after
        # the commit: within the transaction, Kuzu's EXISTS does not see edges created by it,
        # and would let an entity that a new memory just named be deleted.
        conn.execute("BEGIN TRANSACTION")
        try:
            for name in touched:
                edges = self._rows("MATCH (e:Entity {name: $name}) OPTIONAL MATCH (e)-[r]-() RETURN count(r)", {"name": name})
                if edges and edges[0][0] == 0:
                    conn.execute("MATCH (e:Entity {name: $name}) DELETE e", {"name": name})
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _memory_node(self, memory_id: str, type_: str) -> None:
        self._connection().execute("MERGE (m:Memory {id: $id}) SET m.type = $type", {"id": memory_id, "type": type_})

    def _link_supersedes(self, newer: str, older: str) -> None:
        """newer -[:SUPERSEDES]-> older, when both nodes exist (the other side's resync adds it otherwise)."""
        self._connection().execute(
            "MATCH (a:Memory {id: $a}), (b:Memory {id: $b}) MERGE (a)-[:SUPERSEDES]->(b)", {"a": newer, "b": older}
        )

    def supersedes(self) -> list[tuple[str, str]]:
        with self._session():
            return [(a, b) for a, b in self._rows("MATCH (a:Memory)-[:SUPERSEDES]->(b:Memory) RETURN a.id, b.id")]

    def _merge_entity(self, key: str, display: str) -> None:
        self._connection().execute(
            "MERGE (e:Entity {name: $name}) ON CREATE SET e.display = $display", {"name": key, "display": display}
        )

    # -- reading --------------------------------------------------------------------

    def entity(self, name: str, depth: int = 1, memory_limit: int = 50) -> EntityView:
        key = normalize(name)
        with self._session():
            found = self._rows("MATCH (e:Entity {name: $name}) RETURN e.display", {"name": key})
            if not found:
                raise NotFound(
                    f"no entity {name!r} in this cube's graph; entities come from memory_add's entities, relations and names in the text"
                )
            relations: dict[tuple, GraphRelation] = {}
            frontier = {key}
            seen = {key}
            neighbours: dict[str, str] = {}
            for _ in range(depth):
                next_frontier: set[str] = set()
                for current in frontier:
                    for a, ad, p, b, bd, src, vf, vt in self._rows(
                        "MATCH (a:Entity)-[r:RELATED]->(b:Entity) WHERE a.name = $n OR b.name = $n "
                        "RETURN a.name, a.display, r.predicate, b.name, b.display, r.source_memory, r.valid_from, r.valid_to",
                        {"n": current},
                    ):
                        relations[(a, p, b, src)] = GraphRelation(
                            subject=ad, predicate=p, object=bd, source_memory=src, valid_from=vf, valid_to=vt
                        )
                        for other, display in ((a, ad), (b, bd)):
                            if other not in seen:
                                seen.add(other)
                                neighbours[other] = display
                                next_frontier.add(other)
                    for other, display in self._rows(
                        "MATCH (e:Entity {name: $n})<-[:MENTIONS]-(:Memory)-[:MENTIONS]->(o:Entity) "
                        "WHERE o.name <> $n RETURN DISTINCT o.name, o.display",
                        {"n": current},
                    ):
                        if other not in seen:
                            seen.add(other)
                            neighbours[other] = display
                            next_frontier.add(other)
                frontier = next_frontier
            memories = [
                GraphMemoryRef(id=i, text="", type=ty)
                for i, ty in self._rows(
                    "MATCH (m:Memory)-[:MENTIONS]->(e:Entity {name: $n}) RETURN m.id, m.type ORDER BY m.id DESC LIMIT $limit",
                    {"n": key, "limit": memory_limit},
                )
            ]
        return EntityView(
            entity=found[0][0],
            depth=depth,
            relations=list(relations.values()),
            neighbours=sorted(neighbours.values(), key=str.casefold),
            memories=memories,
        )

    def memory_ids(self) -> set[str]:
        with self._session():
            return {r[0] for r in self._rows("MATCH (m:Memory) RETURN m.id")}

    def counts(self) -> dict[str, int]:
        with self._session():
            return {
                "memories": self._rows("MATCH (m:Memory) RETURN count(m)")[0][0],
                "entities": self._rows("MATCH (e:Entity) RETURN count(e)")[0][0],
                "mentions": self._rows("MATCH ()-[r:MENTIONS]->() RETURN count(r)")[0][0],
                "relations": self._rows("MATCH ()-[r:RELATED]->() RETURN count(r)")[0][0],
            }


def _rollback(conn: Any) -> None:
    """Roll back if Kuzu has not already (a failed statement ends its transaction itself)."""
    try:
        conn.execute("ROLLBACK")
    except RuntimeError:
        pass
