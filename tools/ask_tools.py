"""memory_ask (the local model answers from memories) and the scheduler's working-set resource.

The answer is also an event for the scheduler (``queried``, with the memories the answer read).
"""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from memory.activation.base import ModelIdentity
from memory.activation.scheduler import Scheduler
from memory.config import DEFAULT_CUBE

from .runtime import ToolRuntime
from .strict import Count

CubeName = Annotated[str, Field(description="the cube (memory namespace) to use; letters, digits, '-' or '_'")]
JSON = "application/json"


class AskResult(BaseModel):
    answer: str = Field(description="the local model's answer; ids it cites that the prompt did not hold are taken out")
    cited_ids: list[str] = Field(
        description="the memories the answer uses, in prompt order: those whose ids it writes (checked), and those its "
        "specific content (words, names, numbers, dates the question did not say) comes from; empty when it uses none"
    )
    context_ids: list[str] = Field(
        description="every memory the model was given to read (the retrieved hits and the warm cache's), in prompt order"
    )
    mentioned_ids: list[str] = Field(
        description="the memory ids the answer text itself writes, checked against the prompt (a subset of cited_ids)"
    )
    stopped: Literal["end", "header", "repeat", "budget"] = Field(
        description="why the answer ended: the model's end of turn, a new prompt header, a repetition cut off, or max_tokens"
    )
    reused_tokens: int = Field(description="prompt tokens taken from a warm KV cache")
    prefilled_tokens: int = Field(description="prompt tokens computed for this call")
    ttft_ms: float = Field(description="time to the first answer token")
    model: ModelIdentity


def register(mcp: MCPServer, runtime: ToolRuntime, scheduler: Scheduler) -> None:
    @mcp.tool(annotations=ToolAnnotations(title="Ask the local model", read_only_hint=True, open_world_hint=False))
    async def memory_ask(
        ctx: Context,
        question: Annotated[str, Field(description="the question, in plain words")],
        cube: CubeName = DEFAULT_CUBE,
        limit: Annotated[Count, Field(ge=1, le=50, description="how many memories to retrieve for the answer")] = 8,
        max_tokens: Annotated[Count | None, Field(ge=1, le=4096, description="longest answer, in tokens")] = None,
    ) -> AskResult:
        """Answer a question with the local language model, from the memories retrieved for it. `cited_ids`
        are the memories the answer actually uses (checked citations and attribution of its content);
        `context_ids` all it was given to read (before this field, `cited_ids` held those). The answer
        ends when it is done (end of turn, a new question, repetition). Starts from the KV cache the
        scheduler warmed when it holds those memories. Needs a local model ([local_model] path in
        config.toml or MEMCUBE_LOCAL_MODEL)."""
        if not question.strip():
            from mcp.server.mcpserver.exceptions import ToolError

            raise ToolError("give a question")
        outcome = await runtime.call(lambda: scheduler.ask(cube, question, limit=limit, max_tokens=max_tokens))
        runtime.observe(ctx, "queried", cube, outcome.context_ids, query=question)
        return AskResult(
            answer=outcome.answer,
            cited_ids=outcome.cited_ids,
            context_ids=outcome.context_ids,
            mentioned_ids=outcome.mentioned_ids,
            stopped=outcome.stopped,
            reused_tokens=outcome.reused_tokens,
            prefilled_tokens=outcome.prefilled_tokens,
            ttft_ms=outcome.ttft_ms,
            model=outcome.model,
        )

    @mcp.resource("memory://{cube}/working-set", mime_type=JSON)
    async def working_set(cube: str) -> str:
        """What the scheduler keeps warm for a cube (working set, KV caches) and how well it predicts
        (hits, misses, hit rate against a keep-the-last-results baseline, prefill tokens saved)."""
        return (await runtime.read_resource(lambda: scheduler.status(cube))).model_dump_json(indent=2)
