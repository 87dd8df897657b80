"""Bulk import (issue 19): a large archive is written in chunks and keeps every invariant.

An archive is checked whole before anything is written, then written one chunk per
transaction, each record whole: row, versions, FTS, vector (the archive's, or embedded
here), entities, graph outbox entry, context windows. A killed import leaves whole
records only; the same import run again finishes it, with each record in once.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from attack_support import memory_id
from support import raw_db

from memory import InvalidInput, MemoryHome
from memory.io import archive as archive_module
from memory.io.archive import FORMAT, import_archive
from memory.io.archive_vectors import VectorSpool
from memory.io.progress import IMPORTING
from memory.models import SearchQuery
from memory.retrieval.search import embedding_text
from memory.store.connection import connect
from server.cli_progress import ProgressBar, clock_text

ROOT = Path(__file__).resolve().parents[1]

TOPICS = [
    ("Alice", "Alice keeps bees on the roof of her flat and sells the honey at the market."),
    ("Bruno", "Bruno is restoring an old wooden sailing boat in his garage."),
    ("Chen", "Chen practises the violin every evening before dinner."),
    ("Dana", "Dana trains for a marathon by running along the river at dawn."),
    ("Emil", "Emil bakes sourdough bread with a starter his grandmother gave him."),
    ("Farah", "Farah repairs vintage mechanical watches as a hobby."),
]
QUERIES = {
    "Alice": "beekeeping and honey",
    "Bruno": "boat restoration woodwork",
    "Chen": "playing a string instrument",
    "Dana": "long distance running training",
    "Emil": "baking bread at home",
    "Farah": "fixing old clocks and watches",
}


def _encode(vector: np.ndarray) -> str:
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")


def write_archive(
    path: Path, records: list[dict[str, Any]], vectors: dict[str, np.ndarray], *, model_id: str | None, cube: str = "bulk"
) -> Path:
    """An archive as ``memcube export --with-vectors`` writes one."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "manifest.json",
            json.dumps(
                {
                    "format": FORMAT,
                    "format_version": 1,
                    "cube": cube,
                    "embedding": {"model_id": model_id, "dim": 384, "vectors_included": bool(vectors)},
                    "counts": {"memories": len(records)},
                }
            ),
        )
        archive.writestr("memories.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        if vectors:
            archive.writestr(
                "vectors.jsonl", "".join(json.dumps({"id": k, "vector": _encode(v)}) + "\n" for k, v in vectors.items())
            )
    return path


def topic_records(n: int) -> list[dict[str, Any]]:
    """``n`` records over the six topics: some in conversations, some archived or deleted, two versions each."""
    records = []
    for i in range(n):
        entity, sentence = TOPICS[i % len(TOPICS)]
        text = f"{sentence} Entry {i} carries the code word tok{i}x."
        at = f"2026-0{1 + i % 9}-1{i % 10}T08:00:00Z"
        record: dict[str, Any] = {
            "id": memory_id(10_000 + i),
            "text": text,
            "entities": [entity],
            "tags": [entity.lower()],
            "status": "archived" if i % 50 == 7 else "deleted" if i % 50 == 13 else "active",
            "created_at": at,
            "updated_at": at,
            "version": 2,
            "versions": [
                {"version": 1, "op": "add", "at": at, "client": "tests", "changes": {"text": {"old": None, "new": "draft"}}},
                {"version": 2, "op": "update", "at": at, "client": "tests", "changes": {"text": {"old": "draft", "new": text}}},
            ],
        }
        if i < n // 3:
            record["session_id"] = f"chat-{i // 25}"  # a conversation: context windows across chunks
        if i % 100 == 0:  # a task with its log
            record["type"], record["state"] = "task", "todo"
            record["feedback"] = [{"at": at, "tried": "asked twice", "result": "it worked"}]
        records.append(record)
    return records


def live_ids(records: list[dict[str, Any]]) -> set[str]:
    return {r["id"] for r in records if r.get("status", "active") != "deleted"}


def versions_by_memory(cube) -> dict[str, list[str]]:
    ops: dict[str, list[str]] = {}
    for memory, entry in cube.store.all_versions():
        ops.setdefault(memory, []).append(entry["op"])
    return ops


def keyword_rows(cube, word: str, *, include_archived: bool = False) -> list[int]:
    """The rows the FTS index matches for ``word`` (the keyword signal of a search, alone)."""
    with cube.store.search_view() as view:
        query = SearchQuery(query=word, include_archived=include_archived)
        return [row for row, _, _ in view.keyword_candidates(query, [word], 5)]


def assert_consistent(cube) -> None:
    """Every memory row has its derived rows: FTS, context window, vector from this model; SQLite is sound."""
    store = cube.store
    assert store.integrity() == "ok"
    for table in ("memory_fts", "memory_context_fts", "memory_vec"):
        assert store.drift(table) == (0, 0), table
    assert store.stale_embeddings(cube.embedder.model_id, 10) == []


@pytest.mark.slow
def test_a_bulk_import_of_thousands_keeps_versions_fts_vectors_entities_outbox_and_threads(home, tmp_path, shared_embedder):
    n = 3_000  # more than one chunk
    records = topic_records(n)
    topic_vectors = dict(zip([e for e, _ in TOPICS], shared_embedder.embed([s for _, s in TOPICS]), strict=True))
    without_vector = {r["id"] for i, r in enumerate(records) if i % 300 == 5 and r["status"] != "deleted"}
    vectors = {
        r["id"]: topic_vectors[r["entities"][0]] for r in records if r["status"] != "deleted" and r["id"] not in without_vector
    }
    # The same id again (a second chunk), and the same text under another id: each skipped, once.
    records.append({**records[10], "text": "Another text under a taken id"})
    records.append({**records[20], "id": memory_id(99_999)})
    path = write_archive(tmp_path / "bulk.memcube", records, vectors, model_id=shared_embedder.model_id)

    seen: list[tuple[str, int, int | None]] = []
    report = import_archive(home, path, progress=lambda *step: seen.append(step), graph=False)

    live = live_ids(records[:n])
    assert (report.total, report.imported, report.skipped_existing, report.skipped_duplicate) == (n + 2, n, 1, 1)
    assert (report.vectors_reused, report.reembedded) == (len(live) - len(without_vector), len(without_vector))
    assert report.skipped_ids == [records[10]["id"], memory_id(99_999)]
    imported = [step for step in seen if step[0] == IMPORTING]
    assert imported[0] == (IMPORTING, 0, n + 2) and imported[-1] == (IMPORTING, n + 2, n + 2) and len(imported) > 2

    cube = home.cube("bulk")
    counts = cube.store.counts()
    deleted = n - len(live)
    archived = sum(1 for r in records[:n] if r["status"] == "archived")
    assert (counts["active"], counts["archived"], counts["deleted"]) == (len(live) - archived, archived, deleted)
    assert_consistent(cube)

    # Vectors: the archive's, bit for bit, where it had one; this model's embedding of the text where not.
    first = records[0]
    assert np.array_equal(cube.vector_of(first["id"]), topic_vectors["Alice"])
    embedded_id = sorted(without_vector)[0]
    text = next(r["text"] for r in records if r["id"] == embedded_id)
    assert float(cube.vector_of(embedded_id) @ shared_embedder.embed_one(embedding_text(text))) > 0.999

    # Search by meaning, and by a word only one memory has.
    for entity, query in QUERIES.items():
        hits = cube.search({"query": query, "limit": 10}).hits
        assert len(hits) == 10 and all(h.text.startswith(dict(TOPICS)[entity]) for h in hits), query
    assert keyword_rows(cube, "tok1234x") == cube.store.row_ids_of([records[1234]["id"]])
    assert keyword_rows(cube, "tok1207x", include_archived=True) == cube.store.row_ids_of([records[1207]["id"]])
    assert (records[1207]["status"], records[1213]["status"]) == ("archived", "deleted")
    assert keyword_rows(cube, "tok1213x", include_archived=True) == []  # a deleted memory has no FTS row

    # History: the archived versions, then one import version per memory; the feedback log.
    ops = versions_by_memory(cube)
    assert set(ops) == {r["id"] for r in records[:n]}
    assert all(o == ["add", "update", "import"] for o in ops.values())
    assert [f.tried for f in cube.get([records[100]["id"]])[0].feedback] == ["asked twice"]
    # Entities of live memories, one graph outbox entry per imported memory (graph left to the server).
    assert len(cube.store.entity_mentions()) == len(live)
    assert sorted(memory for _, memory in cube.store.outbox_batch(10 * n)) == sorted(r["id"] for r in records[:n])
    assert cube.store.unfinished_import() is None

    again = import_archive(home, path, graph=False)
    assert (again.imported, again.skipped_existing, again.skipped_duplicate, again.resumed) == (0, n + 1, 1, None)
    assert len(again.skipped_ids) == archive_module.MAX_LISTED_IDS


def test_a_bad_record_after_the_first_chunk_refuses_the_whole_archive(home, tmp_path, shared_embedder, monkeypatch):
    monkeypatch.setattr(archive_module, "CHUNK", 3)
    records = topic_records(10)
    records[7]["importance"] = "very"  # line 8, in the third chunk
    path = write_archive(tmp_path / "bad.memcube", records, {}, model_id=None)
    with pytest.raises(InvalidInput, match="memories.jsonl line 8 cannot be stored: importance"):
        import_archive(home, path)
    assert home.cube_names() == []  # not even the cube was made

    kept = home.cube("bulk", create=True).add([{"text": "Greta waters the tomatoes every morning"}])[0].id
    with pytest.raises(InvalidInput, match="line 8"):
        import_archive(home, path)
    cube = home.cube("bulk")
    assert [m.id for m in cube.store.iter_all()] == [kept]
    assert cube.store.unfinished_import() is None


def test_an_interrupted_import_keeps_whole_chunks_and_the_same_import_finishes_it(home, tmp_path, shared_embedder, monkeypatch):
    monkeypatch.setattr(archive_module, "CHUNK", 4)
    records = topic_records(10)
    rng = np.random.default_rng(19)
    vectors = {}
    for r in records:
        if r["status"] != "deleted":
            v = rng.standard_normal(384).astype(np.float32)
            vectors[r["id"]] = v / np.linalg.norm(v)
    path = write_archive(tmp_path / "ten.memcube", records, vectors, model_id=shared_embedder.model_id)

    def stop_after_first_chunk(stage: str, done: int, total: int | None) -> None:
        if stage == IMPORTING and done >= 4:
            raise KeyboardInterrupt  # Ctrl-C, between two chunks

    with pytest.raises(KeyboardInterrupt):
        import_archive(home, path, progress=stop_after_first_chunk)
    cube = home.cube("bulk")
    assert [m.id for m in cube.store.iter_all()] == [r["id"] for r in records[:4]]
    assert_consistent(cube)
    assert cube.store.unfinished_import()["source"] == "ten.memcube"

    report = import_archive(home, path)
    assert (report.imported, report.skipped_existing, report.vectors_reused) == (6, 4, len(live_ids(records[4:])))
    assert report.resumed is not None and report.resumed["source"] == "ten.memcube"
    assert sorted(m.id for m in cube.store.iter_all()) == sorted(r["id"] for r in records)
    assert all(o == ["add", "update", "import"] for o in versions_by_memory(cube).values())
    assert_consistent(cube)
    assert cube.store.unfinished_import() is None
    assert cube.store.counts()["graph_pending"] == 0


def count_rows(db: Path) -> int:
    if not db.exists():
        return 0
    conn = connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM memories").fetchone()[0])
    except Exception:  # the schema is still being made: none yet
        return 0
    finally:
        conn.close()


def stop_when_written(command: list[str], env: dict[str, str], db: Path, rows: int, how: signal.Signals) -> tuple[int, str]:
    """Run ``memcube import``, send it ``how`` once ``db`` holds ``rows`` memories; (exit code, stderr)."""
    # SIGINT as a person's Ctrl-C: the child takes the default disposition even if this process ignores it.
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    try:
        while count_rows(db) < rows and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()  # still importing: stopped part-way
        proc.send_signal(how)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode, err


def check_part_way(home: Path, records: list[dict[str, Any]], embedder) -> int:
    """A cube that an import stopped part-way: whole records, in archive order, every derived row; returns how many."""
    memory_home = MemoryHome(home, embedder=embedder)
    try:
        cube = memory_home.cube("bulk")
        rows = [m.id for m in cube.store.iter_all()]
        assert 0 < len(rows) < len(records) and rows == [r["id"] for r in records[: len(rows)]]  # whole chunks, in order
        assert_consistent(cube)  # every row its FTS row, context window, and a vector of this model
        ops = versions_by_memory(cube)
        assert set(ops) == set(rows) and all(o == ["add", "update", "import"] for o in ops.values())
        assert sorted(memory for _, memory in cube.store.outbox_batch(10 * len(records))) == sorted(rows)
        assert cube.store.unfinished_import()["source"] == "big.memcube"
        return len(rows)
    finally:
        memory_home.close()


@pytest.mark.slow
def test_memcube_import_interrupted_then_killed_leaves_whole_records_and_a_rerun_finishes_with_each_once(
    tmp_path, shared_embedder
):
    n = 1_200  # no vectors in the archive: embedding-bound, a chunk commits every few seconds
    records = topic_records(n)
    path = write_archive(tmp_path / "big.memcube", records, {}, model_id=None)
    home = tmp_path / "home"
    env = {**os.environ, "MEMCUBE_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "server", "import", str(path), "--home", str(home)]
    db = home / "cubes" / "bulk" / "memory.db"

    # Ctrl-C once a chunk is in: exit code 130 and what to do.
    code, err = stop_when_written(command, env, db, archive_module.EMBED_CHUNK, signal.SIGINT)
    assert code == 130, err
    assert "import interrupted after" in err and "run the same command again to import the rest" in err
    first = check_part_way(home, records, shared_embedder)

    # The same import again, killed outright once it has written at least one more chunk.
    code, _ = stop_when_written(command, env, db, first + archive_module.EMBED_CHUNK, signal.SIGKILL)
    assert code == -signal.SIGKILL
    rows = check_part_way(home, records, shared_embedder)
    assert rows > first

    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"imported {n - rows} memories into cube 'bulk' ({rows} already there" in rerun.stdout
    assert "completed the unfinished import of big.memcube" in rerun.stdout

    memory_home = MemoryHome(home, embedder=shared_embedder)
    try:
        cube = memory_home.cube("bulk")
        assert sorted(m.id for m in cube.store.iter_all()) == sorted(r["id"] for r in records)  # each once
        assert_consistent(cube)
        ops = versions_by_memory(cube)
        assert all(o == ["add", "update", "import"] for o in ops.values()) and len(ops) == n
        assert cube.store.unfinished_import() is None
        assert cube.store.counts()["graph_pending"] == 0
        assert keyword_rows(cube, "tok1150x") == cube.store.row_ids_of([records[1150]["id"]])
        chen = {r["id"] for r in records if r["entities"] == ["Chen"] and r["status"] == "active"}
        served = {m.id for m in cube.graph("Chen").memories}
        assert served and served <= chen
    finally:
        memory_home.close()


def test_the_vector_spool_keeps_only_usable_vectors():
    good = (np.arange(4, dtype=np.float32) + 1) / np.float32(np.sqrt(30))  # a unit vector, as the embedder makes
    spool = VectorSpool.of(
        [
            {"id": "a", "vector": _encode(good)},
            {"id": "b", "vector": "not base64 at all!"},
            {"id": "c", "vector": _encode(np.array([1.0, np.nan, 0.0, 0.0]))},
            {"id": "d", "vector": _encode(np.ones(3))},
            {"id": "e", "vector": 5},
            {"id": "f", "vector": _encode(good * 1e30)},  # would top every search
            {"id": "g", "vector": _encode(np.zeros(4))},
            {"id": "h", "vector": _encode(good * 1.01)},
        ]
    )
    with spool:
        assert np.array_equal(spool.get("a", 4), good)
        assert [spool.get(k, 4) for k in "bcdefghz"] == [None] * 8
        assert spool.get("a", 8) is None  # another model's width


def test_the_progress_bar_shows_count_rate_and_time_left_on_a_terminal_and_little_elsewhere(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    now = [0.0]
    screen = io.StringIO()
    bar = ProgressBar("work.memcube", stream=screen, terminal=True, clock=lambda: now[0])
    for step in range(0, 4_001, 1_000):
        now[0] = step / 500  # 500 records a second
        bar(IMPORTING, step, 10_000)
    drawn = screen.getvalue().split("\r")[-1]
    assert "importing work.memcube" in drawn and "4,000/10,000" in drawn and "40%" in drawn
    assert "500/s" in drawn and "0:12 left" in drawn and "[" in drawn
    bar.close()
    assert screen.getvalue().endswith("\n")

    log = io.StringIO()
    plain = ProgressBar("work.memcube", stream=log, terminal=False, clock=lambda: now[0])
    now[0] = 0.0
    plain(IMPORTING, 0, 100)
    now[0] = 1.0
    plain(IMPORTING, 100, 100)
    plain.close()
    assert log.getvalue() == ""  # a short import writes nothing to a log
    slow = ProgressBar("work.memcube", stream=log, terminal=False, clock=lambda: now[0])
    for second in range(0, 25):
        now[0] = float(second)
        slow(IMPORTING, second * 10, 1_000)
    slow(IMPORTING, 1_000, 1_000)
    slow.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("memcube: importing work.memcube") and "1,000/1,000" in lines[-1]
    assert clock_text(3725) == "1:02:05"


def test_a_progress_bar_whose_stream_is_gone_never_stops_the_work():
    class ClosedPipe(io.StringIO):
        attempts = 0

        def write(self, text: str) -> int:
            self.attempts += 1
            raise BrokenPipeError(32, "Broken pipe")

    pipe = ClosedPipe()
    bar = ProgressBar("work.memcube", stream=pipe, terminal=True)
    bar(IMPORTING, 10, 100)  # raises nothing: the import it reports on carries on
    bar(IMPORTING, 100, 100)
    bar.close()
    assert pipe.attempts == 1  # and it stops writing to a stream that is gone


def test_a_crafted_archive_cannot_plant_a_vector_that_tops_every_search(home, tmp_path, shared_embedder):
    """Vectors of any length but 1 are not this model's: the memory is embedded from its text instead."""
    texts = ["The boiler needs a service before winter", "Maya prefers window seats on long flights", "Buy lemons"]
    records = [{"id": memory_id(500 + i), "text": t} for i, t in enumerate(texts)]
    planted = shared_embedder.embed_one("completely unrelated words") * np.float32(1e30)
    vectors = {records[0]["id"]: planted, records[1]["id"]: np.zeros(384, dtype=np.float32)}
    path = write_archive(tmp_path / "crafted.memcube", records, vectors, model_id=shared_embedder.model_id)
    import_archive(home, path, graph=False)
    cube = home.cube("bulk")
    assert_consistent(cube)
    with raw_db(cube) as conn:
        stored = {
            rid: np.frombuffer(blob, dtype=np.float32) for rid, blob in conn.execute("SELECT rowid, embedding FROM memory_vec")
        }
    expected = shared_embedder.embed([embedding_text(t) for t in texts])
    for record, vector in zip(records, expected, strict=True):
        (row_id,) = cube.store.row_ids_of([record["id"]])
        assert np.allclose(stored[row_id], vector, atol=1e-5)  # embedded from the text, not taken from the archive
    hits = cube.search(SearchQuery(query="lemons", limit=1)).hits
    assert [h.text for h in hits] == ["Buy lemons"]
