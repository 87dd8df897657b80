"""``resources/subscribe`` for 2025-era clients (Claude Desktop among them), as a middleware.

The 2026 protocol replaced it with ``subscriptions/listen``, which the SDK serves; its
``MCPServer`` no longer takes a handler for the old method. The SDK's own advice for
wrapping core behaviour is the middleware chain, which sees every request before lookup:
this one answers ``resources/subscribe`` and ``resources/unsubscribe`` on handshake-era
sessions, and says so in the ``initialize`` answer (``resources.subscribe``). Access
control runs before it in the chain, so a client subscribes only to what it may read.
``ToolRuntime.changed`` sends ``notifications/resources/updated`` to the subscribers.
"""

from __future__ import annotations

from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from tools.subscribers import Subscribers

METHODS = ("resources/subscribe", "resources/unsubscribe")
MAX_URI_CHARS = 2048


class LegacySubscriptions:
    """A server middleware: records, per resource URI, the clients that subscribed to it."""

    def __init__(self, subscribers: Subscribers) -> None:
        self.subscribers = subscribers

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        method = getattr(ctx, "method", None)
        if method == "initialize":
            return _advertised(await call_next(ctx))
        if method not in METHODS:
            return await call_next(ctx)
        if getattr(ctx, "protocol_version", None) not in HANDSHAKE_PROTOCOL_VERSIONS:
            raise MCPError(METHOD_NOT_FOUND, "Method not found", data=method)
        params = ctx.params if isinstance(ctx.params, dict) else {}
        uri = params.get("uri")
        if not isinstance(uri, str) or not uri or len(uri) > MAX_URI_CHARS:
            raise MCPError(
                INVALID_PARAMS, f"{method} needs 'uri': the resource URI, a string of at most {MAX_URI_CHARS} characters"
            )
        if method == "resources/subscribe":
            self.subscribers.add(uri, ctx.session)
        else:
            self.subscribers.remove(uri, ctx.session)
        return {}


def _advertised(result: Any) -> Any:
    """The ``initialize`` answer, saying that resources can be subscribed to."""
    if isinstance(result, dict):
        capabilities = result.get("capabilities")
        if isinstance(capabilities, dict) and isinstance(capabilities.get("resources"), dict):
            capabilities["resources"]["subscribe"] = True
    return result
