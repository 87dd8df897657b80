"""Retrieval benchmark on LoCoMo conversations, through the memory API that memory_search calls.

    uv run python bench/locomo.py [path]          # default ../shared/data/locomo-dev.json

Each conversation goes into its own cube, one memory per turn (``"<speaker>: <text>"``
plus ``" [shares a photo: <caption>]"`` where the turn has one), with ``occurred_at`` =
the session's date and ``session_id`` = the conversation and session. Every category 1-4
question is asked; a question's recall@k is the share of its evidence turns in the top k.
Searches go through ``MemCube.search``, the call behind the memory_search tool.
The project's keyword-only and vector-only modes run in the same process on the same
cubes, so the hybrid search's gain is read side by side. The last line is
``RESULT r5=... r10=... p50_ms=...`` for the default (hybrid) search.

The data set is not part of the project (CC BY-NC 4.0): read it from ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memory import MemoryHome, SearchQuery  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "locomo-dev.json"
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
KS = (1, 5, 10, 20)
ALL_SIGNALS: tuple[str, ...] = SearchQuery.model_fields["signals"].default
MODES: dict[str, tuple[str, ...] | None] = {
    "hybrid": None,  # the default signals of SearchQuery: what memory_search does
    "keyword": ("keyword",),
    "vector": ("vector",),
    "keyword+vector": ("keyword", "vector"),
    # Ablations: the default search less one signal, to read what each one buys.
    **{f"hybrid-no-{s}": tuple(x for x in ALL_SIGNALS if x != s) for s in ALL_SIGNALS},
}
_EVIDENCE = re.compile(r"D:?(\d+):(\d+)")


def evidence_ids(raw: list[str]) -> list[str]:
    """Normalise evidence ids: 'D8:6; D9:17' -> D8:6, D9:17; 'D:11:26' -> D11:26; 'D30:05' -> D30:5."""
    found: list[str] = []
    for item in raw:
        for session, turn in _EVIDENCE.findall(str(item)):
            key = f"D{int(session)}:{int(turn)}"
            if key not in found:
                found.append(key)
    return found


def session_date(text: str) -> str:
    """'1:56 pm on 8 May, 2023' -> '2023-05-08T13:56:00Z'."""
    moment = datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def turn_text(turn: dict[str, Any]) -> str:
    text = f"{turn['speaker']}: {turn['text']}"
    if turn.get("blip_caption"):
        text += f" [shares a photo: {turn['blip_caption']}]"
    return text


def sessions(conversation: dict[str, Any]) -> list[tuple[int, str, list[dict[str, Any]]]]:
    found = []
    for key, turns in conversation.items():
        match = re.fullmatch(r"session_(\d+)", key)
        if match and isinstance(turns, list) and turns:
            number = int(match.group(1))
            found.append((number, session_date(conversation[f"session_{number}_date_time"]), turns))
    return sorted(found)


def ingest(home: MemoryHome, sample: dict[str, Any]) -> tuple[str, dict[str, set[str]], int]:
    """One cube per conversation, one add call per session. Returns cube name, memory id -> dia ids, turns."""
    cube_name = re.sub(r"[^A-Za-z0-9_-]", "-", str(sample["sample_id"]))
    cube = home.cube(cube_name, create=True)
    dia_of: dict[str, set[str]] = defaultdict(set)
    count = 0
    for number, when, turns in sessions(sample["conversation"]):
        batch = [
            {"text": turn_text(t), "type": "event", "occurred_at": when, "session_id": f"{cube_name}/session-{number}",
             "metadata": {"dia_id": t["dia_id"]}}
            for t in turns
        ]
        for outcome, turn in zip(cube.add(batch, client="bench/locomo"), turns, strict=True):
            dia_of[outcome.id].add(turn["dia_id"])
        count += len(turns)
    return cube_name, dia_of, count


def evaluate(path: Path, modes: list[str], home_dir: Path, details: Path | None) -> dict[str, Any]:
    data = json.loads(path.read_text())
    home = MemoryHome(home_dir)
    results: dict[str, dict[str, Any]] = {m: {"per_q": [], "latency": [], "cpu": []} for m in modes}
    records = []
    started = time.perf_counter()
    total_turns = 0
    for sample in data:
        t0 = time.perf_counter()
        cube_name, dia_of, turns = ingest(home, sample)
        total_turns += turns
        known = {d for ids in dia_of.values() for d in ids}
        print(f"{cube_name}: {turns} turns ingested in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        cube = home.cube(cube_name)
        cube.search(SearchQuery(query="warm up", limit=5))  # load the mirror and the model outside the timings
        for qa in sample["qa"]:
            if qa.get("category") not in CATEGORIES:
                continue
            evidence = [e for e in evidence_ids(qa.get("evidence", [])) if e in known]
            if not evidence:
                continue
            for mode in modes:
                signals = MODES[mode]
                query = SearchQuery(query=qa["question"], limit=max(KS)) if signals is None else SearchQuery(
                    query=qa["question"], limit=max(KS), signals=signals
                )
                t1, c1 = time.perf_counter(), time.process_time()
                hits = cube.search(query).hits  # what the memory_search tool runs
                results[mode]["latency"].append((time.perf_counter() - t1) * 1000)
                results[mode]["cpu"].append((time.process_time() - c1) * 1000)
                ranked = [dia_of.get(h.id, set()) for h in hits]
                row = {"category": qa["category"]}
                for k in KS:
                    top = set().union(*ranked[:k]) if ranked[:k] else set()
                    found = sum(1 for e in evidence if e in top)
                    row[f"r{k}"] = found / len(evidence)
                    row[f"all{k}"] = float(found == len(evidence))
                results[mode]["per_q"].append(row)
                if details is not None:
                    records.append({"mode": mode, "cube": cube_name, "question": qa["question"], "evidence": evidence,
                                    "category": qa["category"], "ranked": [sorted(r) for r in ranked], **row})
    if details is not None:
        details.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return {"results": results, "turns": total_turns, "seconds": time.perf_counter() - started}


def summarise(per_q: list[dict[str, float]]) -> dict[str, float]:
    n = len(per_q)
    out = {"n": n}
    for k in KS:
        out[f"r{k}"] = sum(r[f"r{k}"] for r in per_q) / n if n else 0.0
        out[f"all{k}"] = sum(r[f"all{k}"] for r in per_q) / n if n else 0.0
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def report(outcome: dict[str, Any], modes: list[str]) -> str:
    load = f", load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores" if hasattr(os, "getloadavg") else ""
    lines = [f"{outcome['turns']} turns, {outcome['seconds']:.1f}s in all{load}"]
    header = f"{'mode':18} {'category':12} {'n':>4} " + " ".join(f"{'R@' + str(k):>6}" for k in KS) + " " + " ".join(
        f"{'all@' + str(k):>6}" for k in KS
    )
    lines.append(header)
    for mode in modes:
        per_q = outcome["results"][mode]["per_q"]
        groups = [("overall", per_q)] + [(name, [r for r in per_q if r["category"] == c]) for c, name in CATEGORIES.items()]
        for name, rows in groups:
            s = summarise(rows)
            lines.append(
                f"{mode:18} {name:12} {s['n']:>4} " + " ".join(f"{s[f'r{k}']:6.3f}" for k in KS) + " "
                + " ".join(f"{s[f'all{k}']:6.3f}" for k in KS)
            )
        latency, cpu = outcome["results"][mode]["latency"], outcome["results"][mode]["cpu"]
        # CPU time (all threads of this process) is what a search costs when it has the cores to itself;
        # wall time also counts waiting for a busy machine.
        lines.append(
            f"{mode:18} search ms    p50 {percentile(latency, 0.5):.1f}  p95 {percentile(latency, 0.95):.1f}  "
            f"mean {statistics.fmean(latency) if latency else 0:.1f}  (cpu p50 {percentile(cpu, 0.5):.1f})"
        )
    main = modes[0]
    s = summarise(outcome["results"][main]["per_q"])
    lines.append(f"RESULT r5={s['r5']:.3f} r10={s['r10']:.3f} p50_ms={percentile(outcome['results'][main]['latency'], 0.5):.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_DATA, help="LoCoMo JSON (a list of samples)")
    parser.add_argument(
        "--modes", default="hybrid,keyword,vector",
        help=f"comma-separated, the first gives the RESULT line: {', '.join(MODES)}; 'ablate' adds every hybrid-no-* mode",
    )
    parser.add_argument("--home", type=Path, help="keep the cubes in this folder (default: a temporary one, removed after)")
    parser.add_argument(
        "--weight", action="append", default=[], metavar="SIGNAL=W",
        help="override a signal's weight in the fused score (memory.search.WEIGHTS), to measure what it buys",
    )
    parser.add_argument("--details", type=Path, help="write one JSON line per question and mode here")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "ablate" in modes:
        modes = [m for m in modes if m != "ablate"] + [m for m in MODES if m.startswith("hybrid-no-")]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode {unknown[0]!r}; use {', '.join(MODES)}")
    from memory.retrieval import search

    for item in args.weight:
        name, _, value = item.partition("=")
        if name not in search.WEIGHTS:
            parser.error(f"unknown signal {name!r} in --weight; use {', '.join(search.WEIGHTS)}")
        search.WEIGHTS[name] = float(value)
    if not args.path.is_file():
        parser.error(f"no data file {args.path}")
    temporary = args.home is None
    home_dir = Path(tempfile.mkdtemp(prefix="memcube-locomo-")) if temporary else args.home
    try:
        outcome = evaluate(args.path, modes, home_dir, args.details)
    finally:
        if temporary:
            shutil.rmtree(home_dir, ignore_errors=True)
    print(report(outcome, modes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
