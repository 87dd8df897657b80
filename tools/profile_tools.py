"""Goals, tasks and the profile: progress on tasks, the start-of-conversation view of the user."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from memory import Memory
from memory.defaults import DEFAULT_CUBE
from memory.models import FeedbackInput
from memory.profile import DEFAULT_BUDGET_TOKENS, Profile

from .resources import JSON, _json
from .runtime import ToolRuntime
from .strict import Count


class TasksResult(BaseModel):
    goals: list[Memory]
    tasks: list[Memory]


def register(mcp: MCPServer, runtime: ToolRuntime) -> None:
    @mcp.tool(
        annotations=ToolAnnotations(
            title="Record progress", read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        )
    )
    async def memory_progress(
        ctx: Context,
        id: Annotated[str, Field(description="the task or goal")],
        state: Annotated[
            str | None, Field(description="tasks: todo, in_progress, blocked, done; goals: active, achieved, dropped")
        ] = None,
        feedback: Annotated[
            FeedbackInput | None, Field(description="a log entry: {tried: what was done, result: what came of it, at?}")
        ] = None,
        due_at: Annotated[str | None, Field(description="a new due date, ISO 8601")] = None,
        cube: str = DEFAULT_CUBE,
    ) -> Memory:
        """Record progress on a task or goal: change its state and/or add a feedback entry (what was
        tried, what happened). Each change is a new version; the task keeps its whole log."""
        client = runtime.client_name(ctx)
        memory = await runtime.call(
            lambda: runtime.cube(cube).progress(id, state=state, feedback=feedback, due_at=due_at, client=client)
        )
        await runtime.changed(ctx, cube, [id])
        runtime.observe(ctx, "changed", cube, [id])
        return memory

    @mcp.tool(annotations=ToolAnnotations(title="User profile", read_only_hint=True, open_world_hint=False))
    async def memory_profile(
        cube: str = DEFAULT_CUBE,
        role: Annotated[str | None, Field(description="only this role (e.g. work, home) plus memories without a role")] = None,
        budget_tokens: Annotated[
            Count, Field(ge=100, le=20_000, description="size limit of the profile text")
        ] = DEFAULT_BUDGET_TOKENS,
        now: Annotated[str | None, Field(description="reference time, ISO 8601 (default: now)")] = None,
    ) -> Profile:
        """What to know about the user at the start of a conversation: active goals, open tasks with their
        latest feedback, upcoming dated items, preferences by role, recently finished tasks, the facts
        used most. Most important first, within the token budget, each line with its memory id."""
        return await runtime.call(lambda: runtime.cube(cube).profile(role=role, budget_tokens=budget_tokens, now=now))

    @mcp.resource("memory://{cube}/profile", mime_type=JSON)
    async def profile(cube: str) -> str:
        """The user's profile (goals, tasks, preferences, facts) for the start of a conversation."""
        return _json(await runtime.read_resource(lambda: runtime.cube(cube).profile()))

    @mcp.resource("memory://{cube}/profile/{role}", mime_type=JSON)
    async def profile_for_role(cube: str, role: str) -> str:
        """The profile seen from one role (e.g. work, home): that role's memories and those without a role."""
        return _json(await runtime.read_resource(lambda: runtime.cube(cube).profile(role=role)))

    @mcp.resource("memory://{cube}/tasks", mime_type=JSON)
    async def tasks(cube: str) -> str:
        """Goals and tasks with their state, due date and feedback log, open ones first."""

        def read() -> TasksResult:
            items = runtime.cube(cube).tasks()
            return TasksResult(goals=[m for m in items if m.type == "goal"], tasks=[m for m in items if m.type == "task"])

        return _json(await runtime.read_resource(read))

    @mcp.prompt()
    async def start(cube: str = DEFAULT_CUBE, role: str = "") -> str:
        """Start a conversation knowing the user: loads their profile (goals, open tasks, preferences)."""
        result = await runtime.call(lambda: runtime.cube(cube).profile(role=role or None))
        return (
            f"{result.text}\n\nUse this as background for the conversation. Cite memory ids when you rely on them; "
            "record progress on tasks with memory_progress and save new preferences with memory_add "
            "(type preference, with subject and role) so that older ones are superseded."
        )
