"""Several MCP clients, each with its own `memcube serve`, on one data directory at once."""

from __future__ import annotations

import sqlite3

import anyio
import pytest
from mcp import Client
from mcp.types import Implementation
from support import ok
from test_stdio import serve_params

from memory import MemoryHome
from memory.doctor import check_cube

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # slow: five real servers, 400 adds

SERVERS = 4
MEMORIES_EACH = 100


async def test_four_servers_write_and_search_at_once_and_a_fifth_reads_everything(tmp_path, shared_embedder):
    acknowledged: dict[int, list[str]] = {n: [] for n in range(SERVERS)}
    failures: list[str] = []

    async def client_session(n: int) -> None:
        info = Implementation(name=f"client-{n}", version="1")
        async with Client(serve_params(tmp_path), mode="legacy", client_info=info) as client:
            for i in range(MEMORIES_EACH):
                text = f"Client {n} note {i}: the {['red', 'green', 'blue', 'amber'][i % 4]} folder holds report {n * 1000 + i}"
                result = await client.call_tool("memory_add", {"text": text, "tags": [f"client-{n}"]})
                if result.is_error:
                    failures.append(f"add {n}/{i}: {result.content[0].text}")
                    continue
                acknowledged[n].append(result.structured_content["ids"][0])
                if i % 10 == 0:
                    found = await client.call_tool("memory_search", {"query": f"report {n * 1000 + i}", "limit": 5})
                    if found.is_error:
                        failures.append(f"search {n}/{i}: {found.content[0].text}")
                if i % 25 == 0:
                    graph = await client.call_tool("memory_graph", {"entity": "Client"})
                    if graph.is_error and "no entity" not in graph.content[0].text:
                        failures.append(f"graph {n}/{i}: {graph.content[0].text}")

    with anyio.fail_after(600):
        async with anyio.create_task_group() as tasks:
            for n in range(SERVERS):
                tasks.start_soon(client_session, n)

    assert failures == []
    every_id = [i for ids in acknowledged.values() for i in ids]
    assert len(every_id) == len(set(every_id)) == SERVERS * MEMORIES_EACH

    with anyio.fail_after(120):
        async with Client(serve_params(tmp_path), mode="legacy") as reader:
            for start in range(0, len(every_id), 100):
                batch = every_id[start : start + 100]
                memories = (await ok(reader, "memory_get", ids=batch))["memories"]
                assert [m["id"] for m in memories] == batch
            stats = (await reader.read_resource("memory://default/stats")).contents[0].text
            assert f'"active": {SERVERS * MEMORIES_EACH}' in stats

    home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        report = check_cube(home.cube())
        assert report.healthy, report.render()
        assert report.findings == []
    finally:
        home.close()
    conn = sqlite3.connect(tmp_path / "cubes" / "default" / "memory.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
