"""What every tool adapter shares: the memory home, worker threads, errors, notifications.

Adapters stay thin: they validate arguments into the memory layer's models, run the
blocking call in a worker thread (never on the event loop), turn ``MemCubeError`` into
an MCP tool error with the same message, and tell clients which resources changed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.subscriptions import ResourceUpdated, SubscriptionBus
from pydantic import ValidationError

from memory import MemCube, MemCubeError, MemoryHome
from memory.activation.scheduler import EventKind, MemoryEvent

from .refusals import describe_refusal
from .subscribers import Subscribers

log = logging.getLogger(__name__)

T = TypeVar("T")
STARTUP_GRACE_S = 0.5  # let the handshake and first calls go first
# After writes, this long without another before the keyword indexes are merged (when the
# cube has grown enough for a merge to pay; memory.store.fulltext_merge).
QUIET_S = 2.0
# While a cube's graph is paused for want of disk space, this long between tries to catch up (issue 26).
GRAPH_RETRY_S = 5.0
# With a PostgreSQL store: how long one wait for other servers' notifications lasts (the most a
# shutdown waits for the listening thread), and the pause before listening again after the store
# could not be reached.
LISTEN_WAIT_S = 0.5
LISTEN_RETRY_S = 5.0


def describe_validation(exc: ValidationError) -> str:
    """pydantic's errors in plain words, one per field, echoing at most a short piece of the input."""
    return "invalid input: " + describe_refusal(exc)


class ToolRuntime:
    def __init__(self, home: MemoryHome, events: Callable[[MemoryEvent], None] | None = None) -> None:
        self.home = home
        self._events = events  # the scheduler's queue: every call tells it what it did
        self._graph_dirty: anyio.Event | None = None
        self._writes = 0  # writes so far: the graph loop compares it with the count it last applied
        # 2025-era clients that subscribed to a resource URI (server/subscriptions.py).
        self.subscribers = Subscribers()
        # The server's ``subscriptions/listen`` fan-out, for notices that come from no request (other servers' writes).
        self.bus: SubscriptionBus | None = None

    def cube(self, name: str, *, create: bool = False) -> MemCube:
        return self.home.cube(name, create=create)

    async def call(self, fn: Callable[[], T], *, error: type[Exception] = ToolError) -> T:
        """Run blocking memory work in a worker thread; report its errors as MCP errors."""
        try:
            return await anyio.to_thread.run_sync(fn)
        except MemCubeError as exc:
            raise error(str(exc)) from None
        except ValidationError as exc:
            raise error(describe_validation(exc)) from None

    async def read_resource(self, fn: Callable[[], T]) -> T:
        return await self.call(fn, error=ResourceError)

    @staticmethod
    def client_name(ctx: Context) -> str | None:
        """Which client made the call (its HTTP token's principal, else MCP clientInfo), recorded with every change."""
        request = getattr(getattr(ctx, "request_context", None), "request", None)
        principal = getattr(getattr(request, "state", None), "memcube_principal", None)
        if principal:
            return str(principal)
        try:
            params = ctx.session.client_params
        except Exception:  # no session (direct library use)
            return None
        if params is None or params.client_info is None:
            return None
        info = params.client_info
        return f"{info.name}/{info.version}" if info.version else info.name

    def observe(
        self,
        ctx: Context | None,
        kind: EventKind,
        cube: str,
        ids: Sequence[str] = (),
        *,
        query: str | None = None,
        entities: Sequence[str] = (),
        session: str | None = None,
    ) -> None:
        """Tell the scheduler what a call did, as a typed event; never blocks the call."""
        if self._events is not None:
            self._events(
                MemoryEvent(
                    kind=kind,
                    cube=cube,
                    query=query,
                    ids=list(dict.fromkeys(ids)),
                    entities=list(entities),
                    session=session,
                    client=self.client_name(ctx) if ctx is not None else None,
                )
            )

    async def changed(self, ctx: Context, cube: str, ids: list[str], *, listing: bool = False) -> None:
        """A write happened: schedule graph work and tell subscribers which resources changed."""
        self.graph_changed()
        await self._tell_subscribers(cube, ids, ctx.notify_resource_updated)
        if listing:
            try:
                await ctx.notify_resources_changed()
            except Exception:
                log.debug("resource list-changed publish failed", exc_info=True)

    async def _tell_subscribers(self, cube: str, ids: Sequence[str], publish: Callable[[str], Awaitable[None]]) -> None:
        """Notify ``subscriptions/listen`` streams (through ``publish``) and 2025-era subscribers of the changed resources."""
        uris = [f"memory://{cube}/items/{i}" for i in ids] + [f"memory://{cube}/recent", f"memory://{cube}/stats"]
        for uri in uris:
            try:
                await publish(uri)
            except Exception:  # a notification must never fail the write that caused it
                log.debug("resource-updated publish failed for %s", uri, exc_info=True)
            for session in self.subscribers.of(uri):
                try:
                    await session.send_resource_updated(uri)
                except Exception:  # a client gone away; the SDK usually drops these itself
                    self.subscribers.remove(uri, session)

    # -- other servers' writes (a PostgreSQL store) --------------------------------------

    async def run_store_changes(self) -> None:
        """With a PostgreSQL store, hear the other servers' commits (``LISTEN``, no polling): bring the
        graph up to date and tell this server's subscribers, as for a write made here. A change of
        the store's access rules is heard the same way; they are read again, off the event loop."""
        store = self.home.store
        if store is None or self.bus is None:
            return
        bus = self.bus

        async def publish(uri: str) -> None:
            await bus.publish(ResourceUpdated(uri=uri))

        while True:
            try:
                listener = await anyio.to_thread.run_sync(store.listen)
            except Exception as exc:  # the store is unreachable now: calls say so themselves; try again later
                log.warning("not hearing other servers' changes (%s); trying again in %.0f s", exc, LISTEN_RETRY_S)
                await anyio.sleep(LISTEN_RETRY_S)
                continue
            try:
                while True:
                    heard = await anyio.to_thread.run_sync(listener.wait, LISTEN_WAIT_S)
                    if listener.rules_changed():
                        await anyio.to_thread.run_sync(store.refresh_access)
                    if not heard:
                        continue
                    self.graph_changed()
                    for cube, ids in (await anyio.to_thread.run_sync(store.changed_since, heard)).items():
                        await self._tell_subscribers(cube, ids, publish)
            except Exception as exc:  # the connection broke: listen again (what was missed in between is not told)
                log.warning("stopped hearing other servers' changes (%s); listening again", exc)
            finally:
                with anyio.CancelScope(shield=True):  # the server is stopping: close its connection all the same
                    await anyio.to_thread.run_sync(listener.close)

    # -- background graph work --------------------------------------------------------

    def graph_changed(self) -> None:
        self._writes += 1  # counted even before the loop runs, or while it applies the graph: never missed
        if self._graph_dirty is not None:
            self._graph_dirty.set()

    async def run_graph_sync(self) -> None:
        """Apply queued graph changes between calls, so tool calls never wait on Kuzu.

        It starts with every cube in the home: work queued by a process that died (a crash,
        a SIGKILL) is finished by the next one to start. Once writes have been quiet for
        ``QUIET_S``, a cube grown enough since its last merge has its keyword indexes merged.
        A graph paused for want of disk space is tried again every ``GRAPH_RETRY_S``, so it
        catches up once space is freed, writes or not.
        """
        await anyio.sleep(STARTUP_GRACE_S)
        for name in self.home.cube_names():
            try:
                cube = await anyio.to_thread.run_sync(functools.partial(self.home.cube, name))
                await anyio.to_thread.run_sync(cube.try_sync_graph)
            except Exception:  # one damaged cube must not stop the others; doctor reports it
                log.exception("cube %s: could not reconcile its graph at start", name)
        seen = 0  # writes counted so far (``graph_changed``), those made while the graph was applied included
        merge_check = True  # writes since the last merge check (at start: whatever other processes wrote)
        while True:
            if self._graph_dirty is None or self._graph_dirty.is_set():
                self._graph_dirty = anyio.Event()
            if self._writes == seen:
                paused = [cube for cube in self.home.open_cubes() if cube.graph_store.paused]
                with anyio.move_on_after(QUIET_S if merge_check else GRAPH_RETRY_S if paused else None):
                    await self._graph_dirty.wait()
                if self._writes == seen and merge_check:  # quiet since the last writes, their graph work done: tidy the indexes
                    merge_check = False
                    for cube in self.home.open_cubes():
                        await anyio.to_thread.run_sync(cube.try_merge_fulltext)
                    continue
                if self._writes == seen:
                    for cube in paused:
                        if cube.graph_store.has_room():
                            await anyio.to_thread.run_sync(cube.try_sync_graph)
                    continue
            await anyio.sleep(0.05)  # let a burst of writes land first
            seen = self._writes
            for cube in self.home.open_cubes():
                await anyio.to_thread.run_sync(cube.try_sync_graph)
            merge_check = True

    async def flush(self) -> None:
        for cube in self.home.open_cubes():
            await anyio.to_thread.run_sync(cube.try_sync_graph)
            try:
                await anyio.to_thread.run_sync(cube.flush_access)
            except MemCubeError as exc:  # a full disk at shutdown: say why, exit cleanly (issue 13)
                log.error("cube %s: access counts not saved: %s", cube.name, exc)
