"""A full disk under a real `memcube serve` (issue 26): a small tmpfs holds the home.

Kuzu ends the whole process when a commit or checkpoint runs out of space, and the next
start, applying the same queued graph work, ended the same way: a server that died in a
loop until space was freed. The graph is derived data, so on a full disk it pauses while
memories are still added and searched in SQLite, and it catches up once space is back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from attack_support import RawStdio

from memory import MemoryHome
from memory.errors import Unavailable
from memory.store.connection import connect

MIB = 1024 * 1024
DISK_MIB = 20  # as in the report: the home (about 4 MiB) and a graph write (memory.graph.disk_room.FLOOR_BYTES and more)
# Left free: enough for SQLite (a new cube's database, or a few pages per add), not for a graph write.
LOW_NEW = 2 * MIB
LOW = 256 * 1024
ALICE = "Alice drinks green tea every morning"
BOB = "Bob repairs old bicycles in Alice's garage"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A mounted tmpfs of DISK_MIB, unmounted afterwards whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (as in CI)")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB}m,mode=0700", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> None:
    """Take the disk's free space with a filler file until about ``leave`` bytes remain."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 20, 1 << 12):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    assert shutil.disk_usage(disk).free <= leave + (1 << 16)


def free_space(disk: Path) -> None:
    (disk / "filler").unlink()


class Server(RawStdio):
    """`memcube serve` with numbered requests, answering tool calls as (is_error, text)."""

    def __init__(self, home: Path) -> None:
        super().__init__(home)
        self.next_id = 1
        self.initialize()

    def ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        answer = self.request(self.next_id, method, params, timeout=60)
        assert "result" in answer, answer
        return answer["result"]

    def tool(self, name: str, **arguments: Any) -> tuple[bool, str]:
        result = self.ask("tools/call", {"name": name, "arguments": arguments})
        return bool(result.get("isError")), result["content"][0]["text"]

    def ok(self, name: str, **arguments: Any) -> dict[str, Any]:
        failed, text = self.tool(name, **arguments)
        assert not failed, text
        return json.loads(text)

    def add(self, text: str, *entities: str) -> str:
        return self.ok("memory_add", text=text, entities=list(entities))["ids"][0]

    def found(self, query: str) -> list[str]:
        return [hit["text"] for hit in self.ok("memory_search", query=query)["hits"]]

    def graph_memories(self, entity: str) -> set[str]:
        return {m["text"] for m in self.ok("memory_graph", entity=entity)["memories"]}

    def graph_pending(self) -> int:
        result = self.ask("resources/read", {"uri": "memory://default/stats"})
        return int(json.loads(result["contents"][0]["text"])["graph_pending"])


@pytest.fixture
def serve(disk: Path) -> Iterator[Any]:
    """Start `memcube serve` on the home on the small disk; every server is ended before the disk is unmounted."""
    started: list[Server] = []

    def start() -> Server:
        server = Server(disk / "home")
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            if server.alive():
                server.proc.kill()
            server.close()


def graph_paused(server: Server, entity: str) -> str:
    failed, text = server.tool("memory_graph", entity=entity)
    assert failed, text
    assert "the graph is paused" in text and "MiB free" in text and "catches up" in text, text
    return text


def stays_up(server: Server, seconds: float = 1.5) -> None:
    """The background graph work runs between calls: give it time, then the server must still be there."""
    time.sleep(seconds)
    assert server.alive(), f"memcube serve ended with {server.proc.returncode}"


def catches_up(server: Server, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while server.graph_pending():
        assert time.monotonic() < deadline, "the graph did not catch up after space was freed"
        time.sleep(0.5)


@pytest.mark.slow  # three server starts on a tmpfs: 10 to 20 s
def test_a_disk_full_before_the_graph_exists_pauses_the_graph_and_the_server_keeps_serving(disk, serve):
    first = serve()
    fill(disk, LOW_NEW)
    alice = first.add(ALICE, "Alice")  # stored in SQLite; the first graph write would not fit
    stays_up(first)
    assert not (disk / "home" / "cubes" / "default" / "graph" / "graph.kuzu").exists()
    assert first.found("what does Alice drink") == [ALICE]
    graph_paused(first, "Alice")
    assert first.close() == 0

    second = serve()  # used to die within seconds, before any call, on every start
    stays_up(second)
    assert second.found("what does Alice drink") == [ALICE]
    graph_paused(second, "Alice")

    fill(disk, 0)
    failed, text = second.tool("memory_add", text="Written on a full disk " + "words " * 4000)
    assert failed and "is full" in text and "Free some space" in text, text
    assert second.found("what does Alice drink") == [ALICE]

    free_space(disk)
    bob = second.add(BOB, "Bob", "Alice")
    catches_up(second)
    assert second.graph_memories("Alice") == {ALICE, BOB}
    memories = second.ok("memory_get", ids=[alice, bob])["memories"]
    assert [m["text"] for m in memories] == [ALICE, BOB]
    assert second.close() == 0
    conn = connect(disk / "home" / "cubes" / "default" / "memory.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


@pytest.mark.slow  # three server starts on a tmpfs: 10 to 20 s
def test_a_disk_full_after_the_graph_exists_keeps_the_graph_readable_and_the_server_serving(disk, serve):
    first = serve()
    alice = first.add(ALICE, "Alice")
    assert first.graph_memories("Alice") == {ALICE}  # the graph exists and is up to date
    assert first.close() == 0

    fill(disk, LOW)
    second = serve()
    stays_up(second)
    assert second.graph_memories("Alice") == {ALICE}  # read-only: reading a settled graph writes nothing
    bob = second.add(BOB, "Bob", "Alice")
    stays_up(second)
    assert second.found("who repairs bicycles")[0] == BOB
    graph_paused(second, "Alice")  # behind SQLite now: not served stale
    assert second.close() == 0

    third = serve()
    stays_up(third)
    graph_paused(third, "Bob")
    fill(disk, 0)
    failed, text = third.tool("memory_add", text="Written on a full disk " + "words " * 4000)
    assert failed and "is full" in text, text

    free_space(disk)  # no call needed: the server tries the graph again by itself
    catches_up(third)
    assert third.graph_memories("Alice") == {ALICE, BOB}
    assert third.graph_memories("Bob") == {BOB}
    assert [m["text"] for m in third.ok("memory_get", ids=[alice, bob])["memories"]] == [ALICE, BOB]
    assert third.close() == 0


def test_without_room_the_graph_is_neither_written_nor_rebuilt_and_a_settled_graph_is_still_read(disk, shared_embedder):
    home = MemoryHome(disk / "home", embedder=shared_embedder)
    try:
        cube = home.cube()
        cube.add([{"text": ALICE, "entities": ["Alice"]}])
        cube.sync_graph()
        fill(disk, LOW)
        with pytest.raises(Unavailable, match="the graph is paused"):
            cube.rebuild_graph()  # would have dropped and rewritten the whole graph
        assert [m.text for m in cube.graph("Alice").memories] == [ALICE]  # read-only
        cube.add([{"text": BOB, "entities": ["Bob", "Alice"]}])
        assert cube.try_sync_graph() == 0
        assert cube.graph_store.paused is not None and not cube.graph_store.has_room()
        with pytest.raises(Unavailable, match="the graph is paused"):
            cube.graph("Bob")  # the graph is behind SQLite: no stale answer
        assert cube.stats().graph_pending == 1  # kept in the outbox

        free_space(disk)
        assert cube.graph_store.has_room()
        assert cube.sync_graph() == 1
        assert cube.graph_store.paused is None
        assert {m.text for m in cube.graph("Alice").memories} == {ALICE, BOB}
    finally:
        home.close()
