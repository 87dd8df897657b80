"""One damaged cube does not break home-wide commands (issue 26, item 11).

A home with two healthy cubes and two damaged ones: ``broken`` holds a ``memory.db`` that
is not SQLite, ``linked`` a ``memory.db`` that is a symbolic link to another cube's file.
``memcube doctor``, ``memcube stats`` (the console script) and ``memory://cubes`` report
each damaged cube as damaged, with the reason, and still check or count the others; the
symbolic link is refused, never followed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from attack_support import ROOT, memcube_env, run_cli
from mcp import Client
from support import CLIENT_INFO, error, read_json

from memory import MemoryHome
from server.app import build_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def damaged_home(tmp_path, shared_embedder) -> Path:
    root = tmp_path / "home"
    home = MemoryHome(root, embedder=shared_embedder)
    for name in ("alpha", "beta"):
        home.cube(name, create=True).add([{"text": f"A memory of cube {name}"}])
    home.close()
    broken = root / "cubes" / "broken"
    broken.mkdir(mode=0o700)
    (broken / "memory.db").write_bytes(b"PK\x03\x04 definitely not a database" * 64)
    linked = root / "cubes" / "linked"
    linked.mkdir(mode=0o700)
    (linked / "memory.db").symlink_to(root / "cubes" / "alpha" / "memory.db")
    return root


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_doctor_checks_every_cube_and_reports_each_damaged_one(damaged_home):
    alpha = damaged_home / "cubes" / "alpha" / "memory.db"
    result = run_cli(damaged_home, "doctor")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "cube alpha: ok" in out and "cube beta: ok" in out, out
    assert "cube broken: DAMAGED" in out and "memory.db is not a SQLite database" in out
    assert "cube linked: DAMAGED" in out and "memory.db is a symbolic link" in out and "does not follow it" in out
    assert "Traceback" not in result.stderr
    # Checked in order, and the cube after the damaged ones too.
    assert out.index("cube alpha") < out.index("cube beta") < out.index("cube broken") < out.index("cube linked")
    assert (damaged_home / "cubes" / "linked" / "memory.db").is_symlink()  # reported, left alone
    assert alpha.is_file() and not alpha.is_symlink()


def test_memcube_stats_lists_the_damaged_cubes_and_counts_the_others(damaged_home):
    script = Path(sys.executable).with_name("memcube")
    assert script.exists(), "the console script is installed in the project's environment"
    result = subprocess.run(
        [str(script), "stats", "--home", str(damaged_home)],
        cwd=ROOT,
        env=memcube_env(damaged_home),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert set(rows) == {"alpha", "beta", "broken", "linked"}, result.stdout
    assert rows["alpha"].split()[1] == "1" and rows["beta"].split()[1] == "1"
    assert "DAMAGED" in rows["broken"] and "DAMAGED" in rows["linked"]
    assert "cube 'broken' is damaged" in result.stderr and "not a SQLite database" in result.stderr
    assert "cube 'linked' is damaged" in result.stderr and "symbolic link" in result.stderr
    assert "Traceback" not in result.stderr
    listed = json.loads(run_cli(damaged_home, "stats", "--json").stdout)
    assert {c["cube"]: c.get("active", c.get("damaged")) for c in listed}["alpha"] == 1
    assert "not a SQLite database" in next(c["damaged"] for c in listed if c["cube"] == "broken")


@pytest.fixture
async def client(damaged_home, shared_embedder) -> AsyncIterator[Client]:
    home = MemoryHome(damaged_home, embedder=shared_embedder)
    async with Client(build_server(home, warm_up=False), mode="auto", client_info=CLIENT_INFO) as session:
        yield session
    home.close()


async def test_memory_cubes_lists_a_damaged_cube_as_damaged(client):
    listed = {c["cube"]: c for c in await read_json(client, "memory://cubes")}
    assert set(listed) == {"alpha", "beta", "broken", "linked"}
    assert listed["alpha"]["active"] == 1 and listed["beta"]["active"] == 1
    assert "not a SQLite database" in listed["broken"]["damaged"]
    assert "symbolic link" in listed["linked"]["damaged"]
    assert "active" not in listed["linked"]  # not alpha's counts seen through the link


async def test_a_symlinked_database_is_refused_not_followed(client, damaged_home):
    alpha = damaged_home / "cubes" / "alpha" / "memory.db"
    before = _digest(alpha)
    message = await error(client, "memory_add", text="Through the link", cube="linked")
    assert "cube 'linked' is damaged" in message and "symbolic link" in message
    message = await error(client, "memory_search", query="memory", cube="linked")
    assert "symbolic link" in message
    assert "not a SQLite database" in await error(client, "memory_add", text="x", cube="broken")
    assert _digest(alpha) == before


def test_memcube_backup_copies_the_healthy_cubes_and_names_the_damaged_ones(damaged_home, tmp_path):
    destination = tmp_path / "backup"
    result = run_cli(damaged_home, "backup", str(destination))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "alpha: 1 memories" in result.stdout and "beta: 1 memories" in result.stdout
    assert "cube broken not copied" in result.stderr and "not a SQLite database" in result.stderr
    assert "cube linked not copied" in result.stderr and "symbolic link" in result.stderr
    assert sorted(p.name for p in (destination / "cubes").iterdir()) == ["alpha", "beta"]
