"""The relevance floor, measured: recall at 10 on LoCoMo with and without it, and nonsense queries left empty.

    uv run python bench/relevance_floor.py [path] [--home DIR]   # default ../shared/data/locomo-dev.json
    uv run python bench/relevance_floor.py --quick   # CI's check that it runs: the first conversation only

Ingests the conversations as bench/locomo.py does, then asks every category 1-4 question
once with ``include_weak`` (every hit, each with its ``strength``, memory.retrieval.relevance)
and a fixed set of nonsense queries against each conversation's cube. For a grid of floors
it prints recall@10 when hits under the floor are left out, and the share of nonsense
queries whose result is then empty; then the reliability table (a question's hits by
strength and by confidence -> the share in its evidence). ``--facts``: the facts arrival.
The last line is ``RESULT floor=... r10_floor=... r10_all=... nonsense_empty=... high_right=...``
for the floor in the code.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from locomo import CATEGORIES, DEFAULT_DATA, evidence_ids, ingest

from memory import MemoryHome, SearchQuery
from memory.retrieval.relevance import FLOOR, HIT_FLOOR, WORD_SIGNALS, asks_anything, kept, strength

# Generic queries about nothing a personal memory holds: what "nothing relevant" should answer.
NONSENSE = [
    "quantum chromodynamics of purple giraffes",
    "how do I replace the carburetor on a 1967 tractor",
    "xylophone zebra quasar marmalade",
    "the square root of a negative banana",
    "asdkjh qwe zzxv plorf",
    "submarine propeller torque specifications",
    "medieval tax law in the Duchy of Burgundy",
    "best firmware for a router's bootloader",
    "orbital mechanics of Jupiter's moon Io",
    "kernel panic in the ext4 journaling driver",
    "how many teeth does a narwhal have",
    "lorem ipsum dolor sit amet consectetur",
    "cobalt mining regulations in 1890",
    "the chemical formula of ammonium dichromate",
    "wingspan of a pterodactyl in meters",
    "compile-time template metaprogramming errors",
    "sewage pipe diameter for an apartment block",
    "crop rotation of barley in ancient Mesopotamia",
    "tensile strength of carbon fibre bicycle frames",
    "zyxwv gronk blibber fnord",
    "the of and",
    "what is it",
    "zygomorphic",
]
GRID = (0.0, 0.1, 0.15, 0.2, 0.22, 0.25, 0.3, 0.35, 0.4)
HIT_GRID = (0.0, 0.05, 0.1)


def _strengths(hits: list, query: str) -> list[float | None]:
    """Each hit's strength as the floor reads it (a query of stop words alone: none passes)."""
    if not asks_anything(query):
        return [1.0 if "exact" in h.signals else 0.0 for h in hits]
    return [strength(h) for h in hits]


def _matched(hits: list) -> list[bool]:
    return [any(s in h.signals for s in WORD_SIGNALS) for h in hits]


def run(path: Path, home_dir: Path, arrival: str = "sessions", conversations: int | None = None) -> dict[str, list]:
    data = json.loads(path.read_text())[:conversations]
    home = MemoryHome(home_dir)
    questions: list[tuple[float | None, str, bool]] = []  # every hit of every question: (strength, confidence, right)
    recall_parts: list[tuple[list[float | None], list[set[str]], list[str], list[bool]]] = []
    nonsense: list[tuple[list[float | None], list[bool]]] = []
    for sample in data:
        cube_name, dia_of, _ = ingest(home, sample, arrival)
        known = {d for ids in dia_of.values() for d in ids}
        cube = home.cube(cube_name)
        for qa in sample["qa"]:
            if qa.get("category") not in CATEGORIES:
                continue
            evidence = [e for e in evidence_ids(qa.get("evidence", [])) if e in known]
            if not evidence:
                continue
            hits = cube.search(SearchQuery(query=qa["question"], limit=10, include_weak=True)).hits
            dias = [dia_of.get(h.id, set()) for h in hits]
            recall_parts.append((_strengths(hits, qa["question"]), dias, evidence, _matched(hits)))
            questions += [(strength(h), h.confidence or "", bool(d & set(evidence))) for h, d in zip(hits, dias, strict=True)]
        for query in NONSENSE:
            hits = cube.search(SearchQuery(query=query, limit=10, include_weak=True)).hits
            nonsense.append((_strengths(hits, query), _matched(hits)))
        print(f"{cube_name}: done", file=sys.stderr)
    home.close()
    return {"recall": recall_parts, "nonsense": nonsense, "questions": questions}


def recall_at(parts: list, floor: float, hit_floor: float) -> float:
    """Recall at 10 when the floor policy (memory.retrieval.relevance.kept) leaves hits out."""
    total = 0.0
    for strengths, dias, evidence, matched in parts:
        left = [d for d, keep in zip(dias, kept(strengths, floor, hit_floor, matched), strict=True) if keep]
        top = set().union(*left) if left else set()
        total += sum(1 for e in evidence if e in top) / len(evidence)
    return total / len(parts) if parts else 0.0


def empty_share(nonsense: list[tuple[list[float | None], list[bool]]], floor: float, hit_floor: float) -> float:
    empty = sum(1 for strengths, matched in nonsense if not any(kept(strengths, floor, hit_floor, matched)))
    return empty / len(nonsense) if nonsense else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--home", type=Path, help="keep the cubes here (default: a temporary folder)")
    parser.add_argument("--facts", action="store_true", help="the extracted facts arrival (bench/locomo.py --facts)")
    parser.add_argument("--dump", type=Path, help="write the strengths and evidence per query here (JSON), to study other floors")
    parser.add_argument("--quick", action="store_true", help="the first conversation only")
    args = parser.parse_args(argv)
    if not args.path.is_file():
        # CI runs every bench script; without the data set this one has nothing to measure.
        print(f"# skipped: no LoCoMo data at {args.path} (CC BY-NC 4.0, not part of the project)", flush=True)
        print("RESULT skipped=no-data")
        return 0
    home_dir = args.home or Path(tempfile.mkdtemp(prefix="memcube-floor-"))
    try:
        found = run(args.path, home_dir, "facts" if args.facts else "sessions", 1 if args.quick else None)
    finally:
        if args.home is None:
            shutil.rmtree(home_dir, ignore_errors=True)
    if args.dump:
        args.dump.write_text(
            json.dumps(
                {
                    "recall": [(s, [sorted(d) for d in dias], e, m) for s, dias, e, m in found["recall"]],
                    "nonsense": found["nonsense"],
                }
            )
        )
    print(f"{len(found['recall'])} questions, {len(found['nonsense'])} nonsense queries ({len(NONSENSE)} per cube)")
    print("floor: the best hit's strength needed for any hit; hit floor: each hit's, once the best passes")
    print(f"{'floor':>6} {'hit floor':>9} {'R@10':>7} {'nonsense empty':>15}")
    for floor in sorted({*GRID, FLOOR}):
        for hit_floor in sorted({*HIT_GRID, HIT_FLOOR}):
            mark = "  <- memory.retrieval.relevance" if (floor, hit_floor) == (FLOOR, HIT_FLOOR) else ""
            print(
                f"{floor:6.2f} {hit_floor:9.2f} {recall_at(found['recall'], floor, hit_floor):7.4f} "
                f"{empty_share(found['nonsense'], floor, hit_floor):15.3f}{mark}"
            )
    print("reliability: a question's hits (include_weak, top 10) by strength and by confidence -> share in its evidence")
    buckets: dict[str, list[int]] = {}
    for value, confidence, right in found["questions"]:
        for key in (f"strength {min(9, int((value or 0) * 10)) / 10:.1f}+", f"confidence {confidence}"):
            buckets.setdefault(key, [0, 0])
            buckets[key][0] += right
            buckets[key][1] += 1
    for key in sorted(buckets):
        right_n, n = buckets[key]
        print(f"  {key:18} {n:5d} hits {right_n / n:6.3f} right")
    high = buckets.get("confidence high", [0, 0])
    print(
        f"RESULT floor={FLOOR} hit_floor={HIT_FLOOR} r10_floor={recall_at(found['recall'], FLOOR, HIT_FLOOR):.4f} "
        f"r10_all={recall_at(found['recall'], -1.0, -1.0):.4f} nonsense_empty={empty_share(found['nonsense'], FLOOR, HIT_FLOOR):.3f} "
        f"high_right={high[0] / max(1, high[1]):.3f} high_n={high[1]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
