"""Checking each JSON-RPC line from the stdio client before anything else reads it (issue 13).

Standard library only: the stdio front imports it before the SDK has loaded. A line is
parsed with bounded nesting, and a message the real server cannot take (bad JSON, a lone
surrogate in a string, a batch, an object as ``id``, ``params`` that is not an object)
gets the JSON-RPC error reply it is owed instead of silence, so a client never hangs,
and is not forwarded. One hostile line must never end the process.
"""

from __future__ import annotations

import json
from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
MAX_DEPTH = 64  # nesting of arrays and objects; MCP messages use a handful of levels
# The largest batch memory_add takes (500 memories of 32,000 characters) fits with room to spare.
MAX_LINE_BYTES = 128 * 1024 * 1024
TOO_LONG = b"\x00too long"  # what the reader hands on in place of a longer line


class BadMessage(Exception):
    def __init__(self, code: int, message: str, id_: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.id = id_

    def reply(self) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": self.id, "error": {"code": self.code, "message": str(self)}}


def read_message(raw: bytes) -> dict[str, Any] | None:
    """The message on one line, checked; None for a blank line. Raises ``BadMessage``."""
    if raw == TOO_LONG:
        raise BadMessage(INVALID_REQUEST, f"invalid request: a message may be at most {MAX_LINE_BYTES // (1024 * 1024)} MB")
    try:
        line = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadMessage(PARSE_ERROR, "parse error: the line is not UTF-8 text") from None
    if not line:
        return None
    try:
        message = json.loads(line)
    except RecursionError:
        raise BadMessage(PARSE_ERROR, f"parse error: JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise BadMessage(PARSE_ERROR, f"parse error: {exc}") from None
    if isinstance(message, list):
        raise BadMessage(INVALID_REQUEST, "invalid request: JSON-RPC batches are not supported; send one message per line")
    if not isinstance(message, dict):
        raise BadMessage(INVALID_REQUEST, "invalid request: a message is a JSON object")
    id_ = message.get("id")
    if "id" in message and (isinstance(id_, bool) or not isinstance(id_, str | int)):
        raise BadMessage(INVALID_REQUEST, "invalid request: 'id' must be a string or an integer")
    reply_id = id_ if "id" in message else None
    if message.get("jsonrpc") != "2.0":
        raise BadMessage(INVALID_REQUEST, "invalid request: 'jsonrpc' must be \"2.0\"", reply_id)
    if "method" in message:
        if not isinstance(message["method"], str):
            raise BadMessage(INVALID_REQUEST, "invalid request: 'method' must be a string", reply_id)
        if "params" in message and not isinstance(message["params"], dict):
            raise BadMessage(INVALID_PARAMS, "invalid params: 'params' must be a JSON object", reply_id)
    elif "id" not in message or not ("result" in message or "error" in message):
        raise BadMessage(INVALID_REQUEST, "invalid request: neither a request, a notification nor a response", reply_id)
    problem = _check_values(message.get("params"), "params")
    if problem is None:
        problem = _check_values({k: v for k, v in message.items() if k != "params"}, "message")
        code = INVALID_REQUEST
    else:
        code = INVALID_PARAMS
    if problem is not None:
        raise BadMessage(code, problem, reply_id)
    return message


def _check_values(value: Any, where: str) -> str | None:
    """Bounded nesting and encodable strings, walked without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return f"invalid {'params' if where == 'params' else 'request'}: a string holds a lone surrogate (U+D800 to U+DFFF); send valid Unicode"
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return f"invalid {'params' if where == 'params' else 'request'}: JSON nested deeper than {MAX_DEPTH} levels"
            if isinstance(item, dict):
                stack.extend((k, depth) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
