"""What the two store engines share: the contract above which no code knows its engine.

The embedded engine (SQLite + sqlite-vec + FTS5, ``memory.store.cube_store``) and the
PostgreSQL engine (``memory.store.postgres``) each implement these protocols; tests that
state a behaviour run it on both from one parametrised fixture (tests/test_store_contract.py).
The contract grows one table object at a time (issue 28): the change log first, since every
other server, cache and graph follows it.

Rows cross the boundary as named tuples, never as bare positional tuples.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol, TypeVar

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
