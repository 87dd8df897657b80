"""Helpers for the attack tests (issue 13): raw JSON-RPC over a real `memcube serve`, archives, CLI runs."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from support import close_pipes

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE_FORMAT = "memcube-archive"
INIT_PARAMS = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "attacker", "version": "1"}}


def memcube_env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "MEMCUBE_HOME": str(home), "PYTHONPATH": str(ROOT)}
    for name in ("MEMCUBE_HTTP_TOKEN", "MEMCUBE_HTTP_TOKENS"):
        env.pop(name, None)
    env.update(extra)
    return env


def run_cli(home: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`memcube ARGS --home HOME` as a real process (this checkout's code)."""
    return subprocess.run(
        [sys.executable, "-m", "server", *args, "--home", str(home)],
        cwd=ROOT,
        env=memcube_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class RawStdio:
    """`memcube serve` over stdio, spoken to with raw lines: what the SDK would refuse to send goes through."""

    def __init__(self, home: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"],
            cwd=ROOT,
            env=memcube_env(home),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def send(self, line: str | bytes) -> None:
        data = line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
        assert self.proc.stdin is not None
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def receive(self, timeout: float = 60) -> dict[str, Any] | None:
        """The next message from the server, or None when none came within ``timeout``."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def request(self, id_: int, method: str, params: dict[str, Any] | None = None, timeout: float = 120) -> dict[str, Any]:
        self.send(
            json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, **({"params": params} if params is not None else {})})
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.receive(deadline - time.monotonic())
            assert message is not None, f"no answer to {method} (id {id_})"
            if message.get("id") == id_:
                return message
        raise AssertionError(f"no answer to {method} (id {id_})")

    def initialize(self) -> None:
        assert "result" in self.request(0, "initialize", INIT_PARAMS)
        self.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> int:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=60)
        finally:
            close_pipes(self.proc)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown, no checkpoint."""
        self.proc.kill()
        self.proc.wait(timeout=30)
        close_pipes(self.proc)


def write_archive(path: Path, records: list[dict[str, Any]], cube: str = "imported") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manifest.json", json.dumps({"format": ARCHIVE_FORMAT, "format_version": 1, "cube": cube}))
        archive.writestr("memories.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def memory_id(n: int) -> str:
    """A valid memory id, distinct per n."""
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    digits = []
    for _ in range(26):
        digits.append(alphabet[n % 32])
        n //= 32
    return "mem_" + "".join(reversed(digits))


def command_lines() -> list[str]:
    """Every process's command line, as any local user reads them through ``ps``."""
    lines = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
    return lines
