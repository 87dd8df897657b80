"""The core memory tools: add, search, get, update, delete, archive, restore, history."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from memory import AddOutcome, Memory, MemoryInput, MemoryPatch, SearchQuery
from memory.config import DEFAULT_CUBE
from memory.models import (
    MAX_CONTEXT_TURNS,
    MAX_LIMIT,
    ClearableName,
    Relation,
    SearchResult,
    VersionEntry,
    described,
    filter_described,
)

from .runtime import ToolRuntime
from .strict import Count, Flag, Fraction

CubeName = Annotated[str, Field(description="the cube (memory namespace) to use; letters, digits, '-' or '_'")]
Ids = Annotated[str | list[str], Field(description="one memory id or a list of them")]


class AddResult(BaseModel):
    ids: list[str] = Field(description="the memories' ids, in the order given (an existing id for an exact duplicate)")
    results: list[AddOutcome]


class MemoriesResult(BaseModel):
    memories: list[Memory]


class DeleteResult(BaseModel):
    ids: list[str]
    purged: bool = Field(description="true when the memories were erased for good, false when tombstoned")


class HistoryResult(BaseModel):
    id: str
    versions: list[VersionEntry]


def _id_list(ids: str | list[str]) -> list[str]:
    values = [ids] if isinstance(ids, str) else list(ids)
    if not values:
        raise ToolError("give at least one memory id")
    return values


def register(mcp: MCPServer, runtime: ToolRuntime) -> None:
    @mcp.tool(
        annotations=ToolAnnotations(
            title="Add memories", read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        )
    )
    async def memory_add(
        ctx: Context,
        # Plain `str` (not Optional): the SDK JSON-decodes string arguments of any other type, and
        # a memory whose text looks like JSON must stay text.
        text: Annotated[str, described("text")] = "",
        type: Annotated[str, described("type")] = "note",
        tags: Annotated[list[str] | None, described("tags")] = None,
        entities: Annotated[list[str] | None, described("entities")] = None,
        relations: Annotated[list[Relation] | None, described("relations")] = None,
        occurred_at: Annotated[str | None, described("occurred_at")] = None,
        metadata: Annotated[dict[str, Any] | None, described("metadata")] = None,
        importance: Annotated[Fraction | None, described("importance", ge=0, le=1)] = None,
        session_id: Annotated[str | None, described("session_id")] = None,
        role: Annotated[str | None, described("role")] = None,
        subject: Annotated[str | None, described("subject")] = None,
        state: Annotated[str | None, described("state")] = None,
        due_at: Annotated[str | None, described("due_at")] = None,
        parent_id: Annotated[str | None, described("parent_id")] = None,
        memories: Annotated[
            list[MemoryInput] | None, Field(description="a batch of memories instead of text (each has text, type, tags, ...)")
        ] = None,
        cube: CubeName = DEFAULT_CUBE,
    ) -> AddResult:
        """Remember something. Give `text` (plus optional type, tags, entities, relations, occurred_at, metadata),
        or `memories`, a list of such objects, for a batch. An exact duplicate returns the existing id.
        Types with structure: goal and task (with state, due_at, parent_id), preference and fact (with subject and
        role: a newer one on the same subject and role supersedes the older, which is archived; without a subject,
        only one that says what changed, e.g. "now prefers coffee", replaces a close older one). A restatement of a
        stored fact confirms it instead of adding a copy. Each result lists what was superseded and why."""
        if memories is not None and text:
            raise ToolError("give either text or memories, not both")
        if memories is None:
            if not text:
                raise ToolError("give text (what to remember) or memories (a list of them)")
            single: dict[str, Any] = {"text": text, "type": type}
            optional = {
                "tags": tags,
                "entities": entities,
                "relations": relations,
                "occurred_at": occurred_at,
                "metadata": metadata,
                "importance": importance,
                "session_id": session_id,
                "role": role,
                "subject": subject,
                "state": state,
                "due_at": due_at,
                "parent_id": parent_id,
            }
            for key, value in optional.items():
                if value is not None:
                    single[key] = value
            items: list[MemoryInput | dict[str, Any]] = [single]
        else:
            items = list(memories)
        client = runtime.client_name(ctx)

        # Validate before the cube is opened: a rejected call must not create the cube it named.
        def validated() -> list[MemoryInput]:
            checked = [i if isinstance(i, MemoryInput) else MemoryInput.model_validate(i) for i in items]
            runtime.home.check_types([i.type for i in checked])
            return checked

        valid = await runtime.call(validated)
        outcomes = await runtime.call(lambda: runtime.cube(cube, create=True).add(valid, client=client))
        created = [o.id for o in outcomes if o.created]
        # Superseded memories were archived and restated ones confirmed: their resources changed too.
        touched = created + [o.id for o in outcomes if o.restated] + [s.id for o in outcomes for s in o.superseded]
        await runtime.changed(ctx, cube, list(dict.fromkeys(touched)), listing=True)
        runtime.observe(
            ctx,
            "added",
            cube,
            created,
            entities=[e for item in valid for e in item.entities],
            session=next((item.session_id for item in valid if item.session_id), None),
        )
        return AddResult(ids=[o.id for o in outcomes], results=outcomes)

    @mcp.tool(annotations=ToolAnnotations(title="Search memories", read_only_hint=True, open_world_hint=False))
    async def memory_search(
        ctx: Context,
        query: Annotated[str, filter_described("query")],
        cube: CubeName = DEFAULT_CUBE,
        limit: Annotated[Count, filter_described("limit", ge=1, le=MAX_LIMIT)] = 10,
        types: Annotated[list[str] | None, filter_described("types")] = None,
        tags: Annotated[list[str] | None, filter_described("tags")] = None,
        since: Annotated[str | None, filter_described("since")] = None,
        until: Annotated[str | None, filter_described("until")] = None,
        include_archived: Annotated[Flag, filter_described("include_archived")] = False,
        now: Annotated[
            str | None,
            Field(description="reference time for 'today', 'last week', 'the last ...' in the query (ISO 8601; default: now)"),
        ] = None,
        context: Annotated[Count, filter_described("context", ge=0, le=MAX_CONTEXT_TURNS)] = 0,
        states: Annotated[list[str] | None, filter_described("states")] = None,
        due_before: Annotated[str | None, filter_described("due_before")] = None,
        due_after: Annotated[str | None, filter_described("due_after")] = None,
        overdue: Annotated[Flag, filter_described("overdue")] = False,
        include_weak: Annotated[Flag, filter_described("include_weak")] = False,
    ) -> SearchResult:
        """Find memories by meaning and by words: keywords in each memory and in it with its session neighbours,
        meaning (vector), entities the query names (and who said what). Each hit says which signals found it and
        their scores; `context` > 0 also returns the memories around each hit in its session. Time words in the query
        ("today's meetings", "last week", "in May 2023", "before the budget meeting") filter on when memories occurred, and "the last X"
        puts the most recent X first; `time` in the result says how they were read. Task words ("which tasks are
        overdue", "open tasks", "what's due next week", "tasks for the launch goal") filter on state, due date and goal;
        `tasks` says how they were read. Hits carry state, due_at, parent_id and a confidence (high, medium, low); weak
        matches are left out unless include_weak, and `relevance` says when nothing relevant was found."""
        q = await runtime.call(
            lambda: SearchQuery(
                query=query,
                limit=limit,
                types=types,
                tags=tags,
                since=since,
                until=until,
                include_archived=include_archived,
                context=context,
                states=states,
                due_before=due_before,
                due_after=due_after,
                overdue=overdue,
                include_weak=include_weak,
            )
        )
        result = await runtime.call(lambda: runtime.cube(cube).search(q, now=now))
        runtime.observe(ctx, "queried", cube, [h.id for h in result.hits], query=q.query)
        return result

    @mcp.tool(annotations=ToolAnnotations(title="Get memories", read_only_hint=True, open_world_hint=False))
    async def memory_get(ctx: Context, ids: Ids, cube: CubeName = DEFAULT_CUBE) -> MemoriesResult:
        """Read memories by id, with every field (status, version, entities, timestamps, metadata)."""
        memories = await runtime.call(lambda: runtime.cube(cube).get(_id_list(ids)))
        runtime.observe(ctx, "read", cube, [m.id for m in memories])
        return MemoriesResult(memories=memories)

    @mcp.tool(
        annotations=ToolAnnotations(
            title="Update a memory", read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        )
    )
    async def memory_update(
        ctx: Context,
        id: Annotated[str, Field(description="the memory to change")],
        cube: CubeName = DEFAULT_CUBE,
        text: Annotated[str, Field(description="the corrected text (leave out to keep it)")] = "",
        type: Annotated[str | None, described("type")] = None,
        tags: Annotated[list[str] | None, described("tags")] = None,
        entities: Annotated[list[str] | None, described("entities")] = None,
        relations: Annotated[list[Relation] | None, described("relations")] = None,
        occurred_at: Annotated[str | None, described("occurred_at")] = None,
        metadata: Annotated[dict[str, Any] | None, described("metadata")] = None,
        importance: Annotated[Fraction | None, described("importance", ge=0, le=1)] = None,
        role: Annotated[str | None, described("role")] = None,
        subject: Annotated[str | None, described("subject")] = None,
        state: Annotated[str | None, described("state")] = None,
        due_at: Annotated[str | None, described("due_at")] = None,
        parent_id: Annotated[str | None, described("parent_id")] = None,
        clear: Annotated[list[ClearableName] | None, described("clear")] = None,
    ) -> Memory:
        """Correct a memory: the given fields change, a new version is recorded (see memory_history),
        the text is re-embedded and the graph follows. Fields left out (or null) stay as they are; to
        empty an optional field, name it in clear, e.g. clear: ["due_at"] (a task with no due date is
        never overdue)."""
        fields = {
            "text": text or None,
            "type": type,
            "tags": tags,
            "entities": entities,
            "relations": relations,
            "occurred_at": occurred_at,
            "metadata": metadata,
            "importance": importance,
            "role": role,
            "subject": subject,
            "state": state,
            "due_at": due_at,
            "parent_id": parent_id,
            "clear": clear,
        }

        def validated() -> MemoryPatch:
            checked = MemoryPatch(**{k: v for k, v in fields.items() if v is not None})
            if checked.type is not None:
                runtime.home.check_types([checked.type])
            return checked

        patch = await runtime.call(validated)
        client = runtime.client_name(ctx)
        memory = await runtime.call(lambda: runtime.cube(cube).update(id, patch, client=client))
        await runtime.changed(ctx, cube, [id])
        runtime.observe(ctx, "changed", cube, [id])
        return memory

    @mcp.tool(
        annotations=ToolAnnotations(
            title="Delete memories", read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
        )
    )
    async def memory_delete(
        ctx: Context,
        ids: Ids,
        cube: CubeName = DEFAULT_CUBE,
        purge: Annotated[
            Flag, Field(description="erase for good (text removed from history too) instead of a tombstone")
        ] = False,
    ) -> DeleteResult:
        """Delete memories: they leave search, resources and the graph at once. Without purge a tombstone
        and the history remain; with purge the memory is erased."""
        values = _id_list(ids)
        client = runtime.client_name(ctx)
        deleted = await runtime.call(lambda: runtime.cube(cube).delete(values, purge=purge, client=client))
        await runtime.changed(ctx, cube, deleted, listing=True)
        runtime.observe(ctx, "changed", cube, deleted)
        return DeleteResult(ids=deleted, purged=purge)

    @mcp.tool(
        annotations=ToolAnnotations(
            title="Archive memories", read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        )
    )
    async def memory_archive(ctx: Context, ids: Ids, cube: CubeName = DEFAULT_CUBE) -> MemoriesResult:
        """Archive stale memories: they leave default search and the graph but are kept, found with
        include_archived, and can come back with memory_restore."""
        values = _id_list(ids)
        client = runtime.client_name(ctx)
        memories = await runtime.call(lambda: runtime.cube(cube).archive(values, client=client))
        await runtime.changed(ctx, cube, values)
        runtime.observe(ctx, "changed", cube, values)
        return MemoriesResult(memories=memories)

    @mcp.tool(
        annotations=ToolAnnotations(
            title="Restore memories", read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        )
    )
    async def memory_restore(ctx: Context, ids: Ids, cube: CubeName = DEFAULT_CUBE) -> MemoriesResult:
        """Bring archived memories back into search and the graph. Restoring a memory that a newer one
        superseded undoes the supersession: both stay live and the link between them is removed."""
        values = _id_list(ids)
        client = runtime.client_name(ctx)
        memories = await runtime.call(lambda: runtime.cube(cube).restore(values, client=client))
        await runtime.changed(ctx, cube, values)
        runtime.observe(ctx, "changed", cube, values)
        return MemoriesResult(memories=memories)

    @mcp.tool(annotations=ToolAnnotations(title="Memory history", read_only_hint=True, open_world_hint=False))
    async def memory_history(id: str, cube: CubeName = DEFAULT_CUBE) -> HistoryResult:
        """Every version of one memory: what changed (old and new values), when, and by which client."""
        return HistoryResult(id=id, versions=await runtime.call(lambda: runtime.cube(cube).history(id)))
