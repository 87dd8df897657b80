"""Search latency of two versions of MemCube, side by side in one run.

    uv run python bench/ab_search.py --baseline PATH [--memories N | --home HOME] [--queries N]
    uv run python bench/ab_search.py --quick     # CI's check that it runs: 300 memories, 10 queries, this checkout against itself

``PATH`` is another checkout of the project (e.g. a git worktree of an older commit). A
cube of N synthetic memories (``bench/foundation.py``'s generator) is written once by the
baseline's code, copied, and opened by one worker process per version, each running its
own code from its own checkout with this environment's packages. Queries then go to the
two workers in turn (AB, BA, AB, ...), one at a time, so a change of load on the machine
hits both alike. Each worker times its own search call, query embedding included: the
call behind the ``memory_search`` tool in that version (``search_in_time`` where it
exists, else ``search``). ``--home`` starts from a copy of an existing home's cube
``bench`` instead of building one (a 100,000-memory cube takes a while to embed).

The last line is ``RESULT baseline_p50_ms=... candidate_p50_ms=... ratio_p50=... ...``
(ratio: candidate / baseline; below 1 is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from foundation import make_memories, make_queries

BUILD = """
import json, sys
from memory import MemoryHome
home = MemoryHome(sys.argv[1])
cube = home.cube("bench", create=True)
memories = json.load(open(sys.argv[2]))
for start in range(0, len(memories), 100):
    cube.add(memories[start:start + 100])
    if start % 2000 == 0:
        print(f"built {start + 100}/{len(memories)}", file=sys.stderr, flush=True)
home.close()
"""

WORKER = """
import json, sys, time
from memory import MemoryHome
home = MemoryHome(sys.argv[1])
cube = home.cube("bench")
search = getattr(cube, "search_in_time", None) or cube.search
print("ready", flush=True)
for line in sys.stdin:
    query = json.loads(line)
    t0 = time.perf_counter()
    result = search({"query": query, "limit": 10})
    ms = (time.perf_counter() - t0) * 1000
    hits = result if isinstance(result, list) else result.hits
    print(json.dumps({"ms": ms, "ids": [h.id for h in hits]}), flush=True)
home.close()
"""


def _run_in(checkout: Path, code: str, *args: str, **popen: object) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=checkout,
        env=env,
        text=True,
        **popen,  # type: ignore[call-overload]
    )


def _count(home: Path) -> int:
    """Active memories of the home's cube ``bench``."""
    sys.path.insert(0, str(ROOT))
    from memory import MemoryHome

    opened = MemoryHome(home)
    try:
        return opened.cube("bench").stats().active
    finally:
        opened.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="another checkout of MemCube (required but with --quick)")
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--home", type=Path, help="copy this home (with a cube named bench) instead of building a cube")
    parser.add_argument(
        "--quick", action="store_true", help="300 memories, 10 queries, 2 warm-up; the baseline defaults to this checkout"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.memories, args.queries, args.warmup = 300, 10, 2
        args.baseline = args.baseline or ROOT
    if args.baseline is None:
        parser.error("--baseline is required (or --quick, which compares this checkout with itself)")
    baseline = args.baseline.resolve()
    scratch = Path(tempfile.mkdtemp(prefix="memcube-ab-"))
    try:
        if args.home is not None:
            shutil.copytree(args.home, scratch / "a")
            shutil.copytree(args.home, scratch / "b")
            # Counted on the candidate's copy: opening a cube may bring it to a newer schema than the baseline knows.
            args.memories = _count(scratch / "b")
        else:
            data = scratch / "memories.json"
            data.write_text(json.dumps(make_memories(args.memories)))
            t0 = time.perf_counter()
            built = _run_in(baseline, BUILD, str(scratch / "a"), str(data))
            if built.wait() != 0:
                raise SystemExit("the baseline could not build the cube")
            print(f"cube of {args.memories} memories built by the baseline in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            shutil.copytree(scratch / "a", scratch / "b")
        workers = {
            "baseline": _run_in(baseline, WORKER, str(scratch / "a"), stdin=subprocess.PIPE, stdout=subprocess.PIPE),
            "candidate": _run_in(ROOT, WORKER, str(scratch / "b"), stdin=subprocess.PIPE, stdout=subprocess.PIPE),
        }
        for worker in workers.values():
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"

        def ask(name: str, query: str) -> dict[str, object]:
            worker = workers[name]
            assert worker.stdin is not None and worker.stdout is not None
            worker.stdin.write(json.dumps(query) + "\n")
            worker.stdin.flush()
            return json.loads(worker.stdout.readline())

        queries = make_queries(args.queries + args.warmup)
        times: dict[str, list[float]] = {"baseline": [], "candidate": []}
        same_top10 = 0
        for i, query in enumerate(queries):
            order = ("baseline", "candidate") if i % 2 == 0 else ("candidate", "baseline")
            answers = {name: ask(name, query) for name in order}
            if i >= args.warmup:
                for name in order:
                    times[name].append(float(answers[name]["ms"]))  # type: ignore[arg-type]
                same_top10 += answers["baseline"]["ids"] == answers["candidate"]["ids"]
        for worker in workers.values():
            assert worker.stdin is not None
            worker.stdin.close()
            worker.wait(timeout=60)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"search at {args.memories} memories, {args.queries} queries in turn, query embedding included (ms):")
    for name, values in times.items():
        print(f"  {name:<10} p50 {pct(values, 50):7.2f}  p95 {pct(values, 95):7.2f}  mean {statistics.fmean(values):7.2f}")
    ratio = pct(times["candidate"], 50) / pct(times["baseline"], 50)
    print(f"  candidate / baseline p50: {ratio:.3f}; identical top 10 for {same_top10} of {args.queries} queries")
    print(
        f"RESULT baseline_p50_ms={pct(times['baseline'], 50):.2f} candidate_p50_ms={pct(times['candidate'], 50):.2f} "
        f"ratio_p50={ratio:.3f} baseline_p95_ms={pct(times['baseline'], 95):.2f} "
        f"candidate_p95_ms={pct(times['candidate'], 95):.2f} same_top10={same_top10}/{args.queries}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
