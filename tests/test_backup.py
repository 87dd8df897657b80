"""`memcube backup` copies a home consistently while a server keeps writing to it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest
from mcp import Client
from support import ok
from test_stdio import serve_params

from memory import MemoryHome
from memory.doctor import check_cube

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # backs up under a stream of writes (27 s loaded); .ci/run runs it
async def test_a_backup_taken_during_writes_is_consistent_and_rebuilds_its_graph(tmp_path, shared_embedder):
    home_dir, backup_dir = tmp_path / "home", tmp_path / "backup"
    home_dir.mkdir()
    (home_dir / "config.toml").write_text('[access]\ndefault = "write"\n')
    acknowledged: list[str] = []
    backup_done = threading.Event()
    result: dict[str, subprocess.CompletedProcess] = {}

    def run_backup() -> None:
        result["backup"] = subprocess.run(
            [sys.executable, "-m", "server", "backup", str(backup_dir)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "MEMCUBE_HOME": str(home_dir)},
            timeout=120,
        )
        backup_done.set()

    with anyio.fail_after(300):
        async with Client(serve_params(home_dir), mode="legacy") as client:
            for i in range(20):
                added = await ok(client, "memory_add", text=f"Ledger entry {i}: Ada paid invoice {i}", entities=["Ada"])
                acknowledged.append(added["ids"][0])
            threading.Thread(target=run_backup, daemon=True).start()
            i = 20
            while not backup_done.is_set():  # keep writing while the backup runs
                added = await ok(client, "memory_add", text=f"Ledger entry {i}: Ada paid invoice {i}", entities=["Ada"])
                acknowledged.append(added["ids"][0])
                i += 1
                await anyio.sleep(0.01)

    assert result["backup"].returncode == 0, result["backup"].stderr
    assert (backup_dir / "config.toml").read_text() == (home_dir / "config.toml").read_text()
    copy = MemoryHome(backup_dir, embedder=shared_embedder)
    try:
        cube = copy.cube()
        stored = {m.id for m in cube.store.iter_all()}
        # A snapshot as of one instant: a prefix of what was acknowledged, at least what came before the backup.
        assert set(acknowledged[:20]) <= stored
        assert stored == set(acknowledged[: len(stored)])
        report = check_cube(cube)
        assert report.findings == [], report.render()
        assert cube.graph_store.memory_ids() == stored  # rebuilt from the snapshot, not copied
        hits = cube.search({"query": "invoice 3 paid by Ada", "limit": 3}).hits
        assert hits[0].text == "Ledger entry 3: Ada paid invoice 3"
    finally:
        copy.close()


def test_a_backup_refuses_a_folder_that_is_not_empty(tmp_path, shared_embedder):
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep.txt").write_text("mine")
    done = subprocess.run(
        [sys.executable, "-m", "server", "backup", str(tmp_path / "dest")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MEMCUBE_HOME": str(tmp_path / "home")},
        timeout=60,
    )
    assert done.returncode == 2 and "not empty" in done.stderr
    assert (tmp_path / "dest" / "keep.txt").read_text() == "mine"
