"""memory_ask (the local model answers from memories) and the scheduler's working-set resource.

``observe`` turns every tool call into a scheduler event: it wraps the server's tool
dispatch once, so each tool family stays unaware of the scheduler.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from memory.activation.base import ModelIdentity
from memory.config import DEFAULT_CUBE
from memory.scheduler import Scheduler, ToolEvent

from .runtime import ToolRuntime
from .strict import Count

CubeName = Annotated[str, Field(description="the cube (memory namespace) to use; letters, digits, '-' or '_'")]
JSON = "application/json"


class AskResult(BaseModel):
    answer: str = Field(description="the local model's answer")
    cited_ids: list[str] = Field(description="the memories the answer was given to read (the retrieved hits and the warm cache's), in prompt order")
    mentioned_ids: list[str] = Field(description="the memory ids the answer text itself cites")
    reused_tokens: int = Field(description="prompt tokens taken from a warm KV cache")
    prefilled_tokens: int = Field(description="prompt tokens computed for this call")
    ttft_ms: float = Field(description="time to the first answer token")
    model: ModelIdentity


def register(mcp: MCPServer, runtime: ToolRuntime, scheduler: Scheduler) -> None:
    @mcp.tool(annotations=ToolAnnotations(title="Ask the local model", read_only_hint=True, open_world_hint=False))
    async def memory_ask(
        question: Annotated[str, Field(description="the question, in plain words")],
        cube: CubeName = DEFAULT_CUBE,
        limit: Annotated[Count, Field(ge=1, le=50, description="how many memories to retrieve for the answer")] = 8,
        max_tokens: Annotated[Count | None, Field(ge=1, le=4096, description="longest answer, in tokens")] = None,
    ) -> AskResult:
        """Answer a question with the local language model, from the memories retrieved for it, citing
        their ids. Starts from the KV cache the scheduler warmed when it holds those memories. Needs a
        local model ([local_model] path in config.toml or MEMCUBE_LOCAL_MODEL)."""
        if not question.strip():
            from mcp.server.mcpserver.exceptions import ToolError

            raise ToolError("give a question")
        outcome = await runtime.call(lambda: scheduler.ask(cube, question, limit=limit, max_tokens=max_tokens))
        return AskResult(
            answer=outcome.answer, cited_ids=outcome.context_ids, mentioned_ids=outcome.mentioned_ids,
            reused_tokens=outcome.reused_tokens, prefilled_tokens=outcome.prefilled_tokens, ttft_ms=outcome.ttft_ms,
            model=outcome.model,
        )

    @mcp.resource("memory://{cube}/working-set", mime_type=JSON)
    async def working_set(cube: str) -> str:
        """What the scheduler keeps warm for a cube (working set, KV caches) and how well it predicts
        (hits, misses, hit rate against a keep-the-last-results baseline, prefill tokens saved)."""
        return (await runtime.read_resource(lambda: scheduler.status(cube))).model_dump_json(indent=2)


def observe(mcp: MCPServer, scheduler: Scheduler) -> None:
    """Make every successful tool call a trigger on the scheduler's monitoring queue."""
    dispatch = mcp.call_tool

    async def call_tool(name: str, arguments: dict[str, Any], context: Context | None = None) -> Any:
        result = await dispatch(name, arguments, context)
        structured = getattr(result, "structured_content", None)
        if not getattr(result, "is_error", False) and isinstance(structured, dict):
            client = ToolRuntime.client_name(context) if context is not None else None
            scheduler.notify(event_for(name, arguments, structured, client))
            await anyio.lowlevel.checkpoint()
        return result

    mcp.call_tool = call_tool  # type: ignore[method-assign]


def event_for(tool: str, arguments: dict[str, Any], result: dict[str, Any], client: str | None) -> ToolEvent:
    ids: list[str] = []
    for key in ("hits", "memories", "results"):
        for item in result.get(key) or []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                ids.append(item["id"])
    for key in ("ids", "cited_ids"):
        ids += [i for i in result.get(key) or [] if isinstance(i, str)]
    if isinstance(result.get("id"), str):
        ids.append(result["id"])
    if tool == "memory_add":  # an exact duplicate is no new memory
        ids = [r["id"] for r in result.get("results", []) if r.get("created")] or []
    query = arguments.get("query") or arguments.get("question")
    return ToolEvent(
        tool=tool, cube=str(arguments.get("cube") or DEFAULT_CUBE), query=query if isinstance(query, str) else None,
        ids=list(dict.fromkeys(ids)), entities=[e for e in arguments.get("entities") or [] if isinstance(e, str)],
        session=arguments.get("session_id") if isinstance(arguments.get("session_id"), str) else None, client=client,
    )
