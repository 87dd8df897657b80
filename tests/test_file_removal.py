"""Files removed or replaced under a running server lose no acknowledged memory (issue 26, item 3).

SQLite keeps using the files it opened. When ``memory.db-wal`` or ``memory.db`` is deleted
or replaced while a server runs, the server saves what its open connection still sees
before it refuses the next write: a checkpoint into memory.db for a lost log, a copy
through the backup API for a lost database (back in place, or beside a replacement).
"What survives" is checked on a copy of the cube's folder as it stands on disk: exactly what
a ``kill -9`` of the server would leave, since the deleted files are reachable only through
the dead process's handles. A real ``memcube serve`` killed with SIGKILL is checked too.

``memcube doctor`` never destroys the last copy: a database that is empty, tableless or not
SQLite is reported as damaged and not opened, and a graph that knows memories the database
does not is left as it is.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from attack_support import RawStdio, run_cli
from mcp import Client
from support import CLIENT_INFO, add, error, read_json, search_ids

from memory import MemoryHome
from memory.graph.graph_store import GraphStore
from server.app import build_server

pytestmark = pytest.mark.anyio

TEXTS = [
    f"Acknowledged fact number {n}: the {w} is in the {p}"
    for n, (w, p) in enumerate(
        [("key", "drawer"), ("passport", "safe"), ("bike", "garage"), ("ladder", "shed"), ("kettle", "cupboard")]
    )
]


@pytest.fixture
async def client(home: MemoryHome) -> AsyncIterator[Client]:
    async with Client(build_server(home, warm_up=False), mode="auto", client_info=CLIENT_INFO) as session:
        yield session


def folder(home: MemoryHome, cube: str = "default") -> Path:
    return home.cubes_dir / cube


def as_left_by_a_kill(home: MemoryHome, tmp_path: Path, name: str = "after-kill") -> Path:
    """The home as it stands on disk now: what a kill -9 of the server would leave (no close, no checkpoint)."""
    copy = tmp_path / name
    shutil.copytree(home.root, copy, ignore=shutil.ignore_patterns("*.lock"))
    return copy


def ids_in(root: Path, embedder, cube: str = "default") -> set[str]:
    reopened = MemoryHome(root, embedder=embedder)
    try:
        return {m.id for m in reopened.cube(cube).recent(100)}
    finally:
        reopened.close()


async def five(client: Client) -> set[str]:
    return {await add(client, text) for text in TEXTS}


# -- the write-ahead log ------------------------------------------------------------------


async def test_a_deleted_wal_is_checkpointed_before_the_next_write_is_refused(client, home, tmp_path, shared_embedder):
    acknowledged = await five(client)
    wal = folder(home) / "memory.db-wal"
    wal.unlink()
    message = await error(client, "memory_add", text="Written after the log went away")
    assert ids_in(as_left_by_a_kill(home, tmp_path), shared_embedder) == acknowledged
    assert "memory.db-wal was deleted" in message and "stopped writing" in message
    assert "saved into memory.db" in message and "none is lost" in message
    assert "still had open" in message
    # A read still answers, from the same data.
    assert {m["id"] for m in await read_json(client, "memory://default/recent")} == acknowledged


async def test_a_deleted_wal_noticed_by_a_read_alone_is_saved(client, home, tmp_path, shared_embedder):
    acknowledged = await five(client)
    (folder(home) / "memory.db-wal").unlink()
    hits = await search_ids(client, "where is the passport", limit=10)  # a search, and no write since
    assert hits and set(hits) <= acknowledged
    assert ids_in(as_left_by_a_kill(home, tmp_path), shared_embedder) == acknowledged


async def test_a_replaced_wal_is_checkpointed_and_the_stranger_moved_aside(client, home, tmp_path, shared_embedder):
    acknowledged = await five(client)
    wal = folder(home) / "memory.db-wal"
    stranger = wal.with_name("stranger")
    stranger.write_bytes(wal.read_bytes()[:32] + b"\0" * 4096)  # a log that is not this database's
    os.replace(stranger, wal)
    message = await error(client, "memory_add", text="Written after the log was replaced")
    assert ids_in(as_left_by_a_kill(home, tmp_path), shared_embedder) == acknowledged
    assert "memory.db-wal was replaced" in message and "none is lost" in message and "moved to" in message
    assert not wal.exists() and list(folder(home).glob("memory.db-wal.replaced-*"))


# -- the database file ----------------------------------------------------------------------


@pytest.mark.slow  # restarts a real server (21 s loaded); .ci/run runs it
async def test_a_deleted_database_is_copied_back_in_place(client, home, tmp_path, shared_embedder):
    acknowledged = await five(client)
    db = folder(home) / "memory.db"
    db.unlink()
    message = await error(client, "memory_add", text="Written after the database went away")
    survivor = as_left_by_a_kill(home, tmp_path)
    assert ids_in(survivor, shared_embedder) == acknowledged
    assert "memory.db was deleted" in message and "stopped writing" in message
    assert "back to memory.db" in message and "none is lost" in message
    assert db.is_file() and not (folder(home) / "memory.db-wal").exists()  # the old file's log is gone with it
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    result = run_cli(survivor, "doctor")
    assert result.returncode == 0 and "cube default: ok" in result.stdout, result.stdout


@pytest.mark.parametrize("replacement", ["an older copy", "not sqlite"])
async def test_a_replaced_database_is_left_and_a_rescued_copy_holds_every_memory(
    client, home, tmp_path, shared_embedder, replacement
):
    first = await add(client, TEXTS[0])
    db = folder(home) / "memory.db"
    older = tmp_path / "older.db"
    with sqlite3.connect(older) as target, sqlite3.connect(f"file:{db}?mode=ro", uri=True) as source:
        source.backup(target)
    acknowledged = {first} | {await add(client, text) for text in TEXTS[1:]}
    if replacement == "not sqlite":
        older.write_bytes(b"this is not a database\n" * 100)
    os.replace(older, db)
    replaced = db.read_bytes()
    message = await error(client, "memory_add", text="Written after the database was replaced")
    assert "memory.db was replaced" in message and "stopped writing" in message
    assert "memory.db.rescued-" in message and "left as it is" in message
    assert db.read_bytes() == replaced  # the operator's file, untouched
    hits = await search_ids(client, "where is the passport", limit=10)  # reads still see what the server had
    assert hits and set(hits) <= acknowledged
    (rescued,) = [p for p in folder(home).glob("memory.db.rescued-*") if not p.name.endswith(("-wal", "-shm"))]
    survivor = as_left_by_a_kill(home, tmp_path)
    # doctor points to the copy ...
    result = run_cli(survivor, "doctor")
    assert result.returncode == 1, result.stdout
    assert f"rescued copy {rescued.name}" in result.stdout
    held = 4 if replacement == "an older copy" else 5
    assert f"holds {held} memories memory.db does not have" in result.stdout
    if replacement == "not sqlite":
        assert "cube default: DAMAGED" in result.stdout and "not a SQLite database" in result.stdout
    # ... and following its advice brings every acknowledged memory back.
    os.replace(survivor / "cubes" / "default" / rescued.name, survivor / "cubes" / "default" / "memory.db")
    assert ids_in(survivor, shared_embedder) == acknowledged


# -- a real server, killed ------------------------------------------------------------------


def _call(server: RawStdio, id_: int, tool: str, **arguments) -> dict:
    return server.request(id_, "tools/call", {"name": tool, "arguments": arguments})


@pytest.mark.slow
@pytest.mark.parametrize("removed", ["memory.db-wal", "memory.db"])
def test_memcube_serve_killed_after_a_removal_keeps_every_acknowledged_memory(tmp_path, shared_embedder, removed):
    server = RawStdio(tmp_path)
    try:
        server.initialize()
        acknowledged = set()
        for n, text in enumerate(TEXTS, start=1):
            answer = _call(server, n, "memory_add", text=text)
            assert not answer["result"].get("isError"), answer
            acknowledged.add(answer["result"]["structuredContent"]["ids"][0])
        (tmp_path / "cubes" / "default" / removed).unlink()
        refused = _call(server, 99, "memory_add", text="after the removal")["result"]
        assert refused["isError"]
    finally:
        server.kill()
    assert ids_in(tmp_path, shared_embedder) == acknowledged
    assert "none is lost" in refused["content"][0]["text"]
    result = run_cli(tmp_path, "doctor")
    assert result.returncode == 0 and "cube default: ok" in result.stdout, result.stdout


# -- doctor ---------------------------------------------------------------------------------


def _cube_with_graph(home: MemoryHome) -> set[str]:
    cube = home.cube("default")
    ids = {o.id for o in cube.add([{"text": t, "entities": ["Home"]} for t in TEXTS])}
    cube.sync_graph()
    home.close()
    return ids


def _graph_ids(home_root: Path) -> set[str]:
    graph = GraphStore(home_root / "cubes" / "default" / "graph" / "graph.kuzu")
    try:
        return graph.memory_ids()
    finally:
        graph.close()


@pytest.mark.slow  # doctor runs as real processes (24 s loaded); .ci/run runs it
def test_doctor_leaves_a_graph_that_knows_memories_the_database_does_not(tmp_path, shared_embedder):
    home = MemoryHome(tmp_path / "home", embedder=shared_embedder)
    ids = _cube_with_graph(home)
    empty = MemoryHome(tmp_path / "empty", embedder=shared_embedder)
    empty.cube("default")
    empty.close()
    db = home.cubes_dir / "default" / "memory.db"
    os.replace(tmp_path / "empty" / "cubes" / "default" / "memory.db", db)  # a fresh, empty database in its place
    result = run_cli(home.root, "doctor")
    assert result.returncode == 1, result.stdout
    assert "graph knows 5 memories the database does not" in result.stdout
    assert "left as it is" in result.stdout and "memory.db.rescued-" in result.stdout
    assert _graph_ids(home.root) == ids  # the last trace, kept


@pytest.mark.parametrize("content", ["empty", "tableless", "not sqlite"])
def test_doctor_reports_a_database_that_is_no_memcube_database_as_damaged(tmp_path, shared_embedder, content):
    home = MemoryHome(tmp_path / "home", embedder=shared_embedder)
    ids = _cube_with_graph(home)
    db = home.cubes_dir / "default" / "memory.db"
    for extra in ("memory.db-wal", "memory.db-shm"):
        (db.parent / extra).unlink(missing_ok=True)
    db.unlink()
    if content == "empty":
        db.write_bytes(b"")
    elif content == "tableless":
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA user_version = 3")
    else:
        db.write_bytes(b"\x00garbage" * 512)
    before = db.read_bytes()
    result = run_cli(home.root, "doctor")
    text = result.stdout
    assert result.returncode == 1 and "cube default: DAMAGED" in text, text
    expected = {"empty": "is empty (0 bytes)", "tableless": "holds no MemCube tables", "not sqlite": "not a SQLite database"}
    assert expected[content] in text
    assert "graph knows 5 memories the database does not" in text
    assert db.read_bytes() == before  # not opened, so not filled with empty tables
    assert _graph_ids(home.root) == ids


async def test_doctor_output_on_the_home_left_by_a_removed_wal(client, home, tmp_path, shared_embedder):
    acknowledged = await five(client)
    (folder(home) / "memory.db-wal").unlink()
    await error(client, "memory_add", text="refused")
    survivor = as_left_by_a_kill(home, tmp_path)
    result = run_cli(survivor, "doctor")
    assert result.returncode == 0 and "cube default: ok" in result.stdout, result.stdout
    assert "stray" not in result.stdout and "rebuilt the graph" not in result.stdout
    assert ids_in(survivor, shared_embedder) == acknowledged
    assert json.loads(run_cli(survivor, "stats", "--json").stdout)[0]["active"] == 5
