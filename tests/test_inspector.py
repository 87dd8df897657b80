"""An independent client, the MCP Inspector CLI, talks to `memcube serve` over stdio.

Each call starts the server as a client would (`memcube serve`, a fresh process) on one
data folder, so this also checks that what one process wrote the next one reads. The
Inspector is downloaded from npm by npx on first use; skipped only where Node.js is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

INSPECTOR = "@modelcontextprotocol/inspector@0.15"
pytestmark = [
    pytest.mark.external,
    pytest.mark.skipif(shutil.which("npx") is None, reason="Node.js (npx) is not installed"),
]


def _memcube() -> str:
    script = Path(sys.executable).parent / "memcube"
    return str(script) if script.exists() else shutil.which("memcube") or "memcube"


def _command(home: Path, method: str, *options: str) -> list[str]:
    return ["npx", "-y", INSPECTOR, "--cli", "-e", f"MEMCUBE_HOME={home}", _memcube(), "serve", "--method", method, *options]


def inspect_all(home: Path, *calls: tuple[str, ...]) -> list[dict]:
    """Run Inspector CLI calls side by side (each starts its own server); their JSON answers in order."""
    env = {k: v for k, v in os.environ.items() if k != "MEMCUBE_HOME"}
    procs = [
        subprocess.Popen(_command(home, *call), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for call in calls
    ]
    answers = []
    for call, proc in zip(calls, procs, strict=True):
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"{call[0]} failed: {out[-2000:]}{err[-2000:]}"
        answers.append(json.loads(out))
    return answers


def test_the_inspector_lists_and_calls_tools_reads_resources_and_gets_prompts(tmp_path):
    listed, resources, added = inspect_all(
        tmp_path,
        ("tools/list",),
        ("resources/list",),
        (
            "tools/call",
            "--tool-name",
            "memory_add",
            "--tool-arg",
            "text=Ada Lovelace wrote the first published program",
            "--tool-arg",
            "type=fact",
        ),
    )
    assert {"memory_add", "memory_search", "memory_get", "memory_graph"} <= {t["name"] for t in listed["tools"]}
    assert "memory://cubes" in {r["uri"] for r in resources["resources"]}
    assert not added.get("isError"), added
    memory_id = added["structuredContent"]["ids"][0]

    found, item, prompt = inspect_all(
        tmp_path,
        ("tools/call", "--tool-name", "memory_search", "--tool-arg", "query=who wrote the first program"),
        ("resources/read", "--uri", f"memory://default/items/{memory_id}"),
        ("prompts/get", "--prompt-name", "recall", "--prompt-args", "topic=programming history"),
    )
    assert found["structuredContent"]["hits"][0]["id"] == memory_id
    assert json.loads(item["contents"][0]["text"])["text"] == "Ada Lovelace wrote the first published program"
    assert memory_id in prompt["messages"][0]["content"]["text"]
