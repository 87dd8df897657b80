"""A server killed with SIGKILL at any moment loses no acknowledged write and needs no person.

Each round starts a real `memcube serve`, streams adds at it, kills it at a random moment
(during start-up, embedding, a write transaction or graph work), then opens the home the
way the next server does and checks: every acknowledged memory is there, vectors, FTS and
the graph agree with SQLite once pending graph work is applied, and SQLite's integrity
check passes. MEMCUBE_CRASH_ROUNDS sets the number of rounds (default 50).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support import close_pipes

from memory import MemoryHome
from memory.doctor import check_cube

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("MEMCUBE_CRASH_ROUNDS", "50"))

pytestmark = pytest.mark.slow  # fifty rounds of starting and killing a real server


class Writer:
    """A `memcube serve` being fed memory_add calls; remembers which ones it acknowledged."""

    def __init__(self, home: Path, round_no: int, env: dict[str, str] | None = None) -> None:
        self.round_no = round_no
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "MEMCUBE_HOME": str(home), **(env or {})},
        )
        self.acknowledged: list[str] = []
        self.texts: dict[int, list[str]] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _send(self, message: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            result = message.get("result") or {}
            structured = result.get("structuredContent") if isinstance(result, dict) else None
            if structured and "ids" in structured:
                self.acknowledged.extend(structured["ids"])

    def run(self, *, during_startup: bool, rng: random.Random) -> None:
        """Feed adds; kill during start-up, or at a random moment once writes are being acknowledged."""
        started = time.monotonic()
        kill_at = started + rng.uniform(0.2, 2.0) if during_startup else None
        try:
            self._send(
                {
                    "jsonrpc": "2.0",
                    "id": 0,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "crash", "version": "1"},
                    },
                }
            )
            self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            n = 1
            while True:
                now = time.monotonic()
                if kill_at is None and self.acknowledged:
                    kill_at = now + rng.uniform(0.0, 1.5)
                if (kill_at is not None and now >= kill_at) or now - started > 60:
                    break
                batch = [
                    {
                        "text": f"Round {self.round_no} item {n}.{k}: Ada filed invoice {self.round_no}-{n}-{k} for #project-{k % 3}",
                        "relations": [{"subject": "Ada", "predicate": "filed", "object": f"invoice {self.round_no}-{n}-{k}"}],
                    }
                    for k in range(3)
                ]
                self._send(
                    {
                        "jsonrpc": "2.0",
                        "id": n,
                        "method": "tools/call",
                        "params": {"name": "memory_add", "arguments": {"memories": batch}},
                    }
                )
                n += 1
                time.sleep(0.03)
        except BrokenPipeError:
            pass
        finally:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
            self._reader.join(timeout=10)
            close_pipes(self.proc)


def test_sigkill_at_random_moments_loses_nothing_acknowledged(tmp_path, shared_embedder):
    rng = random.Random(20261125)
    total_acknowledged = 0
    kills_after_writes = 0
    all_acknowledged: list[str] = []
    for round_no in range(ROUNDS):
        writer = Writer(tmp_path, round_no)
        # One round in five is killed while starting; the others while writes are being acknowledged.
        writer.run(during_startup=rng.random() < 0.2, rng=rng)
        all_acknowledged.extend(writer.acknowledged)
        total_acknowledged += len(writer.acknowledged)
        kills_after_writes += bool(writer.acknowledged)

        home = MemoryHome(tmp_path, embedder=shared_embedder)
        try:
            if not (tmp_path / "cubes" / "default" / "memory.db").exists():
                continue
            cube = home.cube()
            cube.try_sync_graph()  # what the next server does at start
            present = [
                m.id for start in range(0, len(all_acknowledged), 500) for m in cube.get(all_acknowledged[start : start + 500])
            ]
            assert present == all_acknowledged
            report = check_cube(cube)
            assert report.findings == [], f"round {round_no}: {report.render()}"
            assert cube.store.integrity() == "ok"
            if writer.acknowledged:
                last = cube.get([writer.acknowledged[-1]])[0]
                hits = cube.search({"query": last.text, "limit": 3}).hits
                assert hits and hits[0].id == last.id
        finally:
            home.close()
    print(
        f"crash rounds: {ROUNDS}, kills after at least one acknowledged write: {kills_after_writes}, acknowledged memories: {total_acknowledged}"
    )
    assert kills_after_writes >= ROUNDS // 2
    assert total_acknowledged > 0
