"""The scheduler: every tool call is a trigger; between calls it predicts and preloads the next scene.

The interface puts a typed ``MemoryEvent`` (added, queried, changed or read: the cube, the
query, the memories touched, entities, session, client) on the monitoring queue, an anyio
memory-object stream, without waiting; the scheduler never sees MCP tool names or results. ``Scheduler.run``, a task in the server's task group, consumes the queue: a change
(update, archive, delete) drops every KV cache holding the memory at once; then, once the
queue is empty (the gap between calls), it predicts the next scene and preloads it: the
working set as plaintext, and its KV cache in the local model when one is configured.

The prediction ("scene" policy) scores candidate memories and fills a token budget:

    recently added memories    1.0, decaying with age     (a conversation is read where it is)
    hits of the recent queries 0.8 x rank, halving per query (the user is still on the topic)
    the recent scene's search  0.6 x rank                  (a search with the new memories' text)
    co-access with those hits  0.4 x share                 (memories answers have used together)
    frequency of use           0.2 x share

The "last" policy, kept in shadow for comparison, predicts just the last query's hits.
``ask`` measures both: the share of the memories an answer uses that were warm when the call
arrived (``hit_rate``, ``baseline_hit_rate``).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio
from pydantic import BaseModel, Field

from memory.activation.engine import ActivationEngine, AskOutcome
from memory.models import Memory, SearchQuery

if TYPE_CHECKING:  # the scheduler reads cubes through the home it is given; it never builds one
    from memory.cube import MemCube
    from memory.home import MemoryHome

log = logging.getLogger(__name__)

RECENT_QUERIES = 3
RECENT_ADDS = 200
SCENE_HITS = 20


EventKind = Literal["added", "queried", "changed", "read"]


class MemoryEvent(BaseModel):
    """What one call did to a cube, as the scheduler needs to know it (the interface emits these)."""

    kind: EventKind = Field(
        description="added: new memories; queried: a search or question and its hits; changed: update, archive, restore, delete, progress; read: anything else"
    )
    cube: str
    query: str | None = None
    ids: list[str] = Field(default_factory=list, description="memories the call returned, added or changed")
    entities: list[str] = Field(default_factory=list)
    session: str | None = None
    client: str | None = None


class WorkingSetStatus(BaseModel):
    cube: str
    policy: str
    model: str = Field(description="the local model, or why there is none")
    working_set: list[str] = Field(description="ids of the predicted working set (plaintext, in prompt order)")
    working_set_tokens: int
    caches: dict[str, int] = Field(default_factory=dict, description="KV caches: count, resident, bytes, tokens")
    asks: int = 0
    memories_used: int = Field(0, description="memories the answers used, summed over asks")
    hits: int = Field(0, description="of those, already warm when the call arrived")
    misses: int = 0
    hit_rate: float | None = None
    baseline_hits: int = Field(0, description="warm under the 'keep the last results' policy (shadow)")
    baseline_hit_rate: float | None = None
    prefill_tokens_saved: int = 0
    prefill_tokens_computed: int = 0
    events: int = 0
    predictions: int = 0


@dataclass
class Scene:
    """What the scheduler knows about one cube's recent use."""

    recent_adds: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_ADDS))
    recent_results: deque[list[str]] = field(default_factory=lambda: deque(maxlen=RECENT_QUERIES))
    pending_scene: list[str] = field(default_factory=list)  # added since the last prediction
    coaccess: dict[str, Counter[str]] = field(default_factory=dict)
    frequency: Counter[str] = field(default_factory=Counter)
    working_set: list[Memory] = field(default_factory=list)
    tokens: int = 0
    status: WorkingSetStatus | None = None
    dirty: bool = False


QUEUE_LIMIT = 1024  # events waiting; past it an event is dropped (a warning), never the caller blocked


class Scheduler:
    def __init__(
        self, home: MemoryHome, engine: ActivationEngine | None = None, *, policy: Literal["scene", "last"] = "scene"
    ) -> None:
        self.home = home
        self.engine = engine if engine is not None else ActivationEngine(home.config.local_model, home.root)
        self.policy = policy
        self.budget = home.config.local_model.working_set_tokens
        # A plain queue and a wake-up event rather than an anyio memory stream: one server can go
        # through its lifespan more than once, so there is no moment to close a stream, and a
        # stream collected unclosed warns (ResourceWarning) in every test that builds a server.
        self._queue: deque[MemoryEvent] = deque()
        self._wakeup: anyio.Event | None = None
        self._scenes: dict[str, Scene] = {}
        self._lock = threading.RLock()
        self._busy = 0
        self._idle: anyio.Event | None = None

    # -- the monitoring queue ---------------------------------------------------------

    def notify(self, event: MemoryEvent) -> None:
        """Put an event on the queue; never blocks the caller (a full queue drops the event)."""
        if len(self._queue) >= QUEUE_LIMIT:
            log.warning("scheduler queue full; dropped a %s event", event.kind)
            return
        self._queue.append(event)
        self._busy += 1
        if self._wakeup is not None:
            self._wakeup.set()

    async def run(self) -> None:
        """The scheduling executor: consume events; preload between calls."""
        try:
            while True:
                await self._handle_next()
        finally:
            self._wakeup = None  # an event of this run's loop: the next lifespan makes its own

    async def _handle_next(self) -> None:
        while not self._queue:
            self._wakeup = anyio.Event()
            await self._wakeup.wait()
        event = self._queue.popleft()
        try:
            await self._handle(event)
            if not self._queue:
                await self._preload()
        except Exception:  # the scheduler must outlive a bad event or a failing model
            log.exception("scheduler: handling %s failed", event.kind)
        finally:
            self._busy -= 1
            if self._busy == 0 and self._idle is not None:
                self._idle.set()

    async def settled(self) -> None:
        """Wait until every queued event is handled and its preloading done (tests, benchmarks)."""
        while self._busy:
            self._idle = anyio.Event()
            await self._idle.wait()

    def scene(self, cube: str) -> Scene:
        with self._lock:
            return self._scenes.setdefault(cube, Scene())

    async def _handle(self, event: MemoryEvent) -> None:
        scene = self.scene(event.cube)
        with self._lock:
            scene.dirty = True
            if scene.status is not None:
                scene.status.events += 1
            if event.kind == "added":
                scene.recent_adds.extend(event.ids)
                scene.pending_scene.extend(event.ids)
            elif event.kind == "queried" and event.ids:
                scene.recent_results.appendleft(list(event.ids))
                scene.frequency.update(event.ids)
                for a in event.ids:
                    scene.coaccess.setdefault(a, Counter()).update(b for b in event.ids if b != a)
        if event.kind == "changed" and event.ids:
            changed = set(event.ids)
            with self._lock:
                scene.working_set = [m for m in scene.working_set if m.id not in changed]
            if self.engine.loaded:
                cube = self.home.cube(event.cube)
                await anyio.to_thread.run_sync(lambda: self.engine.drop(cube.folder, event.ids))

    # -- prediction ---------------------------------------------------------------------

    def predict(self, cube_name: str) -> list[Memory]:
        """The next scene's working set, in prompt order (kept members first, as they were)."""
        cube = self.home.cube(cube_name)
        scene = self.scene(cube_name)
        with self._lock:
            results = [list(r) for r in scene.recent_results]
            adds = list(scene.recent_adds)
            pending, scene.pending_scene = scene.pending_scene, []
            coaccess = {k: Counter(v) for k, v in scene.coaccess.items()}
            frequency = Counter(scene.frequency)
            previous = [m.id for m in scene.working_set]
        score: dict[str, float] = defaultdict(float)
        if self.policy == "last":
            for rank, memory_id in enumerate(results[0] if results else []):
                score[memory_id] += 1.0 - rank / 100
        else:
            for age, memory_id in enumerate(reversed(adds)):
                score[memory_id] += 1.0 * 0.98**age
            for age, ids in enumerate(results):
                for rank, memory_id in enumerate(ids):
                    score[memory_id] += 0.8 * 0.5**age * (1 - rank / (len(ids) + 1))
            if pending:
                texts = [m.text for m in cube.store.get_many(pending[-20:]) if m.status == "active"]
                if texts:
                    hits = cube.search(SearchQuery(query=" ".join(texts)[-1000:], limit=SCENE_HITS)).hits
                    for rank, hit in enumerate(hits):
                        score[hit.id] += 0.6 * (1 - rank / (len(hits) + 1))
            anchors = results[0] if results else []
            for anchor in anchors:
                together = coaccess.get(anchor)
                if together:
                    top = max(together.values())
                    for memory_id, n in together.most_common(10):
                        score[memory_id] += 0.4 * n / top
            if frequency:
                top = max(frequency.values())
                for memory_id, n in frequency.most_common(50):
                    score[memory_id] += 0.2 * n / top
        ranked = [i for i, _ in sorted(score.items(), key=lambda kv: -kv[1])[:400]]
        live = {m.id: m for m in (cube.store.get_many(ranked) if ranked else []) if m.status == "active"}
        chosen: list[Memory] = []
        used = self._head_tokens()
        for memory_id in ranked:
            memory = live.get(memory_id)
            if memory is None:
                continue
            cost = self._tokens(memory, len(chosen) + 1)  # its number may change in the sort below: same digits, near enough
            if used + cost > self.budget:
                continue
            chosen.append(memory)
            used += cost
        order = {i: n for n, i in enumerate(previous)}
        predicted = {i: n for n, i in enumerate(ranked)}
        # Memories written in one batch share created_at, and their ids differ in random bits: the
        # predicted rank, not the id, orders them, so the prompt order is the same on every machine.
        chosen.sort(key=lambda m: (order.get(m.id, len(order)), m.created_at, predicted[m.id]))
        return chosen

    def _head_tokens(self) -> int:
        return len(self.engine.template.head_tokens()) if self.engine.loaded else 0

    def _tokens(self, memory: Memory, number: int) -> int:
        if self.engine.loaded:
            return len(self.engine.template.memory_tokens(memory, number))
        return len(memory.text) // 4 + 12  # before the model loads: a rough count

    async def _preload(self) -> None:
        if not self.engine.configured:
            return  # activation memory is off: no background work, no side effects on the cubes
        with self._lock:
            dirty = [name for name, scene in self._scenes.items() if scene.dirty]
            for name in dirty:
                self._scenes[name].dirty = False
        for name in dirty:
            working_set = await anyio.to_thread.run_sync(lambda: self.predict(name))
            scene = self.scene(name)
            with self._lock:
                scene.working_set = working_set
                self._status(name).predictions += 1
            if working_set:
                cube = self.home.cube(name)
                await anyio.to_thread.run_sync(lambda: self._warm(cube, working_set))

    def _warm(self, cube, working_set: list[Memory]) -> None:
        self.engine.sweep(cube.folder, self._live_versions(cube))
        outcome = self.engine.warm(cube.folder, working_set)
        with self._lock:
            self.scene(cube.name).tokens = outcome.tokens

    @staticmethod
    def _live_versions(cube: MemCube) -> dict[str, int]:
        return cube.store.live_versions()

    # -- answering ----------------------------------------------------------------------

    def ask(self, cube_name: str, question: str, *, limit: int = 8, max_tokens: int | None = None) -> AskOutcome:
        """Retrieve, then answer from the warm cache that holds most of the hits (prefilling the rest)."""
        engine = self.engine
        engine.backend()  # fails first, with how to configure a model, when there is none
        cube = self.home.cube(cube_name)
        engine.sweep(cube.folder, self._live_versions(cube))
        scene = self.scene(cube_name)
        with self._lock:
            last = set(scene.recent_results[0]) if scene.recent_results else set()
        hits = cube.search(SearchQuery(query=question, limit=limit)).hits
        memories = [m for m in cube.store.get_many([h.id for h in hits]) if m.status == "active"] if hits else []
        used = {m.id for m in memories}
        # Warm means in the one cache the answer starts from, not merely in some cache on disk.
        entry = engine.store(cube.folder).best_for(used)
        warm = set(entry.meta.ids) if entry is not None else set()
        outcome = engine.ask(cube.folder, memories, question, max_tokens=max_tokens, lookup=lambda ids: cube.store.get_many(ids))
        with self._lock:
            status = self._status(cube_name)
            status.asks += 1
            status.memories_used += len(used)
            status.hits += len(used & warm)
            status.misses += len(used - warm)
            status.baseline_hits += len(used & last)
            status.prefill_tokens_saved += outcome.reused_tokens
            status.prefill_tokens_computed += outcome.prefilled_tokens
        return outcome

    # -- status ---------------------------------------------------------------------------

    def _status(self, cube: str) -> WorkingSetStatus:
        scene = self.scene(cube)
        if scene.status is None:
            scene.status = WorkingSetStatus(cube=cube, policy=self.policy, model="", working_set=[], working_set_tokens=0)
        return scene.status

    def status(self, cube_name: str) -> WorkingSetStatus:
        cube = self.home.cube(cube_name)  # a bad or unknown name fails here, with the usual message
        with self._lock:
            scene = self.scene(cube_name)
            status = self._status(cube_name).model_copy()
            status.working_set = [m.id for m in scene.working_set]
            status.working_set_tokens = scene.tokens
        if not self.engine.configured:
            status.model = "none configured (set [local_model] path or MEMCUBE_LOCAL_MODEL)"
        elif not self.engine.loaded:
            status.model = f"{self.engine.config.path} (not loaded yet)"
        else:
            identity = self.engine.backend().identity
            status.model = f"{identity.name} ({identity.backend}, {identity.dtype}, {identity.revision})"
            status.caches = self.engine.store(cube.folder).stats()
        used = status.memories_used
        status.hit_rate = round(status.hits / used, 4) if used else None
        status.baseline_hit_rate = round(status.baseline_hits / used, 4) if used else None
        return status
