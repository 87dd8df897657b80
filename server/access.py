"""Access control at the MCP boundary: one middleware sees every call before any handler.

It names the cube a call is aimed at (a tool's ``cube`` argument, a resource URI's host,
a prompt's ``cube`` argument), asks the home's ``[access]`` rules whether this client may
read or write it, and refuses with a clear error otherwise. Refusals are recorded in the
cube they were aimed at (``access_denials``). ``memory://cubes`` lists only the cubes the
client may read.

No answer tells a client that a cube it may not read exists (issue 26): reading a cube it
is refused and reading one that does not exist get the same message (``hidden``), for every
spelling of the name, and no error lists cubes.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

import anyio
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent
from mcp_types.jsonrpc import INVALID_PARAMS

from memory import MemoryHome
from memory.access_rules import hidden
from memory.config import check_cube_name
from memory.defaults import DEFAULT_CUBE
from memory.errors import InvalidInput

from .uris import CUBE_LIST_URI, NonCanonicalUri, is_memory_uri, parse_memory_uri

log = logging.getLogger(__name__)

# Tools that only read. Any other tool (including ones added later) needs write access.
READ_ONLY_TOOLS = frozenset({"memory_search", "memory_get", "memory_history", "memory_graph", "memory_profile", "memory_ask"})
READ_PROMPTS = frozenset({"recall", "start"})
# The one tool that makes the cube it names; every other call needs the cube to exist.
CREATING_TOOLS = frozenset({"memory_add"})


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
    def rules(self):  # read on each call: the home's config, or the store's rules (refreshed in the background)
        return self.home.access_rules()

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        method = getattr(ctx, "method", None)
        params = getattr(ctx, "params", None) or {}
        try:
            targets = _targets(method, params)
        except Refused as refusal:
            if method == "tools/call":
                return CallToolResult(content=[TextContent(type="text", text=str(refusal))], is_error=True)
            raise MCPError(INVALID_PARAMS, str(refusal)) from None
        if targets is LISTING:
            return self._only_readable(await call_next(ctx), client_name(ctx))
        client = client_name(ctx)
        creates = method == "tools/call" and isinstance(params, dict) and params.get("name") in CREATING_TOOLS
        must_exist = method in ("tools/call", "resources/read", "prompts/get") and not creates
        for cube, need, action in targets or ():
            if self.rules.allows(client, cube, need):
                if not must_exist or not await anyio.to_thread.run_sync(self.home.unknown, cube):
                    continue
                message = hidden(client, cube, self.home.access_rules_place)
            else:
                await anyio.to_thread.run_sync(self._record, cube, client, action, need)
                message = self._refusal(client, cube, need)
            if method == "tools/call":
                return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
            raise MCPError(INVALID_PARAMS, message)
        return await call_next(ctx)

    def _refusal(self, client: str | None, cube: str, need: str) -> str:
        level = self.rules.level(client, cube)
        if level == "none":  # not even readable: said as of a cube that does not exist
            return hidden(client, cube, self.home.access_rules_place)
        return (
            f"client {client or '(unnamed)'!r} may not {need} cube '{cube}'"
            f" (its access is '{level}'); {self.home.access_rules_place} grant it"
        )

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


class Refused(Exception):
    """A call whose target cannot be read canonically: refused before any handler sees it."""


Target = tuple[str, Literal["read", "write"], str]
LISTING: list[Target] = []  # sentinel: memory://cubes, answered then filtered


def _cube_argument(arguments: Any) -> str:
    cube = arguments.get("cube", DEFAULT_CUBE) if isinstance(arguments, dict) else DEFAULT_CUBE
    try:
        return check_cube_name(cube)
    except InvalidInput as exc:
        raise Refused(str(exc)) from None


def _resource_target(uri: Any, action: str) -> Target | None:
    """The cube a resource URI reads, in the one spelling the handlers will see; None for the cube list."""
    if not isinstance(uri, str) or not is_memory_uri(uri):
        return None  # not ours: no handler of this server serves it, the SDK says so
    try:
        parsed = parse_memory_uri(uri)
    except NonCanonicalUri as exc:
        raise Refused(str(exc)) from None
    if parsed.cube is None:
        return None
    return parsed.cube, "read", f"{action} {uri[:200]}"


def _targets(method: str | None, params: Any) -> list[Target] | None:
    """What a call reads or writes: (cube, read|write, what) for each cube it is aimed at.

    ``LISTING`` for a read of memory://cubes; an empty list for calls aimed at no cube.
    Raises ``Refused`` for a call whose cube cannot be named canonically, so that no
    handler ever decodes a name that was not checked.
    """
    if not isinstance(params, dict):
        return []
    if method == "tools/call":
        name = params.get("name")
        if not isinstance(name, str):
            return []  # malformed: the SDK's validation answers it
        cube = _cube_argument(params.get("arguments") or {})
        return [(cube, "read" if name in READ_ONLY_TOOLS else "write", f"tools/call {name}")]
    if method in ("resources/read", "resources/subscribe"):
        uri = params.get("uri")
        if method == "resources/read" and isinstance(uri, str) and uri.rstrip("/") == CUBE_LIST_URI:
            return LISTING
        target = _resource_target(uri, method)
        return [target] if target else []
    if method == "subscriptions/listen":
        wanted = params.get("notifications")
        uris = wanted.get("resourceSubscriptions") if isinstance(wanted, dict) else None
        if not isinstance(uris, list):
            return []
        return [t for t in (_resource_target(u, method) for u in uris) if t]
    if method == "prompts/get":
        name = params.get("name")
        if name in READ_PROMPTS:
            return [(_cube_argument(params.get("arguments") or {}), "read", f"prompts/get {name}")]
    return []
