"""The relevance floor, measured: recall at 10 on LoCoMo with and without it, and nonsense queries left empty.

    uv run python bench/relevance_floor.py [path] [--home DIR]   # default ../shared/data/locomo-dev.json

Ingests the conversations as bench/locomo.py does, then asks every category 1-4 question
once with ``include_weak`` (every hit, each with its ``strength``, memory.retrieval.relevance)
and a fixed set of nonsense queries against each conversation's cube. For a grid of floors
it prints recall@10 when hits under the floor are left out, and the share of nonsense
queries whose result is then empty. The last line is
``RESULT floor=... r10_floor=... r10_all=... nonsense_empty=...`` for the floor in the code.
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
from memory.retrieval.relevance import FLOOR, HIT_FLOOR, kept, strength

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
]
GRID = (0.0, 0.1, 0.15, 0.2, 0.22, 0.25, 0.3, 0.35, 0.4)
HIT_GRID = (0.0, 0.05, 0.1)


def run(path: Path, home_dir: Path) -> dict[str, list]:
    data = json.loads(path.read_text())
    home = MemoryHome(home_dir)
    questions: list[list[tuple[float | None, bool]]] = []  # per question: (strength, evidence share) per hit
    recall_parts: list[tuple[list[float | None], list[set[str]], list[str]]] = []
    nonsense: list[list[float | None]] = []
    for sample in data:
        cube_name, dia_of, _ = ingest(home, sample, "sessions")
        known = {d for ids in dia_of.values() for d in ids}
        cube = home.cube(cube_name)
        for qa in sample["qa"]:
            if qa.get("category") not in CATEGORIES:
                continue
            evidence = [e for e in evidence_ids(qa.get("evidence", [])) if e in known]
            if not evidence:
                continue
            hits = cube.search(SearchQuery(query=qa["question"], limit=10, include_weak=True)).hits
            recall_parts.append(([strength(h) for h in hits], [dia_of.get(h.id, set()) for h in hits], evidence))
        for query in NONSENSE:
            hits = cube.search(SearchQuery(query=query, limit=10, include_weak=True)).hits
            nonsense.append([strength(h) for h in hits])
        print(f"{cube_name}: done", file=sys.stderr)
    home.close()
    return {"recall": recall_parts, "nonsense": nonsense, "questions": questions}


def recall_at(parts: list, floor: float, hit_floor: float) -> float:
    """Recall at 10 when the floor policy (memory.retrieval.relevance.kept) leaves hits out."""
    total = 0.0
    for strengths, dias, evidence in parts:
        left = [d for d, keep in zip(dias, kept(strengths, floor, hit_floor), strict=True) if keep]
        top = set().union(*left) if left else set()
        total += sum(1 for e in evidence if e in top) / len(evidence)
    return total / len(parts) if parts else 0.0


def empty_share(nonsense: list[list[float | None]], floor: float, hit_floor: float) -> float:
    empty = sum(1 for strengths in nonsense if not any(kept(strengths, floor, hit_floor)))
    return empty / len(nonsense) if nonsense else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--home", type=Path, help="keep the cubes here (default: a temporary folder)")
    parser.add_argument("--dump", type=Path, help="write the strengths and evidence per query here (JSON), to study other floors")
    args = parser.parse_args(argv)
    home_dir = args.home or Path(tempfile.mkdtemp(prefix="memcube-floor-"))
    try:
        found = run(args.path, home_dir)
    finally:
        if args.home is None:
            shutil.rmtree(home_dir, ignore_errors=True)
    if args.dump:
        args.dump.write_text(
            json.dumps(
                {
                    "recall": [(s, [sorted(d) for d in dias], e) for s, dias, e in found["recall"]],
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
    print(
        f"RESULT floor={FLOOR} hit_floor={HIT_FLOOR} r10_floor={recall_at(found['recall'], FLOOR, HIT_FLOOR):.4f} "
        f"r10_all={recall_at(found['recall'], -1.0, -1.0):.4f} nonsense_empty={empty_share(found['nonsense'], FLOOR, HIT_FLOOR):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
