"""Access control at the MCP boundary: one middleware sees every call before any handler.

It names the cube a call is aimed at (a tool's ``cube`` argument, a resource URI's host,
a prompt's ``cube`` argument), asks the home's ``[access]`` rules whether this client may
read or write it, and refuses with a clear error otherwise. Refusals are recorded in the
cube they were aimed at (``access_denials``). ``memory://cubes`` lists only the cubes the
client may read.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent
from mcp_types.jsonrpc import INVALID_PARAMS

from memory import MemoryHome
from memory.config import CUBE_NAME_PATTERN
from memory.defaults import DEFAULT_CUBE

log = logging.getLogger(__name__)

# Tools that only read. Any other tool (including ones added later) needs write access.
READ_ONLY_TOOLS = frozenset({"memory_search", "memory_get", "memory_history", "memory_graph", "memory_profile", "memory_ask"})
READ_PROMPTS = frozenset({"recall", "start"})


def client_name(ctx: Any) -> str | None:
    """The caller: the HTTP token's principal when there is one, else MCP clientInfo's name."""
    principal = getattr(getattr(ctx, "request", None), "state", None)
    principal = getattr(principal, "memcube_principal", None) if principal is not None else None
    if principal:
        return str(principal)
    try:
        params = ctx.session.client_params
    except Exception:  # a context without a session: nobody to name
        return None
    if params is None or params.client_info is None:
        return None
    return params.client_info.name


class AccessControl:
    def __init__(self, home: MemoryHome) -> None:
        self.home = home

    @property
    def rules(self):  # read on each call: the rules live in the home's config
        return self.home.config.access

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        method = getattr(ctx, "method", None)
        params = getattr(ctx, "params", None) or {}
        if method == "resources/read" and isinstance(params, dict) and str(params.get("uri", "")).rstrip("/") == "memory://cubes":
            return self._only_readable(await call_next(ctx), client_name(ctx))
        target = _target(method, params)
        if target is None:
            return await call_next(ctx)
        cube, need, action = target
        client = client_name(ctx)
        if self.rules.allows(client, cube, need):
            return await call_next(ctx)
        await anyio.to_thread.run_sync(self._record, cube, client, action, need)
        message = (
            f"client {client or '(unnamed)'!r} may not {need} cube '{cube}'"
            f" (its access is '{self.rules.level(client, cube)}'); the [access] section of {self.home.root / 'config.toml'} grants it"
        )
        if method == "tools/call":
            return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
        raise MCPError(INVALID_PARAMS, message)

    def _record(self, cube: str, client: str | None, action: str, need: str) -> None:
        if cube not in self.home.cube_names():
            return  # nothing to record into: the cube does not exist
        try:
            self.home.cube(cube).store.record_denial(client=client, action=action, need=need)
        except Exception:  # recording must not turn a refusal into a crash
            log.exception("could not record a refused call in cube %s", cube)

    def _only_readable(self, result: Any, client: str | None) -> Any:
        try:
            contents = result.contents if hasattr(result, "contents") else result["contents"]
            item = contents[0]
            text = item.text if hasattr(item, "text") else item["text"]
            listed = [c for c in json.loads(text) if self.rules.allows(client, c["cube"], "read")]
            filtered = json.dumps(listed, indent=2, ensure_ascii=False)
            if hasattr(item, "text"):
                item.text = filtered
            else:
                item["text"] = filtered
        except Exception:  # an unexpected shape: refuse to leak rather than pass it through
            log.exception("could not filter memory://cubes")
            raise MCPError(INVALID_PARAMS, "the cube list could not be filtered for this client") from None
        return result


def _target(method: str | None, params: Any) -> tuple[str, Literal["read", "write"], str] | None:
    """(cube, read|write, what) for calls aimed at a cube; None for everything else."""
    if not isinstance(params, dict):
        return None
    if method == "tools/call":
        name = params.get("name")
        arguments = params.get("arguments") or {}
        cube = arguments.get("cube", DEFAULT_CUBE) if isinstance(arguments, dict) else DEFAULT_CUBE
        if not isinstance(name, str) or not isinstance(cube, str) or not CUBE_NAME_PATTERN.match(cube):
            return None  # malformed: the handler's validation answers it
        return cube, "read" if name in READ_ONLY_TOOLS else "write", f"tools/call {name}"
    if method == "resources/read":
        uri = params.get("uri")
        if not isinstance(uri, str):
            return None
        try:
            parts = urlsplit(uri)
        except ValueError:
            return None  # not a URI this server serves: the handler says so
        if parts.scheme != "memory" or not parts.netloc or parts.netloc == "cubes":
            return None
        if not CUBE_NAME_PATTERN.match(parts.netloc):
            return None
        return parts.netloc, "read", f"resources/read {uri[:200]}"
    if method == "prompts/get":
        name = params.get("name")
        arguments = params.get("arguments") or {}
        cube = arguments.get("cube", DEFAULT_CUBE) if isinstance(arguments, dict) else DEFAULT_CUBE
        if name in READ_PROMPTS and isinstance(cube, str) and CUBE_NAME_PATTERN.match(cube):
            return cube, "read", f"prompts/get {name}"
    return None
