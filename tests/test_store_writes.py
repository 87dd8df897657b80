"""The write path on both engines (issue 28): one writer's decisions, two stores.

Each test runs on the data folder's SQLite cube (``CubeStore``) and on a cube of the PostgreSQL
store (``PostgresCubeStore``, ``postgres`` tier: a real PostgreSQL 18 with pgvector), through
the same calls: what an add, an update, an archive, a delete, a purge and a task's feedback do
must not depend on the engine. The tests at the end are the shared store's own: several
servers writing one cube at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import ENGINES

from memory.errors import Conflict, InvalidInput, NotFound
from memory.models import FeedbackEntry
from memory.store.cube_store import CubeStore
from memory.store.writer import NewMemory

DIM = 384
MODEL = "test-model"


@dataclass
class Cube:
    engine: str
    store: Any  # CubeStore | PostgresCubeStore: the same calls
    window: Callable[[str], str | None]  # a memory's context window as stored
    has_vector: Callable[[str], bool]


@contextmanager
def _sqlite(tmp_path: Path) -> Iterator[Cube]:
    store = CubeStore("writes", tmp_path / "memory.db")
    store.ensure_vector_table(MODEL, DIM)

    def window(memory_id: str) -> str | None:
        with store.write() as conn:
            row = conn.execute(
                "SELECT text FROM memory_context_fts WHERE rowid = (SELECT row_id FROM memories WHERE id = ?)", (memory_id,)
            ).fetchone()
        return row[0] if row else None

    def has_vector(memory_id: str) -> bool:
        with store.write() as conn:
            return (
                conn.execute(
                    "SELECT 1 FROM memory_vec WHERE rowid = (SELECT row_id FROM memories WHERE id = ?)", (memory_id,)
                ).fetchone()
                is not None
            )

    try:
        yield Cube("sqlite", store, window, has_vector)
    finally:
        store.close()


@contextmanager
def _postgres(url: str, name: str = "writes", follower: str = "graph@test") -> Iterator[Cube]:
    from memory.store.postgres import migrate
    from memory.store.postgres.connect import connect
    from memory.store.postgres.cube_store import PostgresCubeStore

    with connect(url) as conn:
        migrate(conn)
    store = PostgresCubeStore(url, name, follower=follower)

    def window(memory_id: str) -> str | None:
        with store.write() as conn:
            row = conn.execute(
                "SELECT x.text FROM memory_context x JOIN memories m ON m.row_id = x.row_id WHERE m.cube = %s AND m.id = %s",
                (store.cube_id, memory_id),
            ).fetchone()
        return str(row[0]) if row else None

    def has_vector(memory_id: str) -> bool:
        with store.write() as conn:
            row = conn.execute(
                "SELECT embedding IS NOT NULL FROM memories WHERE cube = %s AND id = %s", (store.cube_id, memory_id)
            ).fetchone()
        return bool(row and row[0])

    try:
        yield Cube("postgres", store, window, has_vector)
    finally:
        store.close()


@contextmanager
def engine_cube(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cube]:
    """The cube of the engine a test is parametrised with (``ENGINES``)."""
    if request.param == "sqlite":
        with _sqlite(tmp_path) as made:
            yield made
    else:
        with _postgres(request.getfixturevalue("postgres_database")) as made:
            yield made


@pytest.fixture(params=ENGINES)
def cube(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cube]:
    with engine_cube(request, tmp_path) as made:
        yield made


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def new(text: str, type_: str = "fact", **fields: Any) -> NewMemory:
    given: dict[str, Any] = {
        "tags": [],
        "entities": [],
        "relations": [],
        "occurred_at": None,
        "metadata": {},
        "importance": 0.5,
        "confidence": 1.0,
    }
    given.update(fields)
    return NewMemory(text=text, type=type_, **given)


def add_one(cube: Cube, item: NewMemory, client: str = "test") -> str:
    [outcome] = cube.store.add([item], client=client, model_id=MODEL)
    return outcome.id


def test_an_add_stores_every_field_a_first_version_and_a_change(cube: Cube) -> None:
    memory_id = add_one(
        cube,
        new(
            "Zoë's café is on Rue d'Alsace; '; DROP TABLE memories; --",
            tags=["place", "café"],
            entities=["Zoë", "Rue d'Alsace"],
            metadata={"source": "chat", "nested": {"n": 1}},
            occurred_at="2026-03-01T10:00:00Z",
            role="friend",
            subject="zoë's café",
            vector=_vector(1),
            extracted=[{"source": "Zoë", "type": "owns", "target": "café"}],
        ),
    )
    [memory] = cube.store.get_many([memory_id])
    assert memory.text.endswith("DROP TABLE memories; --")
    assert (memory.tags, memory.entities, memory.metadata) == (
        ["place", "café"],
        ["Zoë", "Rue d'Alsace"],
        {"source": "chat", "nested": {"n": 1}},
    )
    assert (memory.status, memory.version, memory.role, memory.subject, memory.client) == (
        "active",
        1,
        "friend",
        "zoë's café",
        "test",
    )
    assert memory.occurred_at == "2026-03-01T10:00:00Z" and memory.embedding_model == MODEL
    assert cube.has_vector(memory_id)
    [first] = cube.store.history(memory_id)
    assert first["op"] == "add" and first["changes"]["tags"] == {"old": None, "new": ["place", "café"]}
    counts = cube.store.counts()
    assert (counts["active"], counts["entities"]) == (1, 2)
    assert [c.memory_id for c in cube.store.changes.pending(10)] == [memory_id]


def test_an_exact_duplicate_returns_the_stored_memory_and_brings_an_archived_one_back(cube: Cube) -> None:
    memory_id = add_one(cube, new("Ana plays the cello."))
    [again] = cube.store.add([new("Ana plays the cello.")], client="test", model_id=MODEL)
    assert (again.id, again.created) == (memory_id, False)
    cube.store.set_status([memory_id], to="archived", allowed_from=("active",), op="archive", client="test")
    [back] = cube.store.add([new("Ana plays the cello.")], client="test", model_id=MODEL)
    assert (back.id, back.created) == (memory_id, False)
    [memory] = cube.store.get_many([memory_id])
    assert (memory.status, memory.version) == ("active", 3)
    assert [h["op"] for h in cube.store.history(memory_id)] == ["add", "archive", "restore"]
    assert cube.store.counts()["active"] == 1


def test_a_fact_with_the_same_subject_supersedes_and_a_restore_undoes_it(cube: Cube) -> None:
    older = add_one(cube, new("Sam lives in Porto.", subject="sam home"))
    [outcome] = cube.store.add([new("Sam lives in Lisbon.", subject="sam home")], client="test", model_id=MODEL)
    assert outcome.created and [s.id for s in outcome.superseded] == [older]
    assert "same subject 'sam home'" in outcome.superseded[0].reason
    old, newer = cube.store.get_many([older, outcome.id])
    assert (old.status, old.superseded_by, newer.supersedes) == ("archived", outcome.id, older)
    cube.store.set_status([older], to="active", allowed_from=("archived",), op="restore", client="test")
    old, newer = cube.store.get_many([older, outcome.id])
    assert (old.status, old.superseded_by, newer.supersedes) == ("active", None, None)
    assert cube.store.history(outcome.id)[-1]["op"] == "unlink"
    # A preference of another role is another subject: nothing is replaced.
    [other] = cube.store.add([new("Sam prefers tea.", "preference", subject="drink", role="guest")], client="t", model_id=MODEL)
    [same] = cube.store.add([new("Sam prefers coffee.", "preference", subject="drink", role="host")], client="t", model_id=MODEL)
    assert other.superseded == [] and same.superseded == []


def test_a_restatement_confirms_instead_of_adding(cube: Cube) -> None:
    memory_id = add_one(cube, new("Priya trains for a half marathon."))
    [outcome] = cube.store.add(
        [new("Priya is training for a half marathon.", restates=memory_id, occurred_at="2026-04-12T08:00:00Z")],
        client="test",
        model_id=MODEL,
    )
    assert (outcome.id, outcome.created, outcome.restated) == (memory_id, False, memory_id)
    [memory] = cube.store.get_many([memory_id])
    assert (memory.access_count, memory.version, memory.text) == (1, 2, "Priya trains for a half marathon.")
    said = cube.store.history(memory_id)[-1]["changes"]["restated"]["new"]
    assert said["text"] == "Priya is training for a half marathon." and said["occurred_at"].startswith("2026-04-12")


def test_an_update_is_a_new_version_with_what_changed(cube: Cube) -> None:
    memory_id = add_one(cube, new("Leo works at Acme.", entities=["Leo", "Acme"], vector=_vector(2)))
    other = add_one(cube, new("Mia works at Initech."))
    updated = cube.store.update(
        memory_id,
        {"text": "Leo works at Globex.", "entities": ["Leo", "Globex"]},
        vector=_vector(3),
        model_id=MODEL,
        client="editor",
    )
    assert (updated.text, updated.version, updated.entities) == ("Leo works at Globex.", 2, ["Leo", "Globex"])
    last = cube.store.history(memory_id)[-1]
    assert last["op"] == "update" and last["client"] == "editor"
    assert last["changes"]["text"] == {"old": "Leo works at Acme.", "new": "Leo works at Globex."}
    assert cube.store.counts()["entities"] == 2  # acme left with the old entities
    unchanged = cube.store.update(memory_id, {"text": "Leo works at Globex."}, vector=None, model_id=None, client="editor")
    assert unchanged.version == 2
    with pytest.raises(Conflict, match=other):
        cube.store.update(memory_id, {"text": "Mia works at Initech."}, vector=None, model_id=None, client="editor")
    assert cube.store.get_many([memory_id])[0].text == "Leo works at Globex."


def test_a_delete_is_a_tombstone_and_cannot_be_restored(cube: Cube) -> None:
    memory_id = add_one(cube, new("Old phone number is 555-0100.", entities=["Phone"], vector=_vector(4)))
    [deleted] = cube.store.set_status([memory_id], to="deleted", allowed_from=("active", "archived"), op="delete", client="t")
    assert deleted.status == "deleted" and not cube.has_vector(memory_id)
    assert cube.store.counts()["entities"] == 0
    with pytest.raises(Conflict, match="tombstone"):
        cube.store.set_status([memory_id], to="active", allowed_from=("archived",), op="restore", client="t")
    with pytest.raises(NotFound, match="deleted"):
        cube.store.get_many([memory_id], include_deleted=False)
    with pytest.raises(NotFound, match="was deleted"):
        cube.store.update(memory_id, {"text": "x"}, vector=None, model_id=None, client="t")
    # The text may be said again: a deleted memory holds no live text.
    assert add_one(cube, new("Old phone number is 555-0100.")) != memory_id


def test_a_purge_leaves_only_a_contentless_trace(cube: Cube) -> None:
    memory_id = add_one(cube, new("Leo's bank PIN is 9931.", vector=_vector(5)))
    cube.store.update(memory_id, {"text": "Leo's bank PIN is 9932."}, vector=None, model_id=None, client="t")
    cube.store.purge([memory_id], client="t")
    with pytest.raises(NotFound):
        cube.store.get_many([memory_id])
    history = cube.store.history(memory_id)
    assert [h["op"] for h in history] == ["add", "update", "purge"]
    assert all("993" not in str(h["changes"]) and "PIN" not in str(h["changes"]) for h in history)
    assert cube.store.counts()["active"] == 0
    with pytest.raises(NotFound):
        cube.store.purge([memory_id], client="t")


def test_feedback_belongs_to_tasks(cube: Cube) -> None:
    task = add_one(cube, new("Renew the passport.", "task", state="open"))
    fact = add_one(cube, new("The passport expires in May."))
    entry = FeedbackEntry(at="2026-05-01T09:00:00Z", tried="the online form", result="needs a photo")
    memory = cube.store.add_feedback(task, entry, client="t")
    assert memory.version == 2 and [(f.tried, f.result, f.client) for f in memory.feedback] == [
        ("the online form", "needs a photo", "t")
    ]
    assert cube.store.history(task)[-1]["op"] == "feedback"
    with pytest.raises(InvalidInput, match="belong to tasks"):
        cube.store.add_feedback(fact, entry, client="t")
    with pytest.raises(NotFound):
        cube.store.add_feedback("mem_01aaaaaaaaaaaaaaaaaaaaaaaa", entry, client="t")


def test_context_windows_follow_a_memory_that_moves_to_another_day(cube: Cube) -> None:
    day = "2026-02-0{}T1{}:00:00Z"
    first, second, third = (
        add_one(cube, new(f"turn {n} of the chat", "message", occurred_at=day.format(1, n))) for n in (1, 2, 3)
    )
    assert cube.window(second) == "turn 1 of the chat\nturn 2 of the chat\nturn 3 of the chat"
    cube.store.update(second, {"occurred_at": day.format(2, 2)}, vector=None, model_id=None, client="test")
    assert cube.window(first) == "turn 1 of the chat\nturn 3 of the chat"
    assert cube.window(third) == "turn 1 of the chat\nturn 3 of the chat"
    assert cube.window(second) == "turn 2 of the chat"
    cube.store.purge([third], client="test")
    assert cube.window(first) == "turn 1 of the chat"


def test_a_re_embedding_replaces_vectors_and_their_model(cube: Cube) -> None:
    memory_id = add_one(cube, new("Kim owns a red bike."))
    assert not cube.has_vector(memory_id)
    with cube.store.write() as conn:
        row_id = (
            conn.execute("SELECT row_id FROM memories WHERE id = ?", (memory_id,)).fetchone()[0]
            if cube.engine == "sqlite"
            else conn.execute(
                "SELECT row_id FROM memories WHERE cube = %s AND id = %s", (cube.store.cube_id, memory_id)
            ).fetchone()[0]
        )
    cube.store.store_vectors([(row_id, _vector(6))], "model-2")
    assert cube.has_vector(memory_id) and cube.store.get_many([memory_id])[0].embedding_model == "model-2"


# -- the shared store: several servers write one cube ---------------------------------------


def run_together(work: Callable[[int], None], writers: int) -> None:
    """Run ``work(0)`` ... ``work(writers - 1)`` on threads released at once; re-raise the first failure."""
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def run(n: int) -> None:
        try:
            start.wait(5)
            work(n)
        except BaseException as exc:  # raised below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a writer is still waiting after 60 s"
    if failures:
        raise failures[0]


@pytest.mark.postgres
def test_two_servers_saying_the_same_thing_at_once_store_it_once(postgres_database: str) -> None:
    with ExitStack() as stack:
        servers = [stack.enter_context(_postgres(postgres_database, follower=f"server-{n}")) for n in range(4)]
        outcomes: list[list[Any]] = [[] for _ in servers]

        def write(n: int) -> None:
            for i in range(25):
                outcomes[n] += servers[n].store.add(
                    [new(f"shared note {i}"), new(f"server {n} note {i}")], client=f"s{n}", model_id=None
                )

        run_together(write, len(servers))
        created = [o.id for per in outcomes for o in per if o.created]
        assert len(created) == 25 + 4 * 25  # each shared note once, every server's own note
        shared = {o.id for per in outcomes for o in per if not o.created}
        assert len(shared) <= 25 and shared <= set(created)
        assert servers[0].store.counts()["active"] == 125
        # Every acknowledged write is in the log, in one order every follower reads alike.
        logged = [c.memory_id for c in servers[1].store.changes.pending(1000)]
        assert set(logged) == set(created) and logged == [c.memory_id for c in servers[2].store.changes.pending(1000)]


@pytest.mark.postgres
def test_a_supersession_sees_what_another_server_committed(postgres_database: str) -> None:
    with _postgres(postgres_database, follower="laptop") as laptop, _postgres(postgres_database, follower="desktop") as desktop:
        older = add_one(laptop, new("Sam lives in Porto.", subject="sam home"))
        [outcome] = desktop.store.add([new("Sam lives in Lisbon.", subject="sam home")], client="desktop", model_id=None)
        assert [s.id for s in outcome.superseded] == [older]
        assert laptop.store.get_many([older])[0].superseded_by == outcome.id


@pytest.mark.postgres
def test_cubes_of_one_store_do_not_mix(postgres_database: str) -> None:
    with _postgres(postgres_database, name="alice") as alice, _postgres(postgres_database, name="bob") as bob:
        mine = add_one(alice, new("The same words in two cubes."))
        theirs = add_one(bob, new("The same words in two cubes."))
        assert mine != theirs
        with pytest.raises(NotFound):
            bob.store.get_many([mine])
        alice.store.purge([mine], client="t")
        assert bob.store.get_many([theirs])[0].status == "active"
        assert (alice.store.counts()["active"], bob.store.counts()["active"]) == (0, 1)


@pytest.mark.postgres
def test_updates_of_one_memory_from_several_servers_each_make_a_version(postgres_database: str) -> None:
    with ExitStack() as stack:
        servers = [stack.enter_context(_postgres(postgres_database, follower=f"server-{n}")) for n in range(3)]
        memory_id = add_one(servers[0], new("counter 0"))

        def write(n: int) -> None:
            for i in range(15):
                servers[n].store.update(memory_id, {"tags": [f"s{n}-{i}"]}, vector=None, model_id=None, client=f"s{n}")

        run_together(write, len(servers))
        history = servers[1].store.history(memory_id)
        assert [h["version"] for h in history] == list(range(1, 47))  # no version written twice, none lost
        assert servers[2].store.get_many([memory_id])[0].version == 46


@pytest.mark.postgres
def test_a_word_counted_before_another_server_wrote_does_not_break_the_ranking(postgres_database: str) -> None:
    """The store's BM25 keeps the document count and each word's count for a while; a count of
    memories taken before another server added some must not make a word's weight impossible."""
    from memory.models import SearchQuery
    from memory.retrieval.search import keyword_terms
    from memory.store.postgres.search_view import PostgresSearchView

    with _postgres(postgres_database) as laptop, _postgres(postgres_database, follower="desktop") as desktop:
        q = SearchQuery(query="kayak trip")
        with laptop.store.write() as conn:
            assert PostgresSearchView(conn, laptop.store.cube_id).keyword_candidates(q, keyword_terms(q.query), 10) == []
        memory_id = add_one(desktop, new("The kayak trip is on Sunday."))
        with laptop.store.write() as conn:
            found = PostgresSearchView(conn, laptop.store.cube_id).keyword_candidates(q, keyword_terms(q.query), 10)
        assert [row_id for row_id, _, _ in found] == laptop.store.row_ids_of([memory_id])
