"""MCP prompts: recall (memories as context for a topic) and remember (what to save)."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from memory import SearchQuery
from memory.config import DEFAULT_CUBE

from .runtime import ToolRuntime

REMEMBER_GUIDE = """Review this conversation and save what will matter in a later conversation, with memory_add.

Save: stable facts about the user and the people, projects and places they mention; preferences
(type "preference"); decisions and commitments; tasks and their outcome (type "task"); events with
their date (type "event", occurred_at in ISO 8601).
Skip: small talk, things true only for this conversation, anything the user asked you not to keep.

Write each memory as one self-contained statement that makes sense without the conversation
("Alice prefers tea to coffee", not "she likes it"). Pass the people, places and projects as
entities, and facts between them as relations ({{subject, predicate, object}}).
Before adding, search for an existing memory on the same point: correct it with memory_update
rather than adding a contradicting one.{focus}"""


def register(mcp: MCPServer, runtime: ToolRuntime) -> None:
    @mcp.prompt()
    async def recall(
        topic: Annotated[str, Field(description="what the conversation is about")],
        cube: str = DEFAULT_CUBE,
        limit: str = "8",
    ) -> str:
        """Load the memories relevant to a topic into the conversation as context, with their ids."""
        try:
            count = max(1, min(50, int(limit)))
        except ValueError:
            count = 8
        hits = await runtime.call(lambda: runtime.cube(cube).search(SearchQuery(query=topic, limit=count)).hits)
        if not hits:
            return f"No memories about {topic!r} in cube '{cube}' yet."
        lines = [f"What I remember about {topic!r} (cube '{cube}'):"]
        for hit in hits:
            when = f" ({hit.occurred_at[:10]})" if hit.occurred_at else ""
            lines.append(f"- [{hit.id}]{when} {hit.text}")
        lines.append("Use these as background; cite the ids when you rely on one, and correct stale ones with memory_update.")
        return "\n".join(lines)

    @mcp.prompt()
    async def remember(focus: Annotated[str, Field(description="optional: what to pay most attention to")] = "") -> str:
        """Guide the assistant to save what matters from the conversation with memory_add."""
        return REMEMBER_GUIDE.format(focus=f"\n\nPay most attention to: {focus}" if focus else "")
