"""Everything a cube holds survives closing it and opening the data directory again."""

from __future__ import annotations

import numpy as np
import pytest
from support import CLIENT_NAME, add, ok, search

from memory import MemoryHome


def _without_access(memory) -> dict:
    return memory.model_dump(exclude={"access_count", "last_access"})


def _fill(home: MemoryHome) -> dict[str, str]:
    """A cube that has seen every kind of change, plus a second cube."""
    cube = home.cube()
    ids = [
        o.id
        for o in cube.add(
            [
                {
                    "text": "Xavier works at Initech as a data engineer",
                    "type": "fact",
                    "tags": ["work"],
                    "relations": [{"subject": "Xavier", "predicate": "works_at", "object": "Initech"}],
                    "metadata": {"team": "platform"},
                },
                {"text": "Xavier ran the Berlin marathon", "type": "event", "occurred_at": "2022-09-25"},
                {"text": "Xavier's old address was Elm Street 5"},
                {
                    "text": "Initech is based in Austin",
                    "relations": [{"subject": "Initech", "predicate": "based_in", "object": "Austin"}],
                },
            ],
            client="first-run",
        )
    ]
    cube.update(
        ids[0], {"text": "Xavier works at Initech as a staff data engineer", "tags": ["work", "career"]}, client="first-run"
    )
    cube.archive([ids[1]], client="first-run")
    cube.delete([ids[2]], client="first-run")
    home.cube("notes", create=True).add([{"text": "Buy stamps"}], client="first-run")
    cube.sync_graph()
    return {"current": ids[0], "archived": ids[1], "deleted": ids[2], "initech": ids[3]}


def test_memories_versions_vectors_and_the_graph_survive_a_restart(tmp_path, shared_embedder):
    first = MemoryHome(tmp_path, embedder=shared_embedder)
    ids = _fill(first)
    cube = first.cube()
    every_id = list(ids.values())
    memories = [_without_access(m) for m in cube.get(every_id)]
    histories = {i: cube.history(i) for i in every_id}
    vectors = {i: cube.vector_of(i) for i in every_id}
    graph = cube.graph("Initech", depth=2)
    stats = cube.stats()
    first.close()

    again = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        assert again.cube_names() == ["default", "notes"]
        cube = again.cube()
        assert [_without_access(m) for m in cube.get(every_id)] == memories
        assert {i: cube.history(i) for i in every_id} == histories
        assert [e.op for e in histories[ids["current"]]] == ["add", "update"]
        for memory_id, vector in vectors.items():
            stored = cube.vector_of(memory_id)
            if vector is None:  # the tombstone has no vector, before or after
                assert stored is None
            else:
                assert np.array_equal(stored, vector)
        assert cube.stats() == stats
        assert stats.graph_pending == 0
        # The graph on disk already holds the active memories: no rebuild needed.
        assert cube.graph_store.memory_ids() == {ids["current"], ids["initech"]}
        assert cube.graph("Initech", depth=2) == graph

        # Search works at once, by meaning and by words, and still honours statuses.
        hits = cube.search({"query": "who is a staff engineer at a software company"}).hits
        assert hits[0].id == ids["current"] and "vector" in hits[0].signals
        assert ids["archived"] not in [h.id for h in cube.search({"query": "marathon"}).hits]
        assert ids["archived"] in [h.id for h in cube.search({"query": "marathon", "include_archived": True}).hits]
        assert ids["deleted"] not in [h.id for h in cube.search({"query": "Elm Street address", "include_archived": True}).hits]
        assert [h.text for h in again.cube("notes").search({"query": "stamps"}).hits] == ["Buy stamps"]
    finally:
        again.close()


def test_reads_are_counted_and_the_count_is_kept_on_close(tmp_path, shared_embedder):
    first = MemoryHome(tmp_path, embedder=shared_embedder)
    [outcome] = first.cube().add([{"text": "Yara's cat is called Miso"}])
    first.cube().get([outcome.id])
    first.cube().search({"query": "Yara's cat"})
    first.close()

    again = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        memory = again.cube().get([outcome.id])[0]
        assert memory.access_count == 2
        assert memory.last_access is not None
    finally:
        again.close()


def test_pending_graph_work_is_finished_after_a_restart(tmp_path, shared_embedder):
    """Graph changes are queued in SQLite with the write; a process that stops before applying them loses nothing."""
    first = MemoryHome(tmp_path, embedder=shared_embedder)
    [outcome] = first.cube().add(
        [{"text": "Zed mentors Quinn", "relations": [{"subject": "Zed", "predicate": "mentors", "object": "Quinn"}]}]
    )
    assert first.cube().stats().graph_pending == 1
    first.close()

    again = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        view = again.cube().graph("Quinn")
        assert [(r.subject, r.predicate, r.object) for r in view.relations] == [("Zed", "mentors", "Quinn")]
        assert [m.id for m in view.memories] == [outcome.id]
        assert again.cube().stats().graph_pending == 0
    finally:
        again.close()


def test_a_purged_memory_leaves_no_copy_of_its_text_in_any_file(tmp_path, shared_embedder):
    """Purge means erased: the words must not be recoverable from the cube's files (SQLite, FTS, graph)."""
    secret = "zanzibarquokka"
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    cube = home.cube()
    cube.add([{"text": "Alice's shoe size is 38"}])
    [outcome] = cube.add([{"text": f"The vault passphrase is {secret}", "entities": ["Vault"]}])
    cube.sync_graph()
    cube.delete([outcome.id], purge=True)
    cube.sync_graph()
    home.close()

    leaks = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaks == []


@pytest.mark.anyio
async def test_a_server_restart_keeps_what_the_first_session_saved(tmp_path, shared_embedder, connect):
    first = MemoryHome(tmp_path, embedder=shared_embedder)
    async with connect(first) as client:
        memory_id = await add(
            client,
            "Abel's train to Vienna leaves from platform 9",
            relations=[{"subject": "Abel", "predicate": "travels_to", "object": "Vienna"}],
        )
        await ok(client, "memory_update", id=memory_id, text="Abel's train to Vienna leaves from platform 7")
    first.close()

    again = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        async with connect(again) as client:
            hits = await search(client, "which platform does the Vienna train leave from")
            assert hits[0]["id"] == memory_id
            assert hits[0]["text"] == "Abel's train to Vienna leaves from platform 7"
            history = (await ok(client, "memory_history", id=memory_id))["versions"]
            assert [(v["op"], v["client"]) for v in history] == [("add", CLIENT_NAME), ("update", CLIENT_NAME)]
            abel = await ok(client, "memory_graph", entity="Abel")
            assert [(r["predicate"], r["object"]) for r in abel["relations"]] == [("travels_to", "Vienna")]
    finally:
        again.close()
