"""``logging/setLevel`` for 2025-era clients, as a middleware.

The 2026 protocol removed the method and the SDK's ``MCPServer`` takes no handler for it;
the SDK's way to wrap core behaviour is the middleware chain (as ``server.subscriptions``
does for ``resources/subscribe``). On handshake-era sessions this answers the method and
says so in the ``initialize`` answer (the ``logging`` capability). The level becomes the
level of MemCube's own loggers, which write to stderr: MemCube sends no log messages over
the MCP channel, so the level a client sets governs what the server's log keeps.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

METHOD = "logging/setLevel"
# MCP (syslog) levels -> Python logging levels.
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}
LOGGERS = ("memory", "tools", "server")


class LogLevel:
    """A server middleware: serves ``logging/setLevel`` and advertises ``logging`` to legacy clients."""

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        method = getattr(ctx, "method", None)
        if method == "initialize":
            return _advertised(await call_next(ctx))
        if method != METHOD:
            return await call_next(ctx)
        if getattr(ctx, "protocol_version", None) not in HANDSHAKE_PROTOCOL_VERSIONS:
            raise MCPError(METHOD_NOT_FOUND, "Method not found", data=method)
        params = ctx.params if isinstance(ctx.params, dict) else {}
        level = LEVELS.get(str(params.get("level", "")))
        if level is None:
            raise MCPError(INVALID_PARAMS, f"level must be one of {', '.join(LEVELS)}")
        for name in LOGGERS:
            logging.getLogger(name).setLevel(level)
        return {}


def _advertised(result: Any) -> Any:
    if isinstance(result, dict):
        capabilities = result.get("capabilities")
        if isinstance(capabilities, dict):
            capabilities.setdefault("logging", {})
    return result
