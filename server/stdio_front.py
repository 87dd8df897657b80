"""The stdio transport of ``memcube serve``, with a fast start.

Importing the MCP SDK and its pydantic models takes 2-3 s on a small laptop, and an MCP
client (Claude Desktop among them) waits for ``initialize`` and ``tools/list`` before it
shows the server as ready. This module uses the standard library only. It owns stdin and
stdout, starts the real server (the SDK's ``MCPServer``) in a background thread, and
forwards every message to it in order. Until that server is running, it answers the
handshake-era discovery requests (``initialize``, ``tools/list``, ``prompts/list``,
``resources/list``, ``resources/templates/list``, ``ping``) itself, from
``handshake_snapshot.json``: a recording of the real server's own answers, which a test
compares with a live server so the two cannot drift. Those requests are still forwarded,
so the real server's session goes through the same handshake; its duplicate answers are
dropped. Every other request simply waits for the real server.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .wire import MAX_LINE_BYTES, PARSE_ERROR, TOO_LONG, BadMessage, read_message

log = logging.getLogger(__name__)

SNAPSHOT_PATH = Path(__file__).with_name("handshake_snapshot.json")
ANSWERABLE = ("tools/list", "prompts/list", "resources/list", "resources/templates/list")

# A backend serves MCP until its input ends: it reads lines with the first callable
# (None at end of input) and writes lines with the second.
Backend = Callable[[Callable[[], "str | None"], Callable[[str], None]], None]


def load_snapshot(path: Path = SNAPSHOT_PATH) -> dict[str, Any]:
    """The recorded answers by protocol version and method.

    The file keeps each distinct answer once (``answers``) and, per version, which one
    answers each method (``versions``): the lists are the same in every version.
    """
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        answers = stored["answers"]
        return {
            version: {method: answers[key] for method, key in methods.items()} for version, methods in stored["versions"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        log.warning("no usable handshake snapshot at %s: the first answers wait for the full server", path)
        return {}


class StdioFront:
    def __init__(self, backend: Backend, snapshot: dict[str, Any], wire_in: BinaryIO, wire_out: BinaryIO) -> None:
        self._backend = backend
        self._snapshot = snapshot
        self._wire_in = wire_in
        self._wire_out = wire_out
        self._write_lock = threading.Lock()
        self._to_backend: queue.Queue[str | None] = queue.Queue()
        self._answered: Counter[str] = Counter()  # ids of requests already answered here
        self._answered_lock = threading.Lock()
        self._backend_ready = threading.Event()
        self._version: str | None = None
        self.answered_early = 0

    # -- wire ------------------------------------------------------------------------

    def _send(self, line: str) -> None:
        with self._write_lock:
            self._wire_out.write(line.encode("utf-8") + b"\n")
            self._wire_out.flush()

    def _from_backend(self, line: str) -> None:
        """A line the real server wrote: pass it on unless it answers a request answered already."""
        if self._answered:
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            if isinstance(message, dict) and "id" in message and ("result" in message or "error" in message):
                key = json.dumps(message["id"])
                with self._answered_lock:
                    if self._answered[key]:
                        self._answered[key] -= 1
                        if not self._answered[key]:
                            del self._answered[key]
                        return
        self._send(line)

    def _next_for_backend(self) -> str | None:
        self._backend_ready.set()
        return self._to_backend.get()

    # -- early answers ------------------------------------------------------------------

    def _early_answer(self, message: Any) -> dict[str, Any] | None:
        if self._backend_ready.is_set() or not isinstance(message, dict) or "id" not in message:
            return None
        method = message.get("method")
        if method == "initialize":
            params = message.get("params") or {}
            requested = params.get("protocolVersion")
            recorded = self._snapshot.get(requested) if isinstance(requested, str) else None
            if not recorded:
                return None  # a version the recording lacks: let the real server negotiate
            capabilities = params.get("capabilities")
            if isinstance(capabilities, dict) and capabilities.get("extensions"):
                return None  # extensions (MCP Apps): the real server makes the listings for this client
            self._version = requested
            return recorded["initialize"]
        if method == "ping":
            return {}
        if method in ANSWERABLE and self._version is not None:
            return self._snapshot[self._version].get(method)
        return None

    # -- main loop --------------------------------------------------------------------

    def serve(self) -> None:
        thread = threading.Thread(target=self._run_backend, name="mcp-server", daemon=True)
        thread.start()
        for raw in _lines(self._wire_in):
            try:
                message = read_message(raw)
            except BadMessage as bad:
                # Answered here and not forwarded: the real server would drop it without a reply.
                log.warning("refused a message from the client: %s", bad)
                if bad.id is not None or bad.code == PARSE_ERROR or not _looks_like_notification(raw):
                    self._send(json.dumps(bad.reply(), separators=(",", ":")))
                continue
            if message is None:
                continue
            result = self._early_answer(message)
            if result is not None:
                key = json.dumps(message["id"])
                with self._answered_lock:
                    self._answered[key] += 1
                self._send(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}, separators=(",", ":")))
                self.answered_early += 1
            self._to_backend.put(raw.decode("utf-8").strip())
        self._to_backend.put(None)
        thread.join()

    def _run_backend(self) -> None:
        try:
            self._backend(self._next_for_backend, self._from_backend)
        except BaseException as exc:
            from memory.errors import MemCubeError  # imported by the backend by now; not before (a fast start)

            if isinstance(exc, MemCubeError):  # a reason a person can act on (a store out of reach): one line
                log.error("%s", exc)
            else:
                log.exception("the MCP server stopped with an error")
            os._exit(1)


def _lines(wire: BinaryIO) -> Iterator[bytes]:
    """The input's lines; one longer than ``MAX_LINE_BYTES`` is skipped and yielded as b"\x00too long"."""
    while True:
        line = wire.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := wire.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield TOO_LONG
            continue
        yield line


def _looks_like_notification(raw: bytes) -> bool:
    """A well-formed message without an id is a notification, and JSON-RPC never answers one."""
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return isinstance(message, dict) and "id" not in message and "method" in message


def claim_stdio() -> tuple[BinaryIO, BinaryIO]:
    """Take stdin/stdout for the MCP wire; point fds 0/1 at /dev/null and stderr so that
    nothing else in the process (a library's print, a child process) can corrupt the channel."""
    # Buffered: an unbuffered file reads a line one byte per system call (issue 13: a 10 MB
    # argument took 11 s to arrive). A buffered read still returns each line as it comes.
    wire_in = os.fdopen(os.dup(0), "rb")
    wire_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return wire_in, wire_out


def serve_stdio(home: Path | None) -> None:
    """``memcube serve``: the fast front plus the real server over ``home``."""
    from .backend import stdio_backend

    wire_in, wire_out = claim_stdio()
    front = StdioFront(stdio_backend(home), load_snapshot(), wire_in, wire_out)
    front.serve()
