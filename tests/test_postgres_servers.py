"""Real `memcube serve` processes on one PostgreSQL store (issue 28, acceptance 2).

Two servers over stdio, each with its own data folder, name one store (one by ``--store``,
one by ``MEMCUBE_STORE``): what one is told, the other finds within a second, its graph
agrees, and its subscriber hears of it. Four servers fed adds and each killed with SIGKILL
at a random moment lose no acknowledged memory.
"""

from __future__ import annotations

import random
import sys
import threading
import warnings
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from support import CLIENT_INFO, ok
from test_crash_safety import Writer
from test_stdio import MEMCUBE, ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]


def serve(home: Path, url: str, *, by_flag: bool) -> StdioServerParameters:
    """`memcube serve` over ``home``, told the store by ``--store URL`` or by ``MEMCUBE_STORE``."""
    store_args = ["--store", url] if by_flag else []
    command, args = (
        (str(MEMCUBE), [*store_args, "serve"]) if MEMCUBE.is_file() else (sys.executable, ["-m", "server", *store_args, "serve"])
    )
    env = {"MEMCUBE_HOME": str(home), "PYTHONPATH": str(ROOT)} | ({} if by_flag else {"MEMCUBE_STORE": url})
    return StdioServerParameters(command=command, args=args, env=env, cwd=ROOT)


async def within(seconds: float, check) -> None:
    with anyio.fail_after(seconds):
        while not await check():
            await anyio.sleep(0.02)


async def test_two_serve_processes_on_one_store_see_each_others_writes(tmp_path: Path, postgres_database: str) -> None:
    heard: list[str] = []

    async def on_message(message: object) -> None:
        if type(message).__name__ == "ResourceUpdatedNotification":
            heard.append(str(getattr(message, "params", message).uri))

    laptop_params = serve(tmp_path / "laptop", postgres_database, by_flag=True)
    desktop_params = serve(tmp_path / "desktop", postgres_database, by_flag=False)
    with anyio.fail_after(180):  # two servers load the embedding model on two cores
        async with (
            Client(laptop_params, client_info=CLIENT_INFO) as laptop,
            Client(desktop_params, mode="legacy", client_info=CLIENT_INFO, message_handler=on_message) as desktop,
        ):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # resources/subscribe: the 2025 way, Claude Desktop's
                await desktop.subscribe_resource("memory://default/recent")
            await ok(desktop, "memory_search", query="warm up")  # its model is loaded: the clock below is the store's
            await anyio.sleep(1.0)  # the desktop's listener is up

            [memory_id] = (
                await ok(laptop, "memory_add", text="Ines keeps the spare key under the blue pot.", entities=["Ines"])
            )["ids"]

            async def desktop_finds(word: str) -> bool:
                hits = (await ok(desktop, "memory_search", query="Where is the spare key?"))["hits"]
                return bool(hits) and hits[0]["id"] == memory_id and word in hits[0]["text"]

            await within(1.0, lambda: desktop_finds("blue"))

            async def desktop_heard() -> bool:
                return "memory://default/recent" in heard

            await within(1.0, desktop_heard)
            await ok(laptop, "memory_update", id=memory_id, text="Ines keeps the spare key under the red pot.")
            await within(1.0, lambda: desktop_finds("red"))
            laptop_graph = await ok(laptop, "memory_graph", entity="Ines")
            desktop_graph = await ok(desktop, "memory_graph", entity="Ines")
            assert [m["id"] for m in desktop_graph["memories"]] == [m["id"] for m in laptop_graph["memories"]] == [memory_id]
            await ok(laptop, "memory_archive", ids=[memory_id])

            async def desktop_sees_archived() -> bool:
                got = await ok(desktop, "memory_get", ids=[memory_id])
                return got["memories"][0]["status"] == "archived"

            await within(1.0, desktop_sees_archived)


def test_four_servers_killed_at_random_moments_lose_nothing_acknowledged(tmp_path: Path, postgres_database: str) -> None:
    from memory.store.postgres.cube_store import PostgresCubeStore

    rng = random.Random(28)
    writers = [Writer(tmp_path / f"server-{n}", n, env={"MEMCUBE_STORE": postgres_database}) for n in range(4)]
    runs = [threading.Thread(target=w.run, kwargs={"during_startup": False, "rng": random.Random(rng.random())}) for w in writers]
    for run in runs:
        run.start()
    for run in runs:
        run.join(120)
    acknowledged = [memory_id for w in writers for memory_id in w.acknowledged]
    assert len(acknowledged) >= 4 * 3  # each server acknowledged at least one batch before it was killed
    store = PostgresCubeStore(postgres_database, "default", follower="check")
    try:
        memories = store.get_many(acknowledged)
        assert {m.id for m in memories} == set(acknowledged)
        assert all(m.status == "active" and m.version == 1 for m in memories)
        assert store.counts()["active"] >= len(set(acknowledged))  # committed, maybe not yet acknowledged
    finally:
        store.close()


def test_a_store_that_cannot_be_reached_stops_the_server_with_one_line(tmp_path: Path) -> None:
    import subprocess

    command = [str(MEMCUBE)] if MEMCUBE.is_file() else [sys.executable, "-m", "server"]

    def serve_on(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, "--store", url, "serve"],
            env={"MEMCUBE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = serve_on("postgresql://memcube@127.0.0.1:1/memcube")
    assert done.returncode != 0 and done.stdout == ""  # stdout is the MCP channel: nothing but JSON-RPC
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to the PostgreSQL store" in lines[0] and "127.0.0.1" in lines[0], done.stderr
    password = serve_on("postgresql://memcube:hunter2@127.0.0.1:1/memcube")
    assert password.returncode != 0 and "PGPASSWORD" in password.stderr and "hunter2" not in password.stderr
