"""Access rules for completion/complete: a client completes only into cubes it may read.

Completion reveals names (entities, tags, roles, cube names); the ``[access]`` rules that
guard reads guard them too. A completion aimed at a cube the client may not read gets no
values, and a cube-name completion lists only the cubes it may read.
"""

from __future__ import annotations

from typing import Any

from mcp.types import CompleteResult, Completion

from memory import MemoryHome
from memory.config import CUBE_NAME_PATTERN, DEFAULT_CUBE

from .access import client_name


class CompletionAccess:
    def __init__(self, home: MemoryHome) -> None:
        self.home = home

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        if getattr(ctx, "method", None) != "completion/complete":
            return await call_next(ctx)
        params = getattr(ctx, "params", None) or {}
        rules = self.home.access_rules()
        client = client_name(ctx)
        context = params.get("context") if isinstance(params, dict) else None
        arguments = (context or {}).get("arguments") or {} if isinstance(context, dict) else {}
        cube = arguments.get("cube") or DEFAULT_CUBE
        argument = (params.get("argument") or {}).get("name") if isinstance(params, dict) else None
        empty = CompleteResult(completion=Completion(values=[], total=0, has_more=False))
        if argument != "cube" and (
            not isinstance(cube, str) or not CUBE_NAME_PATTERN.match(cube) or not rules.allows(client, cube, "read")
        ):
            return empty
        result = await call_next(ctx)
        if argument == "cube":
            completion = result.get("completion") if isinstance(result, dict) else getattr(result, "completion", None)
            values = completion.get("values") if isinstance(completion, dict) else getattr(completion, "values", None)
            if values is None:  # an unexpected shape: refuse to leak rather than pass it through
                return empty
            allowed = [v for v in values if rules.allows(client, v, "read")]
            return CompleteResult(completion=Completion(values=allowed, total=len(allowed), has_more=False))
        return result
