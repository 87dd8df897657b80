"""`memcube serve` answers the handshake at once and hands every message to the real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from support import close_pipes

from server.handshake import record
from server.stdio_front import load_snapshot

ROOT = Path(__file__).resolve().parents[1]


def test_recorded_handshake_matches_the_live_server():
    """The recording the front replays is what the real server answers today.

    If this fails after changing a tool, prompt or resource, refresh the recording with
    `uv run python -m server.handshake --write`.
    """
    assert record() == load_snapshot(), "handshake_snapshot.json is stale: run `uv run python -m server.handshake --write`"


def _start(home: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "server", "serve"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "MEMCUBE_HOME": str(home)},
    )


def _send(proc: subprocess.Popen, message: dict) -> None:
    assert proc.stdin is not None
    proc.stdin.write((json.dumps(message) + "\n").encode())
    proc.stdin.flush()


def _receive(proc: subprocess.Popen) -> dict:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "server closed stdout"
    return json.loads(line)


def test_handshake_is_answered_before_the_sdk_has_loaded_and_each_request_once(tmp_path):
    proc = _start(tmp_path)
    try:
        started = time.perf_counter()
        _send(
            proc,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
            },
        )
        init = _receive(proc)
        _send(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        _send(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        tools = _receive(proc)
        early = time.perf_counter() - started
        assert init["id"] == 1 and init["result"]["protocolVersion"] == "2025-06-18"
        assert init["result"]["serverInfo"]["name"] == "memcube"
        assert tools["id"] == 2
        names = {t["name"] for t in tools["result"]["tools"]}
        assert {"memory_add", "memory_search", "memory_graph"} <= names
        # The SDK alone takes seconds to import here; the recorded answers come well before.
        assert early < 5.0

        # A tool call waits for the real server; the real server's own answers to
        # requests 1 and 2 must not reach the client a second time.
        _send(
            proc,
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "memory_add", "arguments": {"text": "Zoe kayaks on Sundays"}},
            },
        )
        _send(proc, {"jsonrpc": "2.0", "id": 4, "method": "tools/list"})
        # Requests run concurrently, so answers may come in any order: exactly one per id.
        answers = {a["id"]: a for a in (_receive(proc), _receive(proc))}
        assert sorted(answers) == [3, 4]
        assert answers[3]["result"]["structuredContent"]["ids"][0].startswith("mem_")
        assert {t["name"] for t in answers[4]["result"]["tools"]} == names
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    stray = proc.stdout.read() if proc.stdout else b""
    close_pipes(proc)
    assert stray == b"", f"unexpected output after the last answer: {stray[:200]!r}"


def test_a_version_the_recording_lacks_is_negotiated_by_the_real_server(tmp_path):
    proc = _start(tmp_path)
    try:
        _send(
            proc,
            {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "initialize",
                "params": {"protocolVersion": "1999-01-01", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
            },
        )
        answer = _receive(proc)
        assert answer["id"] == 7
        assert answer["result"]["protocolVersion"] in load_snapshot()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)
        close_pipes(proc)
