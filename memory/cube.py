"""A MemCube: one namespace of memories with its own SQLite file, graph and vectors.

This is the memory API. The MCP tools, the CLI and library users all call it; it
validates input with the pydantic models, keeps the derived stores (vectors, FTS, graph)
in step with SQLite, and raises ``MemCubeError`` subclasses with messages meant for the
caller. Methods block: async callers run them in worker threads.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .embedder import Embedder
from .entities import extract_entities, normalize
from .errors import InvalidInput, Unavailable
from .graph import GraphStore
from .models import (
    MAX_BATCH,
    MAX_ENTITIES,
    MAX_IDS,
    AddOutcome,
    CubeStats,
    EntityView,
    Memory,
    MemoryInput,
    MemoryPatch,
    SearchHit,
    SearchQuery,
    VersionEntry,
)
from .schema import SCHEMA_VERSION
from .search import hybrid_search
from .store import CubeStore, NewMemory
from .timeutil import stored_from_input
from .vectors import VectorMirror

log = logging.getLogger(__name__)

REEMBED_BATCH = 128


def _relation_dicts(relations: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "subject": r.subject, "predicate": r.predicate, "object": r.object,
            "valid_from": stored_from_input(r.valid_from, field="valid_from"),
            "valid_to": stored_from_input(r.valid_to, field="valid_to"),
        }
        for r in relations
    ]


def resolve_entities(text: str, given: Sequence[str], relations: Sequence[dict[str, Any]]) -> list[str]:
    """The client's entities, then relation endpoints, then names found locally; no duplicates."""
    names: dict[str, str] = {}
    for name in [*given, *(r["subject"] for r in relations), *(r["object"] for r in relations), *extract_entities(text)]:
        key = normalize(name)
        if key and key not in names:
            names[key] = name.strip()
    return list(names.values())[: MAX_ENTITIES * 2]


def _check_count(ids: Sequence[str], what: str = "ids") -> None:
    if not ids:
        raise InvalidInput(f"give at least one memory id in {what}")
    if len(ids) > MAX_IDS:
        raise InvalidInput(f"at most {MAX_IDS} {what} per call; split the request")


class MemCube:
    def __init__(self, name: str, folder: Path, embedder: Embedder) -> None:
        self.name = name
        self.folder = folder
        self.embedder = embedder
        self.store = CubeStore(name, folder / "memory.db")
        self.graph_store = GraphStore(folder / "graph" / "graph.kuzu")
        self.mirror = VectorMirror()
        self._vectors_ready = False
        self._vector_lock = threading.Lock()
        self._pending_access: Counter[int] = Counter()
        self._access_lock = threading.Lock()

    def close(self) -> None:
        self.flush_access()
        self.graph_store.close()
        self.store.close()

    # -- vectors --------------------------------------------------------------------

    def ensure_vectors(self) -> None:
        """Make sure every live memory has a vector from the configured model (re-embedding if the model changed)."""
        if self._vectors_ready:
            return
        with self._vector_lock:
            if self._vectors_ready:
                return
            model_id, dim = self.embedder.model_id, self.embedder.dim
            if self.store.ensure_vector_table(model_id, dim):
                log.warning("cube %s: embedding model changed to %s; re-embedding its memories", self.name, model_id)
            self._reembed_stale(model_id)
            self._vectors_ready = True

    def _reembed_stale(self, model_id: str) -> int:
        done = 0
        while rows := self.store.stale_embeddings(model_id, REEMBED_BATCH):
            vectors = self.embedder.embed([text for _, text in rows])
            self.store.store_vectors([(row_id, vectors[i]) for i, (row_id, _) in enumerate(rows)], model_id)
            done += len(rows)
            log.info("cube %s: re-embedded %d memories", self.name, done)
        return done

    def reembed(self) -> int:
        """Re-embed every live memory with the configured model."""
        with self.store.write() as conn:
            conn.execute("UPDATE memories SET embedding_model = NULL WHERE status != 'deleted'")
        self._vectors_ready = False
        self.ensure_vectors()
        return self.store.counts()["active"] + self.store.counts()["archived"]

    # -- writes ---------------------------------------------------------------------

    def add(self, inputs: Sequence[MemoryInput | dict[str, Any]], *, client: str | None = None) -> list[AddOutcome]:
        if not inputs:
            raise InvalidInput("nothing to add: give text, or memories with at least one item")
        if len(inputs) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} memories per call; split the batch")
        items = [i if isinstance(i, MemoryInput) else MemoryInput.model_validate(i) for i in inputs]
        self.ensure_vectors()
        prepared: list[NewMemory] = []
        for item in items:
            relations = _relation_dicts(item.relations)
            prepared.append(
                NewMemory(
                    text=item.text, type=item.type, tags=item.tags,
                    entities=resolve_entities(item.text, item.entities, relations), relations=relations,
                    occurred_at=stored_from_input(item.occurred_at, field="occurred_at"), metadata=item.metadata,
                    importance=item.importance, confidence=item.confidence, source=item.source,
                    user_id=item.user_id, agent_id=item.agent_id, session_id=item.session_id,
                )
            )
        vectors = self.embedder.embed([p.text for p in prepared])
        for item, vector in zip(prepared, vectors, strict=True):
            item.vector = vector
        self.flush_access()
        outcomes = self.store.add(prepared, client=client, model_id=self.embedder.model_id)
        return [AddOutcome(id=i, created=c) for i, c in outcomes]

    def update(self, memory_id: str, patch: MemoryPatch | dict[str, Any], *, client: str | None = None) -> Memory:
        patch = patch if isinstance(patch, MemoryPatch) else MemoryPatch.model_validate(patch)
        if patch.is_empty():
            raise InvalidInput("nothing to update: give at least one of text, type, tags, entities, relations, occurred_at, metadata, importance, confidence")
        current = self.store.get_many([memory_id])[0]
        values: dict[str, Any] = {}
        for field in ("text", "type", "tags", "metadata", "importance", "confidence"):
            value = getattr(patch, field)
            if value is not None:
                values[field] = value
        if patch.occurred_at is not None:
            values["occurred_at"] = stored_from_input(patch.occurred_at, field="occurred_at")
        relations = _relation_dicts(patch.relations) if patch.relations is not None else [r.model_dump() for r in current.relations]
        if patch.relations is not None:
            values["relations"] = relations
        if patch.text is not None or patch.entities is not None or patch.relations is not None:
            # Entities follow the text: names found in the old text that are gone from the new one go too.
            given = patch.entities if patch.entities is not None else self._client_entities(current)
            values["entities"] = resolve_entities(values.get("text", current.text), given, relations)
        vector = None
        if "text" in values and values["text"] != current.text:
            self.ensure_vectors()
            vector = self.embedder.embed_one(values["text"])
        self.flush_access()
        return self.store.update(memory_id, values, vector=vector, model_id=self.embedder.model_id if vector is not None else None, client=client)

    def _client_entities(self, memory: Memory) -> list[str]:
        """Entities of a memory that did not come from its text or relations: the ones the client named."""
        derived = {normalize(n) for n in extract_entities(memory.text)}
        derived |= {normalize(r.subject) for r in memory.relations} | {normalize(r.object) for r in memory.relations}
        return [e for e in memory.entities if normalize(e) not in derived]

    def archive(self, ids: Sequence[str], *, client: str | None = None) -> list[Memory]:
        _check_count(ids)
        return self.store.set_status(ids, to="archived", allowed_from=("active",), op="archive", client=client)

    def restore(self, ids: Sequence[str], *, client: str | None = None) -> list[Memory]:
        _check_count(ids)
        return self.store.set_status(ids, to="active", allowed_from=("archived",), op="restore", client=client)

    def delete(self, ids: Sequence[str], *, purge: bool = False, client: str | None = None) -> list[str]:
        _check_count(ids)
        self.flush_access()
        if purge:
            self.store.get_many(ids)  # unknown ids fail before anything is erased
            self.store.purge(ids, client=client)
        else:
            self.store.set_status(ids, to="deleted", allowed_from=("active", "archived"), op="delete", client=client)
        return list(ids)

    # -- reads ----------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[Memory]:
        _check_count(ids)
        memories = self.store.get_many(ids)
        self._note_access(self._row_ids(ids))
        return memories

    def search(self, query: SearchQuery | dict[str, Any]) -> list[SearchHit]:
        q = query if isinstance(query, SearchQuery) else SearchQuery.model_validate(query)
        vector = None
        if "vector" in q.signals or "entity" in q.signals:
            self.ensure_vectors()
            vector = self.embedder.embed_one(q.query)
        hits = hybrid_search(self.store, self.mirror, q, vector)
        self._note_access(self._row_ids([h.id for h in hits]))
        return hits

    def history(self, memory_id: str) -> list[VersionEntry]:
        return [VersionEntry(**entry) for entry in self.store.history(memory_id)]

    def graph(self, entity: str, depth: int = 1) -> EntityView:
        if depth not in (1, 2):
            raise InvalidInput("depth must be 1 or 2")
        if not entity or not normalize(entity):
            raise InvalidInput("give an entity name, e.g. 'Alice' or '#project-x'")
        self.sync_graph()
        return self.graph_store.entity(entity, depth)

    def recent(self, limit: int = 20) -> list[Memory]:
        return self.store.recent(limit)

    def stats(self) -> CubeStats:
        counts = self.store.counts()
        return CubeStats(
            cube=self.name, active=counts["active"], archived=counts["archived"], deleted=counts["deleted"],
            entities=counts["entities"], relations=counts["relations"],
            embedding_model=self.store.meta("embedding_model"), schema_version=SCHEMA_VERSION,
            graph_pending=counts["graph_pending"], path=str(self.folder),
        )

    # -- derived stores -------------------------------------------------------------

    def sync_graph(self) -> int:
        """Apply queued graph changes. Raises ``Unavailable`` when another process holds the graph."""
        applied = 0
        while batch := self.graph_store.apply_outbox(self.store):
            applied += batch
        return applied

    def try_sync_graph(self) -> int:
        try:
            return self.sync_graph()
        except Unavailable as exc:
            log.warning("cube %s: graph not updated yet: %s", self.name, exc)
            return 0

    def rebuild_graph(self) -> int:
        return self.graph_store.rebuild(self.store)

    def flush_access(self) -> None:
        with self._access_lock:
            pending, self._pending_access = self._pending_access, Counter()
        if pending:
            with self.store.write() as conn:
                from .timeutil import now_stored

                now = now_stored()
                conn.executemany(
                    "UPDATE memories SET access_count = access_count + ?, last_access = ? WHERE row_id = ?",
                    [(n, now, row_id) for row_id, n in pending.items()],
                )

    def _note_access(self, row_ids: Sequence[int]) -> None:
        # Counted in memory and written with the next write: a search stays read-only and fast.
        with self._access_lock:
            self._pending_access.update(row_ids)

    def _row_ids(self, ids: Sequence[str]) -> list[int]:
        with self.store.lock:
            placeholders = ",".join("?" * len(ids))
            return [r[0] for r in self.store.conn.execute(f"SELECT row_id FROM memories WHERE id IN ({placeholders})", list(ids))]

    def vector_of(self, memory_id: str) -> np.ndarray | None:
        with self.store.lock:
            row = self.store.conn.execute(
                "SELECT v.embedding FROM memories m JOIN memory_vec v ON v.rowid = m.row_id WHERE m.id = ?", (memory_id,)
            ).fetchone()
        return np.frombuffer(row[0], dtype=np.float32) if row else None
