"""Upkeep between calls: the keyword indexes merged into one b-tree each once a cube has grown
(without changing a search), and the server's loop leaving no graph work behind.

Segments are read from FTS5's structure record (row 10 of ``<table>_data``), whose layout is
FTS5's on-disk format: a 4-byte cookie, then varints: levels, segments, write counter, and
for each level its merge state and segment count, then each segment's id and first and
last page.
"""

from __future__ import annotations

import threading
import time

import anyio
import pytest
from support import raw_db

from memory import SearchQuery
from memory.store import fulltext_merge
from tools import runtime


def _varint(blob: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        byte = blob[at]
        at += 1
        if i == 8:
            return (value << 8) | byte, at
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    return value, at


def segments(cube, table: str) -> int:
    with raw_db(cube) as conn:
        blob = conn.execute(f"SELECT block FROM {table}_data WHERE id = 10").fetchone()[0]
    _levels, at = _varint(blob, 4)
    count, _ = _varint(blob, at)
    return count


def _add_one_by_one(cube, n: int, start: int = 0) -> None:
    # Each add is a transaction of its own, and so a new segment in each index.
    for i in range(start, start + n):
        cube.add(
            [
                {
                    "text": f"Note {i}: the {['harbour', 'orchard', 'kiln'][i % 3]} crew met about plan {i}",
                    "session_id": f"s{i % 4}",
                }
            ]
        )


QUERIES = ["harbour crew", "plan 7", "orchard", "kiln crew plan 12", "nothing like this at all"]


def _answers(cube) -> list[list[tuple[str, float]]]:
    found = []
    for query in QUERIES:
        for signals in (None, ["keyword"], ["context"]):
            q = SearchQuery(query=query, limit=10, **({"signals": signals} if signals else {}))
            found.append([(h.id, h.score) for h in cube.search(q).hits])
    return found


def test_a_merge_leaves_one_segment_per_index_and_every_answer_as_it_was(home):
    cube = home.cube("merge", create=True)
    _add_one_by_one(cube, 40)
    assert segments(cube, "memory_fts") > 1 and segments(cube, "memory_context_fts") > 1
    before = _answers(cube)
    assert cube.store.merge_fulltext(force=True)
    assert segments(cube, "memory_fts") == 1 and segments(cube, "memory_context_fts") == 1
    assert _answers(cube) == before
    with raw_db(cube) as conn:
        for table in fulltext_merge.TABLES:
            conn.execute(f"INSERT INTO {table}({table}) VALUES ('integrity-check')")  # raises on a damaged index
        assert conn.execute("SELECT value FROM cube_meta WHERE key = ?", (fulltext_merge.MERGED_AT,)).fetchone()[0] == str(
            conn.execute("SELECT max(row_id) FROM memories").fetchone()[0]
        )


def test_a_merge_is_due_only_once_the_cube_has_grown_enough(home, monkeypatch):
    monkeypatch.setattr(fulltext_merge, "MIN_NEW_ROWS", 20)
    monkeypatch.setattr(fulltext_merge, "GROWTH", 1.0)
    cube = home.cube("growth", create=True)
    _add_one_by_one(cube, 19)
    assert not cube.try_merge_fulltext()  # 19 new rows < 20
    _add_one_by_one(cube, 1, start=19)
    assert cube.try_merge_fulltext()  # 20 rows since nothing was merged
    assert segments(cube, "memory_fts") == 1
    _add_one_by_one(cube, 19, start=20)
    assert not cube.try_merge_fulltext()  # 19 more: under the floor and under 1.0 x 20
    _add_one_by_one(cube, 1, start=39)
    assert cube.try_merge_fulltext()  # 20 more = 1.0 x 20
    _add_one_by_one(cube, 20, start=40)
    assert not cube.try_merge_fulltext()  # 20 more, under 1.0 x 40
    _add_one_by_one(cube, 20, start=60)
    assert cube.try_merge_fulltext()  # 40 more = 1.0 x 40
    assert not cube.try_merge_fulltext()  # and nothing new since


def test_writes_and_searches_go_on_while_a_merge_runs(home, monkeypatch):
    """The merge takes the write lock one step at a time: another thread's adds land between steps."""
    monkeypatch.setattr(fulltext_merge, "STEP_PAGES", 1)  # many steps, so the adds fall between them
    cube = home.cube("busy", create=True)
    _add_one_by_one(cube, 60)
    added: list[str] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(15):
                added.extend(o.id for o in cube.add([{"text": f"Late note {i} about the lighthouse keeper"}]))
                cube.search(SearchQuery(query="harbour crew", limit=5))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    assert cube.store.merge_fulltext(force=True)
    thread.join()
    assert errors == [] and len(added) == 15
    with raw_db(cube) as conn:
        for table in fulltext_merge.TABLES:
            conn.execute(f"INSERT INTO {table}({table}) VALUES ('integrity-check')")
    hits = cube.search(SearchQuery(query="lighthouse keeper", limit=20, signals=["keyword"])).hits
    assert {h.id for h in hits} == set(added)


@pytest.mark.anyio
async def test_the_server_merges_the_indexes_once_writes_go_quiet(home, connect, monkeypatch):
    monkeypatch.setattr(fulltext_merge, "MIN_NEW_ROWS", 10)
    monkeypatch.setattr(runtime, "QUIET_S", 0.3)
    cube = home.cube("default", create=True)
    async with connect(home) as client:
        # Past the server's first check (nothing to merge in an empty cube): the merge below
        # comes from the writes going quiet.
        await anyio.sleep(runtime.STARTUP_GRACE_S + runtime.QUIET_S + 0.5)
        for i in range(12):
            result = await client.call_tool(
                "memory_add", {"text": f"Call {i}: the ferry timetable changed again", "session_id": "x"}
            )
            assert not result.is_error
        assert segments(cube, "memory_fts") > 1
        deadline = time.monotonic() + 20
        while segments(cube, "memory_fts") > 1 and time.monotonic() < deadline:
            await anyio.sleep(0.1)
        assert segments(cube, "memory_fts") == 1 and segments(cube, "memory_context_fts") == 1
        found = await client.call_tool("memory_search", {"query": "ferry timetable", "limit": 20})
        assert not found.is_error and found.structured_content is not None
        assert len(found.structured_content["hits"]) == 12


def test_an_import_ends_with_its_cube_merged(home, tmp_path, monkeypatch):
    from memory.io.archive import export_cube, import_archive

    monkeypatch.setattr(fulltext_merge, "MIN_NEW_ROWS", 10)
    source = home.cube("source", create=True)
    _add_one_by_one(source, 30)
    export_cube(source, tmp_path / "notes.jsonl")
    report = import_archive(home, tmp_path / "notes.jsonl", cube="restored", graph=False)
    assert report.imported == 30
    restored = home.cube("restored")
    assert restored.store.meta(fulltext_merge.MERGED_AT) is not None  # the import's last step merged it
    assert segments(restored, "memory_fts") == 1 and segments(restored, "memory_context_fts") == 1
    assert not restored.try_merge_fulltext()


@pytest.mark.anyio
async def test_a_write_made_while_the_server_applies_the_graph_is_not_left_queued(home, connect, monkeypatch):
    """The background loop counts writes: one that lands while it applies the graph is applied next, unprompted."""
    from memory.cube import MemCube

    runtimes: list[runtime.ToolRuntime] = []
    made = runtime.ToolRuntime.__init__

    def keep(self, *args, **kwargs) -> None:
        made(self, *args, **kwargs)
        runtimes.append(self)

    monkeypatch.setattr(runtime.ToolRuntime, "__init__", keep)
    cube = home.cube("default", create=True)
    applying = MemCube.try_sync_graph
    wrote_during: list[str] = []

    def apply_and_meanwhile_write(self: MemCube) -> int:
        applied = applying(self)
        if applied and not wrote_during:  # the first real application: another call writes meanwhile
            wrote_during.extend(o.id for o in self.add([{"text": "Written while the graph was being applied"}]))
            runtimes[0].graph_changed()
        return applied

    monkeypatch.setattr(MemCube, "try_sync_graph", apply_and_meanwhile_write)
    async with connect(home) as client:
        await anyio.sleep(runtime.STARTUP_GRACE_S + 0.2)  # past the start-up reconcile
        assert not (await client.call_tool("memory_add", {"text": "The first write of the session"})).is_error
        deadline = time.monotonic() + 10
        while (not wrote_during or cube.stats().graph_pending) and time.monotonic() < deadline:
            await anyio.sleep(0.1)
        assert wrote_during and cube.stats().graph_pending == 0
