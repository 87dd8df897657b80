"""`memcube doctor` finds and repairs what issue 13 found, and says how much it fixed."""

from __future__ import annotations

import os
import re
import shutil
import stat

import pytest
from attack_support import run_cli
from support import raw_db

from memory import MemoryHome

pytestmark = pytest.mark.slow  # each test runs the doctor as a real process


def _seed(root, embedder) -> list[str]:
    home = MemoryHome(root, embedder=embedder)
    try:
        cube = home.cube(create=True)
        ids = [
            o.id
            for o in cube.add(
                [
                    {"text": "Lena plays the piano on Wednesdays", "entities": ["Lena"], "tags": ["music"]},
                    {"text": "Tom works at Acme", "relations": [{"subject": "Tom", "predicate": "works_at", "object": "Acme"}]},
                ]
            )
        ]
        cube.sync_graph()
    finally:
        home.close()
    return ids


def _exposed(root) -> list[str]:
    found = []
    for folder, _, files in os.walk(root):
        for path in [folder] + [os.path.join(folder, f) for f in files]:
            if stat.S_IMODE(os.lstat(path).st_mode) & 0o077:
                found.append(path)
    return found


def test_the_doctor_makes_files_others_could_read_private_and_counts_them(tmp_path, shared_embedder):
    _seed(tmp_path, shared_embedder)
    for folder, _, files in os.walk(tmp_path):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    exposed = len(_exposed(tmp_path))
    assert exposed >= 6
    first = run_cli(tmp_path, "doctor")
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{exposed} files or folders could be read by other users" in first.stdout
    assert f"made {exposed} of them private" in first.stdout
    assert _exposed(tmp_path) == []
    second = run_cli(tmp_path, "doctor")
    assert re.search(r"^home .*: ok$", second.stdout, re.M), second.stdout


def test_the_doctor_rebuilds_a_missing_graph_folder_with_a_count(tmp_path, shared_embedder):
    _seed(tmp_path, shared_embedder)
    shutil.rmtree(tmp_path / "cubes" / "default" / "graph")
    result = run_cli(tmp_path, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "graph: 2 active memories missing" in result.stdout
    assert "rebuilt the graph from SQLite (2 memories)" in result.stdout


def test_the_doctor_unjams_an_outbox_held_up_by_rows_an_old_import_stored(tmp_path, shared_embedder):
    lena, tom = _seed(tmp_path, shared_embedder)
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        # What an archive imported by an earlier version could store, written the way it did: straight into SQLite.
        with raw_db(home.cube()) as conn:
            conn.execute(
                'UPDATE memories SET tags = \'[1, {"a": 2}, "music"]\', relations = \'[{"subject": 1}, "knows"]\', '
                "importance = 'high' WHERE id = ?",
                (lena,),
            )
            conn.execute("INSERT INTO graph_outbox(memory_id, op) VALUES (?, 'sync')", (lena,))
            conn.execute("INSERT INTO graph_outbox(memory_id, op) VALUES (?, 'sync')", (tom,))
    finally:
        home.close()
    result = run_cli(tmp_path, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 memories held fields that no reader can take" in result.stdout
    assert "repaired 1 memories" in result.stdout
    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        cube = home.cube()
        memory = cube.get([lena])[0]
        assert (memory.tags, memory.relations, memory.importance) == (["music"], [], 0.5)  # the valid part kept
        assert [v.op for v in cube.history(lena)][-1] == "repair"
        assert cube.stats().graph_pending == 0
        assert {m.id for m in cube.graph("Lena").memories} == {lena}
        assert [h.id for h in cube.search({"query": "piano"}).hits][:1] == [lena]
    finally:
        home.close()
