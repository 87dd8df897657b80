"""Whoever asks, a query means the same thing: the MCP tool, the `recall` prompt and the CLI.

They all reach ``MemCube.search``, which reads time words, filters and context; a new
user once saw the CLI miss what MCP found because only the tool read time words.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import ok

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
MEMCUBE = Path(sys.executable).with_name("memcube")

GARDEN = [
    ("Planned the vegetable garden: tomatoes, basil and beans along the south fence", "2023-05-14"),
    ("Planned the garden shed: a new roof before the autumn rains", "2023-07-02"),
    ("Bought seeds for the garden at the market", "2023-05-20"),
    ("The plumber fixed the kitchen tap", "2023-05-16"),
]
QUERY = "what did we plan for the garden in May 2023?"


def cli_search(home: Path, *arguments: str) -> list[str]:
    command = [str(MEMCUBE)] if MEMCUBE.is_file() else [sys.executable, "-m", "server"]
    done = subprocess.run(
        [*command, "--home", str(home), "search", *arguments, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
    )
    return [hit["id"] for hit in json.loads(done.stdout)["hits"]]


async def test_the_tool_the_recall_prompt_and_the_cli_give_the_same_hits_with_time_words(home, connect, tmp_path):
    ids = [o.id for o in home.cube().add([{"text": t, "occurred_at": d} for t, d in GARDEN])]
    async with connect(home) as client:
        result = await ok(client, "memory_search", query=QUERY, limit=8)
        prompt = await client.get_prompt("recall", {"topic": QUERY, "limit": "8"})
    by_tool = [h["id"] for h in result["hits"]]
    by_prompt = re.findall(r"\[(mem_[0-9a-z]+)\]", prompt.messages[0].content.text)
    by_cli = cli_search(tmp_path, QUERY, "--limit", "8")

    assert result["time"]["since"].startswith("2023-05-01") and result["time_applied"]
    # "in May 2023" is a window, so the July plan is left out; the May plan comes first.
    assert by_tool[0] == ids[0] and ids[1] not in by_tool
    assert by_prompt == by_tool
    assert by_cli == by_tool


async def test_the_cli_reads_filters_and_a_reference_time_like_the_tool(home, connect, tmp_path):
    home.cube().add([{"text": t, "occurred_at": d, "tags": ["garden"] if "garden" in t else []} for t, d in GARDEN])
    async with connect(home) as client:
        result = await ok(client, "memory_search", query="plans from last month", tags=["garden"], now="2023-06-10T12:00:00Z")
    by_tool = [h["id"] for h in result["hits"]]
    assert by_tool and result["time_applied"]
    assert cli_search(tmp_path, "plans from last month", "--tag", "garden", "--now", "2023-06-10T12:00:00Z") == by_tool
