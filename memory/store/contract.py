"""What the two store engines share: the contract above which no code knows its engine.

The embedded engine (SQLite + sqlite-vec + FTS5, ``memory.store.cube_store``) and the
PostgreSQL engine (``memory.store.postgres``) each implement these protocols; tests that
state a behaviour run it on both from one parametrised fixture (tests/test_store_contract.py).
The contract grows one table object at a time (issue 28): the change log first, since every
other server, cache and graph follows it.

Rows cross the boundary as named tuples, never as bare positional tuples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

import numpy as np

from memory.models import FeedbackEntry, Memory, MemoryStatus, SearchQuery

ConnectionT_contra = TypeVar("ConnectionT_contra", contravariant=True)


class Change(NamedTuple):
    """One change of the log: its place in the cube's order and the memory it changed."""

    seq: int
    memory_id: str


class ChangeFeed(Protocol[ConnectionT_contra]):
    """A cube's log of changed memories, written in the writes' own transactions and followed in order.

    ``queue`` joins the caller's transaction: a change is in the log if and only if the write
    committed. ``pending`` gives the changes this follower has not applied, oldest first, and
    never skips one that commits later with a lower number. ``done`` marks them applied.
    """

    def queue(self, conn: ConnectionT_contra, memory_ids: Iterable[str]) -> None: ...

    def pending(self, limit: int) -> list[Change]: ...

    def done(self, up_to_seq: int, *, rebuilt: bool = False) -> None: ...

    def high(self) -> int: ...

    def count(self) -> int: ...


class _FollowsChanges(Protocol):
    @property
    def changes(self) -> ChangeFeed[Any]: ...


class GraphOutbox:
    """A store's change log as its local graph follows it (``memory.graph.graph_store``), on either engine.

    SQLite's log is a queue that one graph empties; the PostgreSQL store keeps every change
    and each server's graph its own place in it (``change_cursors``)."""

    def outbox_batch(self: _FollowsChanges, limit: int) -> list[Change]:
        """The oldest changes the graph has not applied (``ChangeFeed.pending``)."""
        return self.changes.pending(limit)

    def outbox_done(self: _FollowsChanges, up_to_seq: int, *, rebuilt: bool = False) -> None:
        """The graph applied the changes up to ``up_to_seq``; ``rebuilt``: it was derived anew (a rebuild's request is answered)."""
        self.changes.done(up_to_seq, rebuilt=rebuilt)

    def outbox_high(self: _FollowsChanges) -> int:
        return self.changes.high()


FtsTable = Literal["memory_fts", "memory_context_fts"]
# What a search shows of a hit, by row id: (id, text, type, tags as stored JSON, occurred_at,
# created_at, status, state, due_at, parent_id).
HitRow = tuple[str, str, str, str, str | None, str, MemoryStatus, str | None, str | None, str | None]


class SearchReads(Protocol):
    """The named reads of one search over one cube (``search_reads.SearchView``, ``postgres.search_view``).

    Row ids are the engine's own; everything the ranking needs comes back as row ids and numbers.
    """

    def filtered_row_ids(self, q: SearchQuery) -> np.ndarray | None: ...

    def searchable_count(self, include_archived: bool) -> int: ...

    def exact_matches(self, q: SearchQuery) -> list[int]: ...

    def keyword_candidates(
        self, q: SearchQuery, terms: Sequence[str], k: int, *, table: FtsTable = "memory_fts", few: bool = False
    ) -> list[tuple[int, float, bool]]: ...

    def unheld_words(self, words: Sequence[str]) -> list[str]: ...

    def known_entities(self, keys: list[str]) -> list[str]: ...

    def entity_counts(self, q: SearchQuery, keys: Sequence[str]) -> tuple[dict[str, int], int]: ...

    def entity_first_rows(self, q: SearchQuery, keys: Sequence[str], k: int, *, exclude: Sequence[int] = ()) -> list[int]: ...

    def links(self, q: SearchQuery, keys: Sequence[str], row_ids: Sequence[int]) -> list[tuple[int, str, bool]]: ...

    def sync(self, vectors: Any) -> None: ...


class QueryCosines(Protocol):
    """A query's cosines with a cube's searchable vectors (``vector_mirror.Cosines``, ``postgres.vector_scores``)."""

    @property
    def scores(self) -> np.ndarray: ...  # the cosines (or an engine's sample of them): empty when no vector

    @property
    def mean(self) -> float: ...

    @property
    def std(self) -> float: ...

    def top(self, k: int) -> list[tuple[int, float]]: ...

    def of(self, row_ids: Iterable[int]) -> dict[int, float]: ...


class VectorScores(Protocol):
    """Where a search's vector signal comes from: the SQLite engine's mirror, or the database's index."""

    def cosines(
        self, query: np.ndarray, *, include_archived: bool = False, allowed: np.ndarray | None = None
    ) -> QueryCosines: ...


class SearchSource(Protocol):
    """A cube as the ranking reads it: two views (the second for the stage run beside the first) and the hits' rows."""

    def search_view(self) -> AbstractContextManager[SearchReads]: ...

    def side_view(self) -> AbstractContextManager[SearchReads]: ...

    def hit_rows(self, row_ids: Sequence[int]) -> dict[int, HitRow]: ...


class LiveDuplicate(Exception):
    """A write would give two live memories of a cube the same text (each engine's unique index refused it)."""


class WriteTables(Protocol):
    """The tables one write transaction changes, as ``memory.store.writer.MemoryWriter`` uses them.

    Each engine binds one of these to an open write transaction (``memory.store.sqlite_tables``,
    ``memory.store.postgres.write_tables``); the writer decides what changes and in what order,
    the tables only read and write rows. Values are plain Python (lists, dicts, None): each
    engine stores JSON its own way. Row ids are the engine's own.
    """

    def next_seq(self) -> int: ...

    def find(self, memory_id: str) -> Memory | None: ...

    def row_ids_of(self, memory_ids: Sequence[str]) -> list[int]: ...

    def live_id_by_hash(self, content_hash: str) -> str | None: ...

    def known(self, ids: Sequence[str], hashes: Sequence[str]) -> tuple[set[str], set[str]]:
        """(those of ``ids`` the cube holds, those of ``hashes`` a live memory has): what an import skips."""
        ...

    def set_setting(self, key: str, value: str | None) -> None:
        """Set (or, with None, remove) one of the cube's settings."""
        ...

    def same_subject(self, type_: str, subject: str, role: str | None) -> list[str]: ...

    def insert_memory(self, values: dict[str, Any]) -> int: ...

    def set_columns(self, memory_id: str, values: dict[str, Any]) -> None: ...

    def set_embedding_model(self, row_id: int, model_id: str, seq: int) -> None: ...

    def delete_memory(self, memory_id: str) -> None: ...

    def put_vector(self, row_id: int, vector: np.ndarray, *, replace: bool = True) -> None: ...

    def drop_vector(self, row_id: int) -> None: ...

    def insert_entities(self, row_id: int, names: Sequence[tuple[str, str]]) -> None: ...

    def drop_entities(self, row_id: int) -> None: ...

    def insert_relations(self, row_id: int, rows: Sequence[RelationRow]) -> None: ...

    def drop_relations(self, row_id: int) -> None: ...

    def insert_feedback(self, memory_id: str, entry: FeedbackEntry, client: str | None) -> None: ...

    def record(self, memory_id: str, version: int, op: str, at: str, client: str | None, changes: dict[str, Any]) -> None: ...

    def erase_history(self, memory_id: str) -> None: ...

    def queue(self, memory_ids: Sequence[str]) -> None: ...

    def thread_keys(self, row_ids: Sequence[int]) -> set[str]: ...

    def refresh_windows(self, row_ids: Sequence[int]) -> None: ...

    def refresh_threads(self, keys: set[str]) -> None: ...

    def entities_removed(self) -> None: ...

    def vectors_removed(self) -> None: ...


class RelationRow(NamedTuple):
    """A relation read from a memory's text, as ``memory_relations`` keeps it."""

    source: str
    source_norm: str
    type: str
    target: str
    target_norm: str
    ended: bool
