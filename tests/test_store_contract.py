"""The store's contract on both engines (issue 28): one behaviour, one test, two engines.

``engine`` gives each test the SQLite engine (a real cube file with sqlite-vec) and the
PostgreSQL engine (a real PostgreSQL 18 with pgvector, ``postgres`` tier: `.ci/run` runs it,
the quick tier runs the SQLite half). So far the contract holds the change log
(``memory.store.contract.ChangeFeed``); each table object that joins it brings its tests here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import ENGINES

from memory.store.contract import Change, ChangeFeed
from memory.store.cube_store import CubeStore


@dataclass
class Engine:
    name: str
    changes: ChangeFeed[Any]
    write: Callable[[], AbstractContextManager[Any]]


@contextmanager
def _sqlite(tmp_path: Path) -> Iterator[Engine]:
    store = CubeStore("contract", tmp_path / "memory.db")
    try:
        yield Engine("sqlite", store.changes, store.write)
    finally:
        store.close()


@contextmanager
def _postgres(url: str, follower: str = "graph@test") -> Iterator[Engine]:
    import psycopg

    from memory.store.postgres import migrate
    from memory.store.postgres.change_log import PostgresChangeLog

    with psycopg.connect(url, autocommit=True) as reads, psycopg.connect(url, autocommit=True) as writes:
        migrate(reads)
        row = reads.execute(
            "INSERT INTO cubes (name) VALUES ('contract') ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id"
        ).fetchone()
        assert row is not None

        @contextmanager
        def write() -> Iterator[Any]:
            with writes.transaction():
                yield writes

        yield Engine("postgres", PostgresChangeLog(reads, int(row[0]), follower), write)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        with _sqlite(tmp_path) as made:
            yield made
    else:
        with _postgres(request.getfixturevalue("postgres_database")) as made:
            yield made


class Abandoned(Exception):
    pass


def test_a_committed_write_is_in_the_log_in_order(engine: Engine) -> None:
    with engine.write() as conn:
        engine.changes.queue(conn, ["m-1", "m-2"])
    with engine.write() as conn:
        engine.changes.queue(conn, ["m-3"])
    pending = engine.changes.pending(10)
    assert [c.memory_id for c in pending] == ["m-1", "m-2", "m-3"]
    assert all(isinstance(c, Change) for c in pending)
    assert [c.seq for c in pending] == sorted(c.seq for c in pending)
    assert engine.changes.high() == pending[-1].seq
    assert engine.changes.count() == 3


def test_a_write_rolled_back_leaves_no_change(engine: Engine) -> None:
    with pytest.raises(Abandoned), engine.write() as conn:
        engine.changes.queue(conn, ["m-lost"])
        raise Abandoned
    with engine.write() as conn:
        engine.changes.queue(conn, ["m-kept"])
    assert [c.memory_id for c in engine.changes.pending(10)] == ["m-kept"]


def test_done_changes_are_not_pending_and_the_rest_keep_their_order(engine: Engine) -> None:
    with engine.write() as conn:
        engine.changes.queue(conn, [f"m-{i}" for i in range(5)])
    first = engine.changes.pending(2)
    engine.changes.done(first[-1].seq)
    rest = engine.changes.pending(10)
    assert [c.memory_id for c in rest] == ["m-2", "m-3", "m-4"]
    assert engine.changes.count() == 3
    engine.changes.done(rest[-1].seq, rebuilt=True)
    assert engine.changes.pending(10) == [] and engine.changes.count() == 0


def test_hostile_memory_ids_round_trip(engine: Engine) -> None:
    hostile = ["'; DROP TABLE memories; --", "%s %(x)s {}", "Zoë 🙂 \u202e"]
    with engine.write() as conn:
        engine.changes.queue(conn, hostile)
    assert [c.memory_id for c in engine.changes.pending(10)] == hostile


# -- what only the shared engine has: many followers, many writers, notifications ----------------

pg = pytest.mark.postgres


@pg
def test_each_follower_keeps_its_own_place(postgres_database: str) -> None:
    with _postgres(postgres_database, "graph@laptop") as laptop, _postgres(postgres_database, "graph@desktop") as desktop:
        with laptop.write() as conn:
            laptop.changes.queue(conn, ["m-1", "m-2"])
        laptop.changes.done(laptop.changes.pending(10)[-1].seq)
        assert laptop.changes.pending(10) == []
        assert [c.memory_id for c in desktop.changes.pending(10)] == ["m-1", "m-2"]  # another server's graph


@pg
def test_a_lower_number_never_commits_after_a_follower_read_past_it(postgres_database: str) -> None:
    """Two writers of one cube: the second waits for the first's commit, so numbers commit in order."""
    with _postgres(postgres_database, "first") as first, _postgres(postgres_database, "second") as second:
        first_holds = threading.Event()
        release = threading.Event()

        def slow_writer() -> None:
            with first.write() as conn:
                first.changes.queue(conn, ["m-slow"])
                first_holds.set()
                release.wait(5)

        thread = threading.Thread(target=slow_writer)
        thread.start()
        assert first_holds.wait(5)
        done = threading.Event()

        def fast_writer() -> None:
            with second.write() as conn:
                second.changes.queue(conn, ["m-fast"])
            done.set()

        other = threading.Thread(target=fast_writer)
        other.start()
        time.sleep(0.3)
        assert not done.is_set()  # waits for the first writer's transaction
        assert second.changes.pending(10) == []  # nothing is visible yet, so nothing can be skipped
        release.set()
        thread.join(5)
        other.join(5)
        assert [c.memory_id for c in second.changes.pending(10)] == ["m-slow", "m-fast"]


@pg
def test_a_listener_hears_a_change_committed_by_another_server(postgres_database: str) -> None:
    from memory.store.postgres.change_log import ChangeListener

    listener = ChangeListener(postgres_database)
    try:
        with _postgres(postgres_database) as other:
            assert listener.wait(0.2) == {}
            started = time.perf_counter()
            with other.write() as conn:
                other.changes.queue(conn, ["m-1"])
            heard = listener.wait(5)
            assert time.perf_counter() - started < 1.0
            assert heard == {"contract": other.changes.high()}
    finally:
        listener.close()


@pg
def test_a_listener_hears_that_the_access_rules_changed(postgres_database: str) -> None:
    import psycopg

    from memory.access_rules import AccessConfig
    from memory.store.postgres.access import save_access
    from memory.store.postgres.change_log import ChangeListener

    with _postgres(postgres_database) as other:  # migrates the database
        listener = ChangeListener(postgres_database)
        try:
            with other.write() as conn:
                other.changes.queue(conn, ["m-1"])
            assert listener.wait(5) == {"contract": other.changes.high()} and not listener.rules_changed()
            with psycopg.connect(postgres_database, autocommit=True) as admin:
                save_access(admin, AccessConfig(default="read"))
            assert listener.wait(5) == {}  # no cube changed...
            assert listener.rules_changed() and not listener.rules_changed()  # ...the rules did, once
        finally:
            listener.close()
