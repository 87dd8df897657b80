"""Graph outbox benchmark: how fast queued graph work is applied, and whether that rate holds as the graph grows.

    uv run python bench/graph_drain.py [--memories N] [--batch N] [--baseline REF] [--baseline-cap-s S]
    uv run python bench/graph_drain.py --quick   # CI's check that it runs: 500 memories, top-up 200, live 100

1. Fill a cube's SQLite store with N synthetic memories straight through ``CubeStore.add``
   (no embedding: the graph never reads vectors, and the embedder would bound the fill at
   a few hundred a second). Texts come from ``bench/foundation.py``'s templates; entities
   are resolved as ``MemCube.add`` resolves them (names found in the text); one memory in
   three carries a relation between two of its entities, some with valid times; one in
   ten is a preference with a subject key shared with others, so later ones supersede
   earlier ones (archived, kept in the graph as the end of a SUPERSEDES link). Then 1% of
   the memories are deleted and 1% archived, which queues them again.
2. Drain the outbox as the server does (``GraphStore.apply_outbox`` until it returns 0),
   timing each batch: the overall rate, and the rate over the first and the last tenth of
   the memories (graph nearly empty vs nearly full).
3. Top up: add 2,000 (``--quick``: 200) more memories to the full cube and drain them (the steady state: a
   large graph, a burst of adds).
4. ``GraphStore.rebuild`` of the whole graph from SQLite.
5. With ``--baseline REF`` (e.g. ``main``): the same drain with ``graph_store.py`` as of that
   git commit, on a copy of the same SQLite file, stopped after ``--baseline-cap-s``
   seconds; the graphs are compared when it finishes.

Every graph is checked against the rebuilt one (nodes, displays, every edge and its
properties). Figures go to stdout, progress to stderr. The last line is
``RESULT memories=... apply_per_s=... drain_s=... first_tenth_per_s=... last_tenth_per_s=...
topup_per_s=... rebuild_s=... [baseline_...]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from foundation import log, make_memories, out

from memory.cube import resolve_entities
from memory.entities import normalize
from memory.graph.graph_store import GraphStore
from memory.store.cube_store import CubeStore
from memory.store.writer import NewMemory

PREDICATES = ["works_with", "lives_in", "visited", "knows", "member_of", "owns"]
ADD_BATCH = 100
TOPUP = 2000


def new_memories(n: int, seed: int, offset: int = 0) -> list[NewMemory]:
    rng = random.Random(seed)
    subjects = max(1, (n + offset) // 50)
    items = []
    for i, m in enumerate(make_memories(n + offset, seed=seed)[offset:]):
        entities = resolve_entities(m["text"], [], [])
        relations: list[dict[str, Any]] = []
        if len(entities) >= 2 and rng.random() < 1 / 3:
            a, b = rng.sample(entities, 2)
            valid_from = f"20{rng.randint(10, 25)}-01-01T00:00:00Z" if rng.random() < 0.3 else None
            relations.append(
                {"subject": a, "predicate": rng.choice(PREDICATES), "object": b, "valid_from": valid_from, "valid_to": None}
            )
        type_, subject = m["type"], None
        if rng.random() < 0.1:
            type_, subject = "preference", normalize(f"topic {rng.randrange(subjects)}")
        items.append(
            NewMemory(
                text=f"{m['text']} [{offset + i}]",
                type=type_,
                tags=m["tags"],
                entities=entities,
                relations=relations,
                occurred_at=None,
                metadata={},
                importance=0.5,
                confidence=1.0,
                subject=subject,
            )
        )
    return items


def fill(store: CubeStore, items: list[NewMemory]) -> list[str]:
    ids = []
    for start in range(0, len(items), ADD_BATCH):
        ids += [o.id for o in store.add(items[start : start + ADD_BATCH], client="bench", model_id=None)]
    return ids


def drain(graph: Any, store: CubeStore, batch: int, cap_s: float | None = None) -> tuple[float, list[tuple[int, float]], bool]:
    """Apply the outbox as ``MemCube.sync_graph`` does, until empty (or ``cap_s`` passed).

    Returns (seconds, [(memories, seconds) per batch], finished); a batch is one call of
    ``GraphStore._resync`` (opening and closing the database are in the total only)."""
    batches: list[tuple[int, float]] = []
    resync = graph._resync

    def timed(store: CubeStore, memory_ids: list[str], *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        result = resync(store, memory_ids, *args, **kwargs)
        batches.append((len(memory_ids), time.perf_counter() - t))
        return result

    graph._resync = timed
    t0 = time.perf_counter()
    try:
        while graph.apply_outbox(store, limit=batch):
            if cap_s is not None and time.perf_counter() - t0 > cap_s:
                return time.perf_counter() - t0, batches, False
        return time.perf_counter() - t0, batches, True
    finally:
        del graph._resync


def live_adds(graph: Any, store: CubeStore, items: list[NewMemory], per_s: float) -> tuple[float, float, int]:
    """Adds at ``per_s`` (batches of 100) while a thread applies the outbox as the server does
    (``MemCube.try_sync_graph`` whenever there is work). Returns (seconds of adds, seconds from
    the last add to an empty outbox, the largest backlog seen)."""
    stop = threading.Event()
    backlog = [0]

    def apply() -> None:
        while not stop.is_set():
            backlog[0] = max(backlog[0], store.counts()["graph_pending"])
            if not graph.apply_outbox(store):
                time.sleep(0.05)

    worker = threading.Thread(target=apply)
    worker.start()
    t0 = time.perf_counter()
    for k, start in enumerate(range(0, len(items), ADD_BATCH)):
        store.add(items[start : start + ADD_BATCH], client="bench", model_id=None)
        time.sleep(max(0.0, t0 + (k + 1) * ADD_BATCH / per_s - time.perf_counter()))
    added = time.perf_counter()
    while store.counts()["graph_pending"]:
        time.sleep(0.05)
    drained = time.perf_counter()
    stop.set()
    worker.join()
    return added - t0, drained - added, backlog[0]


def rate(batches: list[tuple[int, float]]) -> float:
    return sum(n for n, _ in batches) / max(1e-9, sum(s for _, s in batches))


def tenths(batches: list[tuple[int, float]]) -> tuple[float, float]:
    """Rate over the batches that applied the first and the last tenth of the memories."""
    total = sum(n for n, _ in batches)
    first, last, done = [], [], 0
    for n, s in batches:
        if done < total / 10:
            first.append((n, s))
        if done + n > total * 9 / 10:
            last.append((n, s))
        done += n
    return rate(first), rate(last)


def snapshot(graph: Any) -> dict[str, set]:
    """The whole graph as sets, to compare two graphs (the baseline's GraphStore has no ``dump``)."""
    return GraphStore.dump(graph)


def differences(a: dict[str, set], b: dict[str, set], *, displays: bool = True) -> list[str]:
    diffs = []
    for key in a:
        left, right = a[key], b[key]
        if key == "entities" and not displays:
            left, right = {x[0] for x in left}, {x[0] for x in right}
        if left != right:
            diffs.append(f"{key}: {len(left - right)} only in the first, {len(right - left)} only in the second")
    return diffs


def baseline_class(ref: str) -> Any:
    """``GraphStore`` from ``memory/graph/graph_store.py`` as of git ``ref``."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:memory/graph/graph_store.py"], check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="memcube-baseline-")) / "baseline_graph_store.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_graph_store", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.GraphStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--memories", type=int, default=20_000, help="memories in the cube (default 20000)")
    parser.add_argument(
        "--batch", type=int, default=5000, help="outbox entries per graph transaction (default 5000, the server's)"
    )
    parser.add_argument("--baseline", help="git ref whose graph_store.py to time on the same data, e.g. main")
    parser.add_argument(
        "--baseline-cap-s", type=float, default=120.0, help="stop the baseline drain after this long (default 120)"
    )
    parser.add_argument("--live", type=int, default=3000, help="memories added at --live-rate with the outbox applied alongside")
    parser.add_argument("--live-rate", type=float, default=300.0, help="adds per second in the live phase (default 300)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--quick", action="store_true", help="500 memories, a top-up of 200, 100 live adds")
    args = parser.parse_args(argv)
    args.topup = TOPUP
    if args.quick:
        args.memories, args.topup, args.live = 500, 200, 100

    scratch = Path(tempfile.mkdtemp(prefix="memcube-graph-bench-"))
    log(f"scratch folder {scratch}")
    result: dict[str, Any] = {"memories": args.memories, "batch": args.batch}
    try:
        store = CubeStore("bench", scratch / "cube" / "memory.db")
        store.ensure_vector_table("none", 384)  # deletes clear a memory's vector row: the table must exist
        t0 = time.perf_counter()
        items = new_memories(args.memories, seed=7)
        ids = fill(store, items)
        rng = random.Random(3)
        gone = rng.sample(ids, len(ids) // 50)
        live = {m.id for m in store.get_many(gone) if m.status == "active"}
        deleted = [i for i in gone[: len(gone) // 2] if i in live]
        archived = [i for i in gone[len(gone) // 2 :] if i in live]
        store.set_status(deleted, to="deleted", allowed_from=("active",), op="delete", client="bench")
        store.set_status(archived, to="archived", allowed_from=("active",), op="archive", client="bench")
        fill_s = time.perf_counter() - t0
        counts = store.counts()
        pending = counts["graph_pending"]
        out(
            f"filled {args.memories} memories in {fill_s:.1f} s: {counts['active']} active, {counts['archived']} archived "
            f"(superseded or archived), {counts['deleted']} deleted; {pending} outbox entries queued"
        )
        store.close()
        shutil.copy(scratch / "cube" / "memory.db", scratch / "filled.db")
        store = CubeStore("bench", scratch / "cube" / "memory.db")

        graph = GraphStore(scratch / "cube" / "graph" / "graph.kuzu")
        drain_s, batches, _ = drain(graph, store, args.batch)
        first, last = tenths(batches)
        per_s = pending / drain_s
        out(f"drain: {pending} entries in {drain_s:.1f} s = {per_s:.0f}/s over {len(batches)} batches of up to {args.batch}")
        out(
            f"  per batch (memories/s, open and close left out): first tenth (graph nearly empty) {first:.0f}/s; last tenth (graph nearly full) {last:.0f}/s"
        )
        out(f"  graph: {graph.counts()}")
        drained = snapshot(graph)

        topup_items = new_memories(args.topup, seed=7, offset=args.memories)
        fill(store, topup_items)
        topup_pending = store.counts()["graph_pending"]
        topup_s, _, _ = drain(graph, store, args.batch)
        out(f"top-up of the full graph: {topup_pending} entries in {topup_s:.2f} s = {topup_pending / topup_s:.0f}/s")
        topped_up = snapshot(graph)

        live_items = new_memories(args.live, seed=7, offset=args.memories + args.topup)
        live_s, after_s, backlog = live_adds(graph, store, live_items, args.live_rate)
        out(
            f"live: {args.live} adds at {args.live_rate:.0f}/s on the full graph ({live_s:.1f} s) with the outbox applied alongside: "
            f"empty {after_s:.2f} s after the last add; largest backlog {backlog} entries"
        )
        topped_up = snapshot(graph)

        t = time.perf_counter()
        rebuilt_n = graph.rebuild(store)
        rebuild_s = time.perf_counter() - t
        out(f"rebuild: {rebuilt_n} memories in {rebuild_s:.1f} s = {rebuilt_n / rebuild_s:.0f}/s")
        rebuilt = snapshot(graph)
        # Displays may differ after incremental work: an entity keeps the display of whichever memory named it first.
        mismatch = differences(topped_up, rebuilt, displays=False)
        out(f"  incremental graph vs rebuilt: {'identical' if not mismatch else '; '.join(mismatch)}")
        graph.close()
        store.close()
        result.update(
            apply_per_s=round(per_s),
            drain_s=round(drain_s, 1),
            first_tenth_per_s=round(first),
            last_tenth_per_s=round(last),
            topup_per_s=round(topup_pending / topup_s),
            live_drained_after_s=round(after_s, 2),
            live_backlog=backlog,
            rebuild_s=round(rebuild_s, 1),
            rebuild_per_s=round(rebuilt_n / rebuild_s),
            same_as_rebuild=int(not mismatch),
        )

        if args.baseline:
            old_class = baseline_class(args.baseline)
            (scratch / "old").mkdir()
            shutil.copy(scratch / "filled.db", scratch / "old" / "memory.db")
            old_store = CubeStore("bench", scratch / "old" / "memory.db")
            old_graph = old_class(scratch / "old" / "graph" / "graph.kuzu")
            log(f"baseline drain with graph_store.py from {args.baseline}, capped at {args.baseline_cap_s:.0f} s")
            old_s, old_batches, finished = drain(old_graph, old_store, args.batch, args.baseline_cap_s)
            applied = sum(n for n, _ in old_batches)  # memories; entries when none repeats
            old_first, _ = tenths(old_batches)
            out(
                f"baseline ({args.baseline}): {applied} memories (of {pending} entries) in {old_s:.1f} s = {applied / old_s:.0f}/s"
                + ("" if finished else " (stopped at the cap)")
            )
            tail = rate(old_batches[-3:])
            out(f"  first tenth: {old_first:.0f}/s; last 3 batches (graph at {applied} memories): {tail:.0f}/s")
            if finished:
                mismatch = differences(drained, snapshot(old_graph))
                out(f"  baseline graph vs new graph: {'identical' if not mismatch else '; '.join(mismatch)}")
                result["baseline_same"] = int(not mismatch)
            old_graph.close()
            old_store.close()
            result.update(
                baseline_applied=applied,
                baseline_per_s=round(applied / old_s),
                baseline_first_tenth_per_s=round(old_first),
                baseline_last_batches_per_s=round(tail),
                baseline_finished=int(finished),
            )
    finally:
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    out("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
