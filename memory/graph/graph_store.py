"""The cube's entity graph in Kuzu, derived from SQLite (or a cube of the PostgreSQL store: ``GraphSource``).

Nodes: ``Memory`` (live, active memories only) and ``Entity`` (keyed by normalised name).
Edges: ``MENTIONS`` (memory to entity), ``RELATED`` (entity to entity, with predicate,
source memory, valid time, origin (client or extracted) and the memory that ended it),
``SUPERSEDES`` and ``DERIVED_FROM`` (memory to memory).

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
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock, Timeout

from memory.entities import normalize
from memory.errors import NotFound, Unavailable
from memory.graph import disk_room
from memory.graph.derive import GraphRows, derive, in_graph, relation_keys, row_links
from memory.models import EntityView, GraphMemoryRef, GraphRelation
from memory.store import filemodes
from memory.store.contract import Change
from memory.store.cube_store import GraphRow, RelationPeer
from memory.timeutil import now_stored

log = logging.getLogger(__name__)

# Kuzu's default buffer pool is 80% of the machine's memory; a laptop's memory server gets a
# fixed share instead (pages beyond it are read from disk). A 100,000-memory graph fits.
BUFFER_POOL_BYTES = 256 * 1024 * 1024
SCHEMA = [
    # No text in the graph: texts live in SQLite only, so a purge erases them in one place.
    "CREATE NODE TABLE IF NOT EXISTS Memory(id STRING, type STRING, PRIMARY KEY(id))",
    "CREATE NODE TABLE IF NOT EXISTS Entity(name STRING, display STRING, PRIMARY KEY(name))",
    "CREATE REL TABLE IF NOT EXISTS MENTIONS(FROM Memory TO Entity)",
    "CREATE REL TABLE IF NOT EXISTS RELATED(FROM Entity TO Entity, predicate STRING, source_memory STRING, valid_from STRING, "
    "valid_to STRING, origin STRING, invalidated_by STRING)",
    "CREATE REL TABLE IF NOT EXISTS SUPERSEDES(FROM Memory TO Memory)",
    "CREATE REL TABLE IF NOT EXISTS DERIVED_FROM(FROM Memory TO Memory)",
]
# A batch of memories is written with these statements, each unwinding a list parameter
# (memory.graph.derive): the work per batch is a fixed number of statements. New nodes and
# edges go in with COPY FROM a subquery, which finds a relation's two ends through the
# primary-key index; a MATCH on two nodes per unwound row joins whole tables instead.
_PRESENT = "UNWIND $ids AS id MATCH (m:Memory {id: id}) RETURN m.id"
_MENTIONED = "UNWIND $ids AS id MATCH (:Memory {id: id})-[:MENTIONS]->(e:Entity) RETURN DISTINCT e.name"
_LINKED = "UNWIND $ids AS id MATCH (:Memory {id: id})-[:SUPERSEDES]-(o:Memory) RETURN DISTINCT o.id"
# Unwound and compared with "=", the ids join by hash; "IN $ids" tests every edge against the whole list.
_RELATED_OF = (
    "UNWIND $ids AS id MATCH (a:Entity)-[r:RELATED]->(b:Entity) WHERE r.source_memory = id RETURN DISTINCT a.name, b.name"
)
_DROP_RELATED = "UNWIND $ids AS id MATCH ()-[r:RELATED]->() WHERE r.source_memory = id DELETE r"
_DROP_MEMORIES = "UNWIND $ids AS id MATCH (m:Memory {id: id}) DETACH DELETE m"
_ADD_MEMORIES = "COPY Memory FROM (UNWIND $rows AS r RETURN r.id, r.type)"
_ADD_ENTITIES = "UNWIND $rows AS r MERGE (e:Entity {name: r.name}) ON CREATE SET e.display = r.display"
_ADD_MENTIONS = "COPY MENTIONS FROM (UNWIND $rows AS r RETURN r.id, r.name)"
_ADD_RELATED = "COPY RELATED FROM (UNWIND $rows AS r RETURN r.a, r.b, r.p, r.id, r.vf, r.vt, r.o, r.x)"
# The memories whose relations a memory ended: re-derived with it, so that they open again when it goes.
_ENDED_BY = "UNWIND $ids AS id MATCH ()-[r:RELATED]->() WHERE r.invalidated_by = id RETURN DISTINCT r.source_memory"
_ADD_LINKS = "COPY SUPERSEDES FROM (UNWIND $rows AS r RETURN r.a, r.b)"
_DROP_ORPHANS = "UNWIND $names AS n MATCH (e:Entity {name: n}) WHERE NOT EXISTS { MATCH (e)-[]-() } DELETE e"
REBUILD_CHUNK = 5000  # memories per statement in a rebuild: bounds the parameter lists' size
MAX_LINK_HOPS = 8  # rounds of pulling in the queued far ends of SUPERSEDES links (a chain of replacements)
TABLES = ("MENTIONS", "RELATED", "SUPERSEDES", "DERIVED_FROM", "Memory", "Entity")  # relation tables first
PREVIEW_CHARS = 280  # of a memory's text in graph views (read from SQLite)
LOCK_TIMEOUT_S = 30.0
LOCK_POLL_S = 0.02  # how often a process waiting for the graph tries its lock again
HOLD_S = 2.0  # the longest apply_outbox keeps the graph before letting other processes in
BATCH = 5000  # outbox entries per graph transaction: each pays a commit that grows slowly with the graph


class GraphSource(Protocol):
    """What the graph reads of a cube: the change log it follows and the rows it derives from.

    The data folder's ``CubeStore`` and the PostgreSQL store's ``PostgresCubeStore`` both serve
    it, so a local graph can follow a cube in either."""

    def outbox_batch(self, limit: int) -> list[Change]: ...

    def outbox_done(self, up_to_seq: int, *, rebuilt: bool = False) -> None: ...

    def outbox_high(self) -> int: ...

    def graph_member_ids(self) -> list[str]: ...

    def graph_rows(self, ids: Sequence[str]) -> dict[str, GraphRow]: ...

    def relation_peers(self, keys: Sequence[tuple[str, str]]) -> list[RelationPeer]: ...


def _process_lock(path: Path) -> FileLock:
    """An exclusive lock between processes on ``path``, held by the OS (``flock``, ``msvcrt.locking``).

    The OS drops it when the process dies, so a crashed server never leaves the graph locked; a
    filesystem without such locks is an error rather than a fall-back to a lock file that a crash
    would leave behind. Each ``FileLock`` opens the file anew, so two of them in one process exclude
    each other too; ``GraphStore`` serialises its own threads, so the lock is not per thread."""
    return FileLock(path, mode=0o600, thread_local=False, fallback_to_soft=False)


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
        self._lock_file: FileLock | None = None
        self._read_only = False
        self.needs_rebuild = False
        # Why the last write was held back for want of disk space (disk_room), until one goes through.
        self.paused: str | None = None

    @contextmanager
    def _session(self, *, write: bool = True) -> Iterator[Any]:
        """Exclusive use of the graph, across threads and processes; re-entrant within a thread.

        A read (``write=False``) on a disk without room for writes opens the graph read-only,
        when its files hold no unfinished checkpoint (``disk_room``)."""
        with self._lock:
            if self._depth == 0:
                self._open(write)
            elif write and self._read_only:
                raise Unavailable(self.paused or "the graph is open read-only")
            self._depth += 1
            try:
                yield self._conn
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._close()

    def _open(self, write: bool = True) -> None:
        import kuzu

        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise Unavailable(
                f"{self.path.parent} is not a folder, so the graph cannot be opened; "
                "`memcube doctor` moves it aside and rebuilds the graph from SQLite"
            )
        # Checked before Kuzu is reached at all: opening replays its WAL, closing checkpoints.
        # Short of room, a read of a settled graph opens it read-only, which writes nothing.
        short = disk_room.shortfall(self.path)
        if short is not None and (write or not self._settled()):
            self.paused = short
            raise Unavailable(short)
        filemodes.private_dir(self.path.parent)
        self._lock_file = _process_lock(self.path.parent / "lock")
        try:
            self._lock_file.acquire(timeout=LOCK_TIMEOUT_S, poll_interval=LOCK_POLL_S)
        except Timeout:
            self._lock_file = None
            raise Unavailable(
                f"the graph at {self.path} stayed busy for {LOCK_TIMEOUT_S:.0f} s (other memcube processes); try again"
            ) from None
        try:
            if short is not None:
                self._open_read_only(kuzu, short)
                return
            try:
                self._db = kuzu.Database(str(self.path), buffer_pool_size=BUFFER_POOL_BYTES)
            except RuntimeError as exc:
                if _out_of_space(exc):  # the graph is whole; the disk filled since the check above
                    self.paused = disk_room.shortfall(self.path) or str(exc)
                    raise Unavailable(self.paused) from None
                # We hold the lock, so no other memcube process has it open: the files are damaged
                # (e.g. a crash mid-checkpoint). The graph is derived: set it aside and rebuild.
                log.warning("graph at %s cannot be opened (%s); recreating it from SQLite", self.path, exc)
                self._set_aside()
                self._db = kuzu.Database(str(self.path), buffer_pool_size=BUFFER_POOL_BYTES)
                self.needs_rebuild = True
            filemodes.tighten(self.path.parent)  # Kuzu creates its files with the umask's modes
            self._conn = kuzu.Connection(self._db)
            for statement in SCHEMA:
                self._conn.execute(statement)
            self._upgrade()
        except BaseException:
            self._close()
            raise

    def _upgrade(self) -> None:
        """A graph made before relations had an origin and an end: add the columns, derive it again."""
        columns = {r[0] for r in self._rows("CALL table_info('RELATED') RETURN name")}
        for column in ("origin", "invalidated_by"):
            if column not in columns:
                self._connection().execute(f"ALTER TABLE RELATED ADD {column} STRING")
                self.needs_rebuild = True

    def _settled(self) -> bool:
        """Whether the graph's files hold a whole database, with no WAL or checkpoint left to replay."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return False
        pending = (self.path.with_name(self.path.name + suffix) for suffix in (".wal", ".shadow"))
        return all(not p.exists() or p.stat().st_size == 0 for p in pending)

    def _open_read_only(self, kuzu: Any, short: str) -> None:
        try:
            self._db = kuzu.Database(str(self.path), buffer_pool_size=BUFFER_POOL_BYTES, read_only=True)
            self._conn = kuzu.Connection(self._db)
        except RuntimeError as exc:
            raise Unavailable(f"{short}; meanwhile the graph cannot be read either ({exc})") from None
        self._read_only = True

    def has_room(self) -> bool:
        """Whether the disk has room for a small graph write now (``disk_room``)."""
        return disk_room.shortfall(self.path) is None

    def _require_room(self, items: int = 0, keep: int = 0) -> None:
        """Raise ``Unavailable`` (and pause) unless the disk has room to write ``items`` nodes and edges."""
        short = disk_room.shortfall(self.path, items, keep=keep)
        self.paused = short
        if short is not None:
            raise Unavailable(short)

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
            self._read_only = False
            if self._lock_file is not None:
                self._lock_file.release()
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

    def apply_outbox(self, store: GraphSource, limit: int = BATCH, hold_s: float = HOLD_S) -> int:
        """Bring the graph up to date with queued changes; returns how many were applied.

        Batches of ``limit`` follow each other in one session until the outbox is empty or
        ``hold_s`` has passed: opening and closing the database (which checkpoints it) once
        per burst instead of once per batch, while other processes wait at most about that
        long for the graph. Call again until it returns 0.
        """
        pending = store.outbox_batch(limit)
        if not pending and not self.needs_rebuild:
            self.paused = None  # nothing is held back
            return 0
        applied = 0
        with self._session():
            if self.needs_rebuild:
                return self.rebuild(store)
            deadline = time.monotonic() + hold_s
            # Another process may have applied these while we waited for the lock: re-read.
            while pending := store.outbox_batch(limit):
                memory_ids = list(dict.fromkeys(change.memory_id for change in pending))
                self._resync(store, memory_ids)
                # Still inside the session: no other process can empty the outbox (and let seqs
                # restart) between the read above and this delete.
                store.outbox_done(pending[-1].seq)
                applied += len(pending)
                if time.monotonic() >= deadline:
                    break
        return applied

    def rebuild(self, store: GraphSource) -> int:
        """Drop the graph and derive it again from every memory in SQLite."""
        with self._session() as conn:
            keep = disk_room.graph_bytes(self.path)  # the old graph stays on disk until the commit
            self._require_room(keep=keep)
            self.needs_rebuild = False
            conn.execute("BEGIN TRANSACTION")
            try:
                # Dropping the tables is instant where deleting every node and edge takes seconds.
                for table in TABLES:
                    conn.execute(f"DROP TABLE {table}")
                for statement in SCHEMA:
                    conn.execute(statement)
                high = store.outbox_high()
                ids = store.graph_member_ids()
                links: dict[tuple[str, str], dict[str, Any]] = {}
                written: set[str] = set()
                items = 0
                for start in range(0, len(ids), REBUILD_CHUNK):
                    chunk = ids[start : start + REBUILD_CHUNK]
                    chunk_rows = store.graph_rows(chunk)
                    derived = derive(chunk, chunk_rows, peers=store.relation_peers(relation_keys(chunk_rows)))
                    items += _items(derived)
                    self._require_room(items, keep)  # nothing reaches the disk before the commit
                    links.update(((r["a"], r["b"]), r) for r in derived.supersedes)
                    derived.supersedes = []  # last, when every node is there: a link across chunks is kept too
                    self._write(derived, set())
                    written.update(m["id"] for m in derived.memories)
                self._write(GraphRows(supersedes=list(links.values())), written)
                self._require_room(items + len(links), keep)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                self.needs_rebuild = True  # the next use tries again
                raise
            store.outbox_done(high, rebuilt=True)
        return len(ids)

    def _resync(self, store: GraphSource, memory_ids: list[str]) -> None:
        """Re-derive these memories' part of the graph with a fixed number of statements."""
        memory_ids = self._with_relation_peers(store, memory_ids)
        rows, outside = self._with_link_ends(store, store.graph_rows(memory_ids))
        peers = store.relation_peers(relation_keys(rows))
        given = set(memory_ids)
        ids = memory_ids + [i for i in rows if i not in given]  # in order: the first spelling of a name is its display
        self._require_room(sum(1 + len(r.entities) + len(r.relations) + len(r.extracted) for r in rows.values()))
        conn = self._connection()
        conn.execute("BEGIN TRANSACTION")
        try:
            touched: list[str] = []
            neighbours: dict[str, GraphRow] = {}
            present = [r[0] for r in self._rows(_PRESENT, {"ids": ids})]
            if present:
                # A RELATED edge is only ever written with its source memory's node, in one
                # transaction, and leaves with it: only memories with a node have edges to remove.
                touched_set = {r[0] for r in self._rows(_MENTIONED, {"ids": present})}
                for a, b in self._rows(_RELATED_OF, {"ids": present}):
                    touched_set.update((a, b))
                touched = sorted(touched_set)
                linked = {r[0] for r in self._rows(_LINKED, {"ids": present})} - set(ids)
                neighbours = store.graph_rows(sorted(linked)) if linked else {}
                outside |= linked
                conn.execute(_DROP_RELATED, {"ids": present})
                conn.execute(_DROP_MEMORIES, {"ids": present})
            self._write(derive(ids, rows, neighbours, peers), outside - set(ids))
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        if touched:
            # Entities that nothing mentions or relates any more leave the graph. This runs after
            # the commit: within the transaction, Kuzu's EXISTS does not see edges created by it,
            # and would let an entity that a new memory just named be deleted.
            conn.execute("BEGIN TRANSACTION")
            try:
                conn.execute(_DROP_ORPHANS, {"names": touched})
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    def _with_relation_peers(self, store: GraphSource, memory_ids: list[str]) -> list[str]:
        """``memory_ids`` and the memories whose exclusive relations they may end or have ended
        (same source and type), so that a newer memory closes the older relation, and a deleted or
        changed one opens again what it had closed."""
        ids = list(memory_ids)
        known = set(ids)
        more = [p.memory_id for p in store.relation_peers(relation_keys(store.graph_rows(ids)))]
        more += [r[0] for r in self._rows(_ENDED_BY, {"ids": ids}) if r[0]]
        for memory_id in more:
            if memory_id not in known:
                known.add(memory_id)
                ids.append(memory_id)
        return ids

    def _with_link_ends(self, store: GraphSource, rows: dict[str, GraphRow]) -> tuple[dict[str, GraphRow], set[str]]:
        """``rows`` plus the rows of the memories their SUPERSEDES links name that belong in the graph
        but have no node yet (queued in a later batch): derived together, the link is not lost
        when only the older one's row names it (a newer memory that replaced several).
        Also returns the far ends that already have a node."""
        outside: set[str] = set()
        seen = set(rows)
        frontier = rows
        for _ in range(MAX_LINK_HOPS):
            ends = {end for row in frontier.values() for link in row_links(row) for end in link} - seen
            if not ends:
                break
            seen |= ends
            found = {r[0] for r in self._rows(_PRESENT, {"ids": sorted(ends)})}
            outside |= found
            absent = ends - found
            frontier = {i: r for i, r in store.graph_rows(sorted(absent)).items() if in_graph(r)} if absent else {}
            rows = {**rows, **frontier}
        return rows, outside

    def _write(self, derived: GraphRows, outside: set[str]) -> None:
        """Add derived nodes and edges (within the caller's transaction); the memories' nodes must not exist yet.
        ``outside``: the memories outside ``derived`` known to have a node."""
        conn = self._connection()
        for statement, rows in (
            (_ADD_MEMORIES, derived.memories),
            (_ADD_ENTITIES, derived.entities),
            (_ADD_MENTIONS, derived.mentions),
            (_ADD_RELATED, derived.relations),
        ):
            if rows:  # Kuzu cannot type an empty list parameter
                conn.execute(statement, {"rows": rows})
        # newer -[:SUPERSEDES]-> older where both nodes exist (the other side's resync adds it otherwise)
        nodes = outside | {m["id"] for m in derived.memories}
        links = [link for link in derived.supersedes if link["a"] in nodes and link["b"] in nodes]
        if links:
            conn.execute(_ADD_LINKS, {"rows": links})

    def supersedes(self) -> list[tuple[str, str]]:
        with self._session(write=False):
            return [(a, b) for a, b in self._rows("MATCH (a:Memory)-[:SUPERSEDES]->(b:Memory) RETURN a.id, b.id")]

    # -- reading --------------------------------------------------------------------

    def entity(self, name: str, depth: int = 1, memory_limit: int = 50) -> EntityView:
        key = normalize(name)
        now = now_stored()
        with self._session(write=False):
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
                    for a, ad, p, b, bd, src, vf, vt, origin, ended_by in self._rows(
                        "MATCH (a:Entity)-[r:RELATED]->(b:Entity) WHERE a.name = $n OR b.name = $n "
                        "RETURN a.name, a.display, r.predicate, b.name, b.display, r.source_memory, r.valid_from, r.valid_to, "
                        "r.origin, r.invalidated_by",
                        {"n": current},
                    ):
                        relations[(a, p, b, src)] = GraphRelation(
                            subject=ad,
                            predicate=p,
                            object=bd,
                            source_memory=src,
                            valid_from=vf,
                            valid_to=vt,
                            origin=origin,
                            invalidated_by=ended_by,
                            current=ended_by is None and (vt is None or vt > now),
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
            relations=sorted(relations.values(), key=lambda r: not r.current),  # current ones first
            neighbours=sorted(neighbours.values(), key=str.casefold),
            memories=memories,
        )

    def has_entity(self, name: str) -> bool:
        with self._session(write=False):
            return bool(self._rows("MATCH (e:Entity {name: $name}) RETURN e.name", {"name": normalize(name)}))

    def memory_ids(self) -> set[str]:
        with self._session(write=False):
            return {r[0] for r in self._rows("MATCH (m:Memory) RETURN m.id")}

    def dump(self, *, validity: bool = False) -> dict[str, set[tuple[Any, ...]]]:
        """Every node and edge with its properties, as sets of tuples: to compare two graphs.
        ``validity``: relations also with their origin and the memory that ended them."""
        queries = {
            "memories": "MATCH (m:Memory) RETURN m.id, m.type",
            "entities": "MATCH (e:Entity) RETURN e.name, e.display",
            "mentions": "MATCH (m:Memory)-[:MENTIONS]->(e:Entity) RETURN m.id, e.name",
            "related": "MATCH (a:Entity)-[r:RELATED]->(b:Entity) "
            "RETURN a.name, r.predicate, b.name, r.source_memory, r.valid_from, r.valid_to"
            + (", r.origin, r.invalidated_by" if validity else ""),
            "supersedes": "MATCH (a:Memory)-[:SUPERSEDES]->(b:Memory) RETURN a.id, b.id",
        }
        with self._session(write=False):
            return {key: {tuple(row) for row in self._rows(query)} for key, query in queries.items()}

    def counts(self) -> dict[str, int]:
        with self._session(write=False):
            return {
                "memories": self._rows("MATCH (m:Memory) RETURN count(m)")[0][0],
                "entities": self._rows("MATCH (e:Entity) RETURN count(e)")[0][0],
                "mentions": self._rows("MATCH ()-[r:MENTIONS]->() RETURN count(r)")[0][0],
                "relations": self._rows("MATCH ()-[r:RELATED]->() RETURN count(r)")[0][0],
            }


def _items(derived: GraphRows) -> int:
    """Nodes and edges a write adds (what ``disk_room`` sizes)."""
    return len(derived.memories) + len(derived.entities) + len(derived.mentions) + len(derived.relations)


def _out_of_space(exc: BaseException) -> bool:
    return "No space left on device" in str(exc)


def _rollback(conn: Any) -> None:
    """Roll back if Kuzu has not already (a failed statement ends its transaction itself)."""
    try:
        conn.execute("ROLLBACK")
    except RuntimeError:
        pass
