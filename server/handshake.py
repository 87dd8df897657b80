"""Record the real server's answers to the handshake-era discovery requests.

``server/handshake_snapshot.json`` holds, per handshake protocol version, what the real
server answers to ``initialize``, ``tools/list``, ``prompts/list``, ``resources/list`` and
``resources/templates/list``. The stdio front replays them while the SDK is still
loading. ``tests/test_fast_start.py`` records a live server and compares, so a change to
a tool, prompt or resource fails the tests until the recording is refreshed:

    uv run python -m server.handshake --write    # rewrite the recording
    uv run python -m server.handshake --check    # exit 1 when it is stale
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from .recording import publish, scratch_server
from .stdio_front import ANSWERABLE, SNAPSHOT_PATH

CLIENT_INFO = {"name": "memcube-handshake-recorder", "version": "1"}


def record() -> dict[str, Any]:
    import anyio
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    from .backend import serve_lines

    snapshot: dict[str, Any] = {}
    with scratch_server() as mcp:
        for version in HANDSHAKE_PROTOCOL_VERSIONS:
            requests: list[dict[str, Any]] = [
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": CLIENT_INFO},
                },
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                *({"jsonrpc": "2.0", "id": n, "method": m} for n, m in enumerate(ANSWERABLE, start=2)),
            ]
            answers: dict[int, Any] = {}
            answered = threading.Condition()

            def source(pending: list[dict[str, Any]] = requests) -> str | None:
                if not pending:
                    return None
                message = pending.pop(0)
                if "id" in message:
                    with answered:
                        answered.wait_for(lambda: all(i in answers for i in range(1, message["id"])), timeout=30)
                return json.dumps(message)

            def sink(line: str) -> None:
                message = json.loads(line)
                if "id" in message:
                    with answered:
                        answers[message["id"]] = message
                        answered.notify_all()

            def source_after_last(src=source) -> str | None:
                line = src()
                if line is None:
                    with answered:
                        answered.wait_for(lambda: len(answers) == 1 + len(ANSWERABLE), timeout=30)
                return line

            anyio.run(serve_lines, mcp, source_after_last, sink)
            recorded = {"initialize": answers[1]["result"]}
            for n, method in enumerate(ANSWERABLE, start=2):
                if "result" in answers[n]:
                    recorded[method] = answers[n]["result"]
            snapshot[version] = recorded
    return snapshot


def stored_form(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Each distinct answer once, and per version which answer serves each method (see ``load_snapshot``)."""
    answers: dict[str, Any] = {}
    versions: dict[str, dict[str, str]] = {}
    for version in sorted(snapshot):
        for method, answer in sorted(snapshot[version].items()):
            key = next((k for k, a in answers.items() if k.split("@")[0] == method and a == answer), None)
            if key is None:
                key = method if method not in answers else f"{method}@{version}"
                answers[key] = answer
            versions.setdefault(version, {})[method] = key
    return {"answers": answers, "versions": versions}


def main() -> int:
    text = json.dumps(stored_form(record()), indent=1, sort_keys=True) + "\n"
    return publish(text, SNAPSHOT_PATH, sys.argv[1:], module="server.handshake")


if __name__ == "__main__":
    sys.exit(main())
