"""How fast a real ``memcube serve`` (stdio) answers hostile messages (issue 13).

    uv run python bench/hostile_input.py [--mb 10]
    uv run python bench/hostile_input.py --quick   # 2 MB (CI's check that it runs)

Starts the server as MCP clients do, waits for it to answer a search, then times, from
the first byte sent to the whole answer read back:

- a ``memory_add`` whose text is ``--mb`` MB (refused: the limit is 32,000 characters);
- a line nested 990 deep (refused with -32700) and a line with a lone surrogate (-32602);
- a normal ``memory_search`` right after, to show the server is unharmed.

    RESULT big_argument_mb=10 refuse_big_s=... refuse_deep_ms=... refuse_surrogate_ms=... search_after_ms=...
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="2 MB instead of --mb")
    args = parser.parse_args()
    size_mb = 2.0 if args.quick else args.mb
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "MEMCUBE_HOME": home, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdin and proc.stdout

        def send(line: bytes) -> None:
            proc.stdin.write(line + b"\n")
            proc.stdin.flush()

        def answer(timeout: float = 120) -> dict:
            ready, _, _ = select.select([proc.stdout], [], [], timeout)
            assert ready, "no answer"
            return json.loads(proc.stdout.readline())

        def timed(line: bytes) -> tuple[float, dict]:
            start = time.perf_counter()
            send(line)
            reply = answer()
            return time.perf_counter() - start, reply

        def call(id_: int, tool: str, arguments: dict) -> bytes:
            return json.dumps(
                {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
            ).encode()

        send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 0,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "bench", "version": "1"},
                    },
                }
            ).encode()
        )
        answer()
        send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        timed(call(1, "memory_search", {"query": "warm up"}))
        big_s, big = timed(call(2, "memory_add", {"text": "x" * int(size_mb * 1024 * 1024)}))
        assert big["result"]["isError"], big
        deep_s, deep = timed(b'{"jsonrpc":"2.0","id":3,"method":"ping","params":{"a":' + b"[" * 990 + b"]" * 990 + b"}}")
        assert deep["error"]["code"] == -32700, deep
        surrogate_s, surrogate = timed(call(4, "memory_add", {"text": "\ud800"}))  # json.dumps writes it as the escape \ud800
        assert surrogate["error"]["code"] == -32602, surrogate
        search_s, search = timed(call(5, "memory_search", {"query": "anything"}))
        assert not search["result"]["isError"], search
        proc.stdin.close()
        proc.wait(timeout=60)
    print(
        f"RESULT big_argument_mb={size_mb:g} refuse_big_s={big_s:.2f} refuse_deep_ms={deep_s * 1000:.1f} "
        f"refuse_surrogate_ms={surrogate_s * 1000:.1f} search_after_ms={search_s * 1000:.1f}"
    )


if __name__ == "__main__":
    main()
