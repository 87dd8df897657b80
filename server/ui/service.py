"""What each view of the memory browser reads and changes, through the ``memory`` API only.

Every method names its cube and what it needs (read or write); the home's ``[access]`` rules
decide for the ``memcube-ui`` principal, and a refusal is recorded in the cube like one at the
MCP boundary. Changes are recorded in history with client ``memcube-ui``. Methods block: the
routes run them in worker threads.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from memory import MemoryHome
from memory.access_rules import hidden
from memory.config import check_cube_name
from memory.errors import InvalidInput, MemCubeError, NotFound, Unavailable
from memory.models import (
    KNOWN_TYPES,
    STATES,
    SUPERSEDING_TYPES,
    FeedbackInput,
    Memory,
    MemoryInput,
    MemoryPatch,
    SearchQuery,
)
from memory.store.browse import BrowseFilter

from .security import UI_CLIENT

log = logging.getLogger(__name__)

Need = Literal["read", "write"]
Signal = Literal["vector", "keyword", "context", "entity"]
MAX_CHAIN = 50
SEARCH_MODES: dict[str, tuple[Signal, ...]] = {"hybrid": ("vector", "keyword", "context", "entity"), "words": ("keyword",)}
TOP_ENTITIES = 30  # the graph view's starting list
SHORT_TEXT = 160  # the latest changes show a memory's text cut to this


class ProgressBody(BaseModel):
    """What ``memory_progress`` takes over MCP, validated as strictly: JSON types as they are, no other keys."""

    model_config = ConfigDict(extra="forbid")

    state: str | None = None
    feedback: FeedbackInput | None = None
    due_at: str | None = None


class Forbidden(MemCubeError):
    """The access rules do not let the UI principal do this to this cube."""


class UiService:
    def __init__(self, home: MemoryHome) -> None:
        self.home = home

    # -- access -----------------------------------------------------------------------

    def level(self, cube: str) -> str:
        return self.home.access_rules().level(UI_CLIENT, cube)

    def cube(self, name: str, need: Need, *, action: str):
        """The cube, once the rules allow ``need`` on it; a refusal is recorded and raised.

        A cube the principal may not read and a cube that does not exist get the same answer
        (``memory.access_rules.hidden``, 403), so the page never learns which cubes exist (issue 26).
        """
        check_cube_name(name)
        rules = self.home.access_rules_place
        creates = need == "write" and action == "import"
        if not self.home.access_rules().allows(UI_CLIENT, name, need):
            if name in self.home.cube_names():
                try:
                    self.home.cube(name).store.record_denial(client=UI_CLIENT, action=f"ui {action}", need=need)
                except Exception:  # recording must not turn a refusal into a crash
                    log.exception("could not record a refused UI call in cube %s", name)
            if self.level(name) == "none":
                raise Forbidden(hidden(UI_CLIENT, name, rules))
            raise Forbidden(f"{UI_CLIENT!r} may not {need} cube '{name}' (its access is '{self.level(name)}'); {rules} grant it")
        if not creates and self.home.unknown(name):
            raise Forbidden(hidden(UI_CLIENT, name, rules))
        return self.home.cube(name, create=creates)

    # -- lists ------------------------------------------------------------------------

    def cubes(self) -> list[dict[str, Any]]:
        """The cubes this principal may read, with its access level to each.

        No counts: ``MemCube.stats`` scans whole tables, and the page waits for this list
        before it can show the first memories (the list view shows its own total).
        """
        names = self.home.cube_names() or ["default"]
        return [
            {"cube": name, "access": self.level(name)}
            for name in names
            if self.home.access_rules().allows(UI_CLIENT, name, "read")
        ]

    def memories(self, cube: str, filters: dict[str, Any], cursor: str | None, limit: int) -> dict[str, Any]:
        c = self.cube(cube, "read", action="list")
        flt = BrowseFilter.model_validate(filters)
        page = c.browse(flt, cursor=cursor, limit=limit)
        out: dict[str, Any] = page.model_dump(mode="json")
        if cursor is None:
            out["total"] = c.count(flt)
        return out

    def facets(self, cube: str) -> dict[str, list[str]]:
        return self.cube(cube, "read", action="facets").facets()

    def search(
        self,
        cube: str,
        query: str,
        *,
        mode: str,
        limit: int,
        types: list[str] | None,
        tags: list[str] | None,
        include_archived: bool,
    ) -> dict[str, Any]:
        c = self.cube(cube, "read", action="search")
        if mode not in SEARCH_MODES:
            raise InvalidInput(f"search mode must be one of {', '.join(SEARCH_MODES)}")
        q = SearchQuery(
            query=query,
            limit=limit,
            types=types or None,
            tags=tags or None,
            include_archived=include_archived,
            signals=SEARCH_MODES[mode],
        )
        return c.search(q).model_dump(mode="json")

    # -- one memory ---------------------------------------------------------------------

    def memory(self, cube: str, memory_id: str) -> dict[str, Any]:
        c = self.cube(cube, "read", action="get")
        memory = c.get([memory_id])[0]
        return {
            "memory": memory.model_dump(mode="json"),
            "history": [v.model_dump(mode="json") for v in c.history(memory_id)],
            "chain": self._chain(c, memory),
        }

    def _chain(self, c: Any, memory: Memory) -> list[dict[str, Any]]:
        """The supersession chain through this memory, oldest first: what it replaced and what replaced it."""
        # A link may lead to a purged memory or round a cycle (an old import): the chain stops there,
        # and the page still opens, so the memory can be purged (issue 26).
        seen = {memory.id}

        def follow(link: str | None) -> Memory | None:
            if not link or link in seen:
                return None
            seen.add(link)
            try:
                return c.store.get_many([link])[0]
            except NotFound:
                return None

        older: list[Memory] = []
        newer: list[Memory] = []
        current: Memory | None = memory
        while current is not None and len(older) < MAX_CHAIN and (current := follow(current.supersedes)):
            older.append(current)
        current = memory
        while current is not None and len(newer) < MAX_CHAIN and (current := follow(current.superseded_by)):
            newer.append(current)
        if not older and not newer:
            return []
        chain = [*reversed(older), memory, *newer]
        return [
            {"id": m.id, "text": m.text, "status": m.status, "created_at": m.created_at, "current": m.id == memory.id}
            for m in chain
        ]

    def add(self, cube: str, body: dict[str, Any]) -> dict[str, Any]:
        """Add one memory as ``memory_add`` does: the same ``MemoryInput``, JSON types as they are (issue 30)."""
        c = self.cube(cube, "write", action="add")
        valid = MemoryInput.model_validate(body, strict=True)
        outcome = c.add([valid], client=UI_CLIENT)[0]
        c.try_sync_graph()
        return {"outcome": outcome.model_dump(mode="json"), **self.memory(cube, outcome.id)}

    def choices(self, cube: str) -> dict[str, Any]:
        """What the add and edit forms offer: the types this home knows, each type's states, the roles in use.

        Types and states come from ``memory.models`` (and the home's ``[types] custom``); a role
        is free text in the models, so the forms offer the roles already used and take a new one.
        """
        c = self.cube(cube, "read", action="choices")
        return {
            "types": [*KNOWN_TYPES, *sorted(set(self.home.custom_types) - set(KNOWN_TYPES))],
            "states": {type_: list(states) for type_, states in STATES.items()},
            "roles": c.facets()["roles"],
        }

    def update(self, cube: str, memory_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        c = self.cube(cube, "write", action="update")
        valid = MemoryPatch.model_validate(patch, strict=True)  # JSON types as they are, as over MCP (issue 26)
        c.update(memory_id, valid, client=UI_CLIENT)
        c.try_sync_graph()
        return self.memory(cube, memory_id)

    def change_status(self, cube: str, memory_id: str, action: str) -> dict[str, Any]:
        c = self.cube(cube, "write", action=action)
        if action == "archive":
            c.archive([memory_id], client=UI_CLIENT)
        elif action == "restore":
            c.restore([memory_id], client=UI_CLIENT)
        elif action == "delete":
            c.delete([memory_id], client=UI_CLIENT)
        elif action == "purge":
            c.delete([memory_id], purge=True, client=UI_CLIENT)
            c.try_sync_graph()
            return {"purged": memory_id}
        else:
            raise ValueError(action)
        c.try_sync_graph()
        return self.memory(cube, memory_id)

    # -- tasks, preferences, graph, timeline, profile, activity -------------------------

    def tasks(self, cube: str) -> dict[str, Any]:
        c = self.cube(cube, "read", action="tasks")
        return {"items": [m.model_dump(mode="json") for m in c.tasks()]}

    def progress(self, cube: str, memory_id: str, body: dict[str, Any]) -> dict[str, Any]:
        c = self.cube(cube, "write", action="progress")
        valid = ProgressBody.model_validate(body, strict=True)
        memory = c.progress(memory_id, state=valid.state, feedback=valid.feedback, due_at=valid.due_at, client=UI_CLIENT)
        return memory.model_dump(mode="json")

    def preferences(self, cube: str) -> dict[str, Any]:
        """Live preferences grouped by role (no role: "any role"), newest first."""
        c = self.cube(cube, "read", action="preferences")
        groups: dict[str, list[dict[str, Any]]] = {}
        cursor: str | None = None
        for _ in range(10):  # at most 2,000 preferences: more is not a page a person reads
            page = c.browse({"type": "preference"}, cursor=cursor, limit=200)
            for m in page.memories:
                groups.setdefault(m.role or "", []).append(m.model_dump(mode="json"))
            cursor = page.next
            if cursor is None:
                break
        return {
            "roles": [{"role": role, "memories": items} for role, items in sorted(groups.items())],
            "supersede": sorted(SUPERSEDING_TYPES),
        }

    def graph(self, cube: str, entity: str, depth: int) -> dict[str, Any]:
        c = self.cube(cube, "read", action="graph")
        try:
            view = c.graph(entity, depth)
        except Unavailable as exc:
            raise Unavailable(f"{exc} (an MCP server is updating the graph; try again in a moment)") from None
        return view.model_dump(mode="json")

    def top_entities(self, cube: str) -> dict[str, Any]:
        """The entities the most memories name: where the graph view starts when no name is typed."""
        c = self.cube(cube, "read", action="graph")
        return {"entities": [{"name": name, "memories": n} for name, n in c.store.top_entities(TOP_ENTITIES)]}

    def profile(self, cube: str, role: str | None) -> dict[str, Any]:
        return self.cube(cube, "read", action="profile").profile(role=role or None).model_dump(mode="json")

    def activity(self, cube: str) -> dict[str, Any]:
        """Who changed what; each latest change carries its memory's text (cut short) and status, when it still has one."""
        c = self.cube(cube, "read", action="activity")
        out: dict[str, Any] = c.activity().model_dump(mode="json")
        found: dict[str, Memory | None] = {}
        for change in out["recent"]:
            memory_id = change["memory_id"]
            if memory_id not in found:
                try:
                    found[memory_id] = c.store.get_many([memory_id])[0]
                except NotFound:  # purged: only the bare history entry is left
                    found[memory_id] = None
            memory = found[memory_id]
            text = memory.text if memory is not None and memory.text else None
            change["text"] = text if text is None or len(text) <= SHORT_TEXT else text[: SHORT_TEXT - 1].rstrip() + "…"
            change["status"] = memory.status if memory is not None else None
        return out
