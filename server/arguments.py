"""Unknown tool arguments are refused by name, not ignored (issue 13).

The SDK builds each tool's argument model from its function and drops names it does not
know, so ``memory_delete(ids=..., purge_all=true)`` ran as a tombstone while the client
believed otherwise. This middleware compares a call's argument names with the tool's
published ``inputSchema`` (the same list the client sees in ``tools/list``) and answers
with a tool error naming the unknown ones.
"""

from __future__ import annotations

from typing import Any

from mcp.types import CallToolResult, TextContent


class UnknownArguments:
    def __init__(self, mcp: Any) -> None:
        self._mcp = mcp
        self._known: dict[str, frozenset[str]] = {}

    async def _names(self, tool: str) -> frozenset[str] | None:
        if tool not in self._known:
            for listed in await self._mcp.list_tools():  # MCPServer.list_tools: the published tools
                self._known[listed.name] = frozenset((listed.input_schema or {}).get("properties", {}))
        return self._known.get(tool)

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        params = getattr(ctx, "params", None)
        if getattr(ctx, "method", None) == "tools/call" and isinstance(params, dict):
            tool, arguments = params.get("name"), params.get("arguments")
            if isinstance(tool, str) and isinstance(arguments, dict):
                known = await self._names(tool)
                unknown = sorted(set(arguments) - known) if known is not None else []
                if known is not None and unknown:
                    shown = ", ".join(repr(name[:64]) for name in unknown[:10])
                    message = f"{tool} takes no argument {shown}; its arguments are: {', '.join(sorted(known))}"
                    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)
        return await call_next(ctx)
