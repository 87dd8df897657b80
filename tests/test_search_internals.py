"""The parts that make a search fast, held to the answers of the slow, obvious way.

Search overlaps the query's embedding with SQLite (``memory.parallel``), ranks keywords on
the index alone before checking status and filters, keeps vectors in a RAM mirror that
grows in place, and splits the vector scan over two threads. Each shortcut is checked
here against what it replaces.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import raw_db

import memory.fork_join as parallel
from memory import MemoryHome, SearchQuery
from memory.doctor import check_cube
from memory.retrieval.search import keyword_candidates
from memory.store.connection import connect
from memory.store.vector_mirror import SPLIT_ROWS, _times

WORDS = ["river", "lantern", "orchard", "violin", "harbour", "meadow", "glacier", "compass", "tulip", "falcon"]


@pytest.fixture
def cube(home):
    return home.cube("internals", create=True)


def test_the_mirror_grown_one_add_at_a_time_agrees_with_sqlite_vec(cube, shared_embedder):
    ids = []
    for i, word in enumerate(WORDS):
        ids += [o.id for o in cube.add([{"text": f"note {i} about the {word} and the {WORDS[(i + 3) % 10]}"}])]
        cube.search(SearchQuery(query=word, limit=3))  # the mirror catches up after every single add
    cube.update(ids[2], {"text": "a new text about a violin lesson"})
    cube.delete([ids[5]])
    cube.archive([ids[7]])
    cube.add([{"text": f"one more about the {w}"} for w in WORDS[:3]])  # a batch after the delete
    for query in ("violin", "a cold glacier", "flowers in the meadow"):
        vector = shared_embedder.embed_one(query)
        cube.store.sync_mirror(cube.mirror)
        mirror = cube.mirror.search(vector, 6)
        sqlite = cube.store.nearest(vector, 6)
        assert [r for r, _ in mirror] == [r for r, _ in sqlite], query
        cosines = cube.mirror.cosines(vector)
        assert set(cosines.row_ids.tolist()) == {r for r, _ in cube.mirror.search(vector, 100)}
        assert cosines.of([r for r, _ in mirror]) == pytest.approx(dict(mirror), abs=1e-5)
    assert len(cube.mirror) == len(WORDS) - 1 + 3


def test_the_vector_scan_split_over_two_threads_gives_the_one_thread_answer():
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((SPLIT_ROWS * 2 + 7, 384)).astype(np.float32)
    vector = rng.standard_normal(384).astype(np.float32)
    assert np.allclose(_times(matrix, vector), matrix @ vector, atol=1e-4)
    small = matrix[:100]
    assert np.allclose(_times(small, vector), small @ vector, atol=1e-4)


def test_a_fork_join_job_that_forks_again_runs_inline_instead_of_deadlocking():
    def outer(i: int) -> int:
        return parallel.soon(lambda: i * 10).result(timeout=10) + 1

    # More jobs than workers, each waiting on a job of its own: without running nested jobs
    # inline, every worker would wait for a job queued behind it.
    jobs = [parallel.soon(lambda i=i: outer(i)) for i in range(16)]
    assert [job.result(timeout=30) for job in jobs] == [i * 10 + 1 for i in range(16)]
    failing = parallel.soon(lambda: parallel.soon(lambda: 1 / 0).result())
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=10)


@pytest.mark.slow  # embeds a corpus twice (23 s loaded); .ci/run runs it
def test_a_batch_embedded_in_parallel_chunks_equals_texts_embedded_one_by_one(shared_embedder):
    texts = [f"memory number {i}: the {WORDS[i % 10]} near the {WORDS[(i * 7) % 10]}" * (1 + i % 3) for i in range(70)]
    together = shared_embedder.embed(texts)
    alone = np.stack([shared_embedder.embed_one(t) for t in texts])
    assert together.shape == (70, shared_embedder.dim)
    assert np.allclose(together, alone, atol=1e-5)


def _kiwi_cube(cube):
    """205 short notes that say 'kiwi' and 3 longer ones that BM25 ranks below all of them."""
    junk = cube.add([{"text": f"kiwi {i}", "type": "note"} for i in range(205)])
    fruit = cube.add(
        [{"text": f"the kiwi is a fruit with brown fuzzy skin and green flesh, note {i}", "type": "fact"} for i in range(3)]
    )
    return [o.id for o in junk], [o.id for o in fruit]


def test_a_filtered_keyword_search_reaches_past_the_unfiltered_best(cube):
    junk, fruit = _kiwi_cube(cube)
    with cube.store.search_view() as view:
        # What the fast path reads for a 5-hit search: the index's best 200, none of them fruit.
        best = keyword_candidates(view, SearchQuery(query="kiwi", limit=5), 200)
    with raw_db(cube) as conn:
        fruit_rows = {r[0] for r in conn.execute("SELECT row_id FROM memories WHERE type = 'fact'")}
    assert len(best) == 200 and not fruit_rows & {row_id for row_id, _, _ in best}
    hits = cube.search(SearchQuery(query="kiwi", limit=5, types=["fact"], signals=("keyword",))).hits
    assert sorted(h.id for h in hits) == sorted(fruit)


def test_archived_memories_crowding_the_index_do_not_hide_active_ones(cube):
    junk, fruit = _kiwi_cube(cube)
    cube.archive(junk)
    hits = cube.search(SearchQuery(query="kiwi", limit=5, signals=("keyword",))).hits
    assert sorted(h.id for h in hits) == sorted(fruit)
    every = cube.search(SearchQuery(query="kiwi", limit=100, signals=("keyword",), include_archived=True)).hits
    assert len(every) == 100 and {h.status for h in every} == {"archived"}  # the short notes rank first


def test_migration_5_stops_indexing_a_memory_without_a_session_as_its_own_window(tmp_path, shared_embedder):
    home = MemoryHome(tmp_path / "home", embedder=shared_embedder)
    cube = home.cube("old", create=True)
    [note] = [o.id for o in cube.add([{"text": "The spare key hangs behind the garden shed"}])]
    db = cube.folder / "memory.db"
    home.close()
    conn = connect(db)  # as a version 4 cube left it: the note indexed as its own window
    conn.execute("INSERT INTO memory_context_fts(rowid, text) SELECT row_id, text FROM memories")
    conn.execute("PRAGMA user_version = 4")
    conn.close()

    home = MemoryHome(tmp_path / "home", embedder=shared_embedder)
    cube = home.cube("old")
    with raw_db(cube) as conn:
        assert conn.execute("SELECT count(*) FROM memory_context_fts").fetchone()[0] == 0
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 5  # and on to the latest
    [hit] = cube.search(SearchQuery(query="garden shed key", limit=1)).hits
    assert hit.id == note and {"keyword", "context"} <= set(hit.signals)
    home.close()


def test_the_doctor_repairs_a_drifted_keyword_index_and_context_windows(cube):
    turns = [
        o.id
        for o in cube.add(
            [
                {"text": t, "session_id": "chat", "occurred_at": "2024-03-01"}
                for t in ("Shall we try the new climbing gym?", "Yes, Saturday morning works.", "Bring chalk.")
            ]
        )
    ]
    [note] = [o.id for o in cube.add([{"text": "The boiler service is booked for April"}])]
    with raw_db(cube) as conn:
        rows = dict(conn.execute("SELECT id, row_id FROM memories"))
        conn.execute("DELETE FROM memory_fts WHERE rowid = ?", (rows[note],))
        conn.execute("INSERT INTO memory_fts(rowid, text, tags, entities) VALUES (99999, 'stray', '', '')")
        conn.execute("DELETE FROM memory_context_fts WHERE rowid = ?", (rows[turns[1]],))
        conn.execute("INSERT INTO memory_context_fts(rowid, text) VALUES (?, 'a window for a note')", (rows[note],))
        conn.execute("UPDATE memory_status_counts SET n = n + 5 WHERE status = 'active'")
        conn.execute("INSERT INTO memory_status_counts(status, n) VALUES ('archived', 2)")

    report = check_cube(cube)
    assert "FTS index: 1 live memories missing, 1 stray rows" in report.findings
    assert "context windows: 1 threaded memories missing, 1 stray rows" in report.findings
    assert "status counts: active kept 9, counted 4, archived kept 2, counted 0" in report.findings
    assert {"rebuilt the FTS index", "rebuilt the context windows", "recounted the memories of each status"} <= set(
        report.repairs
    )
    assert (cube.stats().active, cube.stats().archived) == (4, 0)
    again = check_cube(cube)
    assert again.healthy and again.findings == []
    [hit] = cube.search(SearchQuery(query="boiler service", limit=1, signals=("keyword",))).hits
    assert hit.id == note
    # "Saturday" is said by the middle turn; "climbing" only by its neighbour: found through its window again.
    hits = cube.search(SearchQuery(query="climbing on Saturday", limit=3, signals=("context",))).hits
    assert turns[1] in {h.id for h in hits}
