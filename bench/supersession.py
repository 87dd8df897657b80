"""When does a new fact or preference replace an older one? The old rule and the new, side by side.

    uv run python bench/supersession.py                       # the labelled pairs
    uv run python bench/supersession.py --quick               # the same (CI runs every bench script with --quick)
    uv run python bench/supersession.py --locomo-facts [PATH] # default ../shared/data/locomo-dev.json

Pairs mode reads ``bench/data/supersession_pairs.jsonl`` (pairs written for this purpose:
restatements, real changes, and distinct true facts about the same person or thing),
embeds both texts with the real model (``memory.retrieval.embedder.Embedder``), resolves entities as
the cube does, and asks each rule about each pair. A pair's label is ``replace`` (the new
memory makes the old one untrue), ``restate`` (the same content in other words) or
``distinct`` (both true). Reported per rule:

- collapse: the pair ends as one live memory (replace or restate). Right for replace and
  restate pairs; for a distinct pair it hides a true memory.
- replace and restate: each verdict's own precision and recall.

The last line is ``RESULT old_precision=... new_precision=... ...`` (collapse precision
and recall of each rule, and how many distinct pairs each hides).

``--locomo-facts`` adds the extracted facts of a LoCoMo file (``observation``: per session
and speaker, a list of ``[text, evidence]``) to a real cube in a temporary home, as an
assistant would: ``type: "fact"``, the speaker as entity, the session date as
``occurred_at``, one add call per session and speaker, in session order. It counts the
facts archived on arrival and the ones taken as restatements, and beside them what the
old rule would have archived over the same vectors. It then asks the file's category 1-4
questions through the search behind ``memory_search`` and reports the share of each
question's evidence turns held by the top 10 facts (recall@10), beside the same facts
added as notes, which never supersede. The last line is
``RESULT facts=... archived=... archived_share=... restated=... old_rule_archived=... r10_fact=... r10_note=...``.
The data set is not part of the project (CC BY-NC 4.0): it is read from ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from locomo import evidence_ids

from memory import MemoryHome
from memory.cube import resolve_entities
from memory.retrieval.embedder import Embedder
from memory.retrieval.search import embedding_text
from memory.supersession import Candidate, decide, old_rule

PAIRS = ROOT / "bench" / "data" / "supersession_pairs.jsonl"
DEFAULT_LOCOMO = ROOT.parent / "shared" / "data" / "locomo-dev.json"
LABELS = ("replace", "restate", "distinct")


def load_pairs(path: Path) -> list[dict[str, Any]]:
    pairs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for number, pair in enumerate(pairs, 1):
        missing = {"old", "new", "type", "label", "category"} - pair.keys()
        if missing or pair["label"] not in LABELS:
            raise SystemExit(f"{path}:{number}: needs old, new, type, label ({'/'.join(LABELS)}), category")
    return pairs


def candidate(text: str, pair: dict[str, Any]) -> Candidate:
    return Candidate(
        text=text,
        type=pair["type"],
        role=pair.get("role"),
        subject=None,
        entities=tuple(resolve_entities(text, pair.get("entities", []), [])),
    )


def ratio(hit: int, total: int) -> float:
    return hit / total if total else float("nan")


def score(pairs: list[dict[str, Any]], verdicts: list[str]) -> dict[str, Any]:
    counts = Counter((p["label"], v) for p, v in zip(pairs, verdicts, strict=True))
    collapse_pred = sum(n for (label, v), n in counts.items() if v != "distinct")
    collapse_right = sum(n for (label, v), n in counts.items() if v != "distinct" and label != "distinct")
    collapse_true = sum(n for (label, v), n in counts.items() if label != "distinct")
    out: dict[str, Any] = {
        "collapse_p": ratio(collapse_right, collapse_pred),
        "collapse_r": ratio(collapse_right, collapse_true),
        "hidden": sum(n for (label, v), n in counts.items() if label == "distinct" and v != "distinct"),
        "distinct": sum(n for (label, _), n in counts.items() if label == "distinct"),
    }
    for verdict in ("replace", "restate"):
        predicted = sum(n for (_, v), n in counts.items() if v == verdict)
        right = counts[(verdict, verdict)]
        out[f"{verdict}_p"] = ratio(right, predicted)
        out[f"{verdict}_r"] = ratio(right, sum(n for (label, _), n in counts.items() if label == verdict))
        out[f"{verdict}_n"] = predicted
    return out


def run_pairs(path: Path, show_errors: bool) -> int:
    pairs = load_pairs(path)
    embedder = Embedder()
    started = time.perf_counter()
    vectors = embedder.embed([embedding_text(t) for p in pairs for t in (p["old"], p["new"])])
    cosines = [float(vectors[2 * i] @ vectors[2 * i + 1]) for i in range(len(pairs))]
    old_v, new_v, reasons = [], [], []
    for pair, cosine in zip(pairs, cosines, strict=True):
        old, new = candidate(pair["old"], pair), candidate(pair["new"], pair)
        old_v.append(old_rule(new, old, cosine).verdict)
        decision = decide(new, old, cosine)
        new_v.append(decision.verdict)
        reasons.append(decision.reason)
    elapsed = time.perf_counter() - started
    print(
        f"{len(pairs)} pairs from {path.name} ({dict(Counter(p['label'] for p in pairs))}), embedded and judged in {elapsed:.1f} s"
    )
    print(f"model: {embedder.model_id}\n")
    print(
        f"{'category':28} {'label':9} {'n':>3}  {'old rule':>18}  {'new rule':>18}   (verdict counts: replace/restate/distinct)"
    )
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, pair in enumerate(pairs):
        by_cat[pair["category"]].append(i)

    def tally(verdicts: list[str], idx: list[int]) -> str:
        c = Counter(verdicts[i] for i in idx)
        return f"{c['replace']:>4}/{c['restate']:>3}/{c['distinct']:>3}"

    for category, idx in sorted(by_cat.items(), key=lambda kv: (pairs[kv[1][0]]["label"], kv[0])):
        print(f"{category:28} {pairs[idx[0]]['label']:9} {len(idx):>3}  {tally(old_v, idx):>18}  {tally(new_v, idx):>18}")
    old_s, new_s = score(pairs, old_v), score(pairs, new_v)
    print(f"\n{'':28} {'old rule':>10} {'new rule':>10}")
    for key, name in [
        ("collapse_p", "collapse precision"),
        ("collapse_r", "collapse recall"),
        ("replace_p", "replace precision"),
        ("replace_r", "replace recall"),
        ("replace_n", "replace verdicts"),
        ("restate_p", "restate precision"),
        ("restate_r", "restate recall"),
        ("restate_n", "restate verdicts"),
        ("hidden", "distinct pairs hidden"),
    ]:
        a, b = old_s[key], new_s[key]
        fmt = (lambda x: f"{x:>10.3f}") if isinstance(a, float) else (lambda x: f"{x:>10d}")
        print(f"{name:28} {fmt(a)} {fmt(b)}")
    print(f"{'distinct pairs':28} {old_s['distinct']:>10d} {new_s['distinct']:>10d}")
    if show_errors:
        print("\nnew rule, verdicts that differ from the label:")
        for pair, verdict, reason, cosine in zip(pairs, new_v, reasons, cosines, strict=True):
            if verdict != pair["label"]:
                print(
                    f"  [{pair['category']}] {pair['label']}->{verdict} cos={cosine:.2f} {pair['old']!r} -> {pair['new']!r}: {reason}"
                )
    print(
        f"RESULT pairs={len(pairs)} old_precision={old_s['collapse_p']:.3f} old_recall={old_s['collapse_r']:.3f} "
        f"old_hidden={old_s['hidden']} new_precision={new_s['collapse_p']:.3f} new_recall={new_s['collapse_r']:.3f} "
        f"new_hidden={new_s['hidden']} replace_precision={new_s['replace_p']:.3f} replace_recall={new_s['replace_r']:.3f} "
        f"restate_precision={new_s['restate_p']:.3f} restate_recall={new_s['restate_r']:.3f}"
    )
    return 0


def session_date(text: str) -> str:
    """'4:05 pm on 19 March, 2022' -> '2022-03-19T16:05:00Z'."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").strftime("%Y-%m-%dT%H:%M:%SZ")


def observations(sample: dict[str, Any]) -> list[tuple[int, str, str, list[tuple[str, list[str]]]]]:
    """(session number, date, speaker, [(fact text, evidence turn ids)]) in session order."""
    found = []
    for key, by_speaker in sample.get("observation", {}).items():
        match = re.fullmatch(r"session_(\d+)_observation", key)
        if not match or not isinstance(by_speaker, dict):
            continue
        number = int(match.group(1))
        when = session_date(sample["conversation"][f"session_{number}_date_time"])
        for speaker, facts in by_speaker.items():
            items = [
                (f[0], evidence_ids(f[1] if isinstance(f[1], list) else [f[1]]))
                for f in facts
                if isinstance(f, list) and len(f) > 1 and isinstance(f[0], str) and f[0].strip()
            ]
            if items:
                found.append((number, when, speaker, items))
    return sorted(found, key=lambda x: x[0])


def simulate_old_rule(batches: list[list[tuple[str, str, Any]]]) -> int:
    """How many facts the old rule archives on arrival, added batch by batch as ``run_locomo`` adds
    them: each batch (text, speaker, vector) is judged against what was live before it."""
    live: list[tuple[Candidate, Any]] = []
    archived = 0
    for batch in batches:
        arriving = [(Candidate(text=t, type="fact", entities=tuple(resolve_entities(t, [s], []))), v) for t, s, v in batch]
        for new, vector in arriving:
            keep = []
            for old, old_vector in live:
                if old_rule(new, old, float(vector @ old_vector)).verdict == "replace":
                    archived += 1
                else:
                    keep.append((old, old_vector))
            live = keep
        live += arriving
    return archived


def ingest(
    cube: Any, sample: dict[str, Any], type_: str, show: bool, totals: Counter[str]
) -> tuple[dict[str, set[str]], list[list[tuple[str, str]]]]:
    """Add the sample's facts as ``type_``, one call per session and speaker (at most 50 at a time).
    Returns memory id -> evidence turn ids, and the batches as added (text, speaker)."""
    evidence_of: dict[str, set[str]] = defaultdict(set)
    batches: list[list[tuple[str, str]]] = []
    for number, when, speaker, items in observations(sample):
        batch = [
            {"text": t, "type": type_, "entities": [speaker], "occurred_at": when, "session_id": f"{cube.name}/session-{number}"}
            for t, _ in items
        ]
        for start in range(0, len(batch), 50):
            part, evidence = batch[start : start + 50], items[start : start + 50]
            for outcome, item, (_, turns) in zip(cube.add(part, client="bench/supersession"), part, evidence, strict=True):
                evidence_of[outcome.id].update(turns)
                totals["restated" if outcome.restated else "created" if outcome.created else "duplicate"] += 1
                if outcome.restated and show:
                    print(f"  restated: {item['text']!r} -> {cube.get([outcome.restated])[0].text!r}")
                for gone in outcome.superseded:
                    totals["superseded"] += 1
                    if show:
                        print(f"  superseded: {cube.get([gone.id])[0].text!r} by {item['text']!r}: {gone.reason}")
            batches.append([(t["text"], speaker) for t in part])
    return evidence_of, batches


def recall_at(cube: Any, sample: dict[str, Any], evidence_of: dict[str, set[str]], k: int = 10) -> list[float]:
    """Per category 1-4 question: the share of its evidence turns held by the top ``k`` memories
    that ``memory_search`` returns (a restated fact holds the evidence of its restatements)."""
    scores = []
    for qa in sample.get("qa", []):
        wanted = set(evidence_ids(qa.get("evidence", [])))
        if qa.get("category") not in (1, 2, 3, 4) or not wanted:
            continue
        hits = cube.search({"query": str(qa["question"]), "limit": k}).hits
        found = set().union(*(evidence_of.get(h.id, set()) for h in hits)) if hits else set()
        scores.append(len(wanted & found) / len(wanted))
    return scores


def run_locomo(path: Path, show: bool) -> int:
    data = json.loads(path.read_text())
    folder = Path(tempfile.mkdtemp(prefix="memcube-supersession-"))
    home = MemoryHome(folder)
    started = time.perf_counter()
    totals: Counter[str] = Counter()
    note_totals: Counter[str] = Counter()
    recall: dict[str, list[float]] = {"fact": [], "note": []}
    try:
        for sample in data:
            name = re.sub(r"[^A-Za-z0-9_-]", "-", str(sample.get("sample_id", "conv")))
            cube = home.cube(name, create=True)
            evidence_of, batches = ingest(cube, sample, "fact", show, totals)
            facts = sum(len(b) for b in batches)
            stats = cube.stats()
            flat = [pair for batch in batches for pair in batch]
            vectors = iter(home.embedder.embed([embedding_text(t) for t, _ in flat]))
            old = simulate_old_rule([[(t, s, next(vectors)) for t, s in batch] for batch in batches])
            # The same facts as notes, which never supersede: the recall a person would expect.
            notes = home.cube(f"{name}-notes", create=True)
            note_evidence, _ = ingest(notes, sample, "note", False, note_totals)
            recall["fact"] += recall_at(cube, sample, evidence_of)
            recall["note"] += recall_at(notes, sample, note_evidence)
            print(f"{name}: {facts} facts, {stats.active} active, {stats.archived} archived, old rule would archive {old}")
            totals["facts"] += facts
            totals["archived"] += stats.archived
            totals["old_archived"] += old
    finally:
        home.close()
        shutil.rmtree(folder, ignore_errors=True)
    share = totals["archived"] / totals["facts"] if totals["facts"] else 0.0
    old_share = totals["old_archived"] / totals["facts"] if totals["facts"] else 0.0
    r_fact = sum(recall["fact"]) / len(recall["fact"]) if recall["fact"] else float("nan")
    r_note = sum(recall["note"]) / len(recall["note"]) if recall["note"] else float("nan")
    print(f"added and asked in {time.perf_counter() - started:.1f} s: {dict(totals)}")
    print(f"evidence recall@10 over {len(recall['fact'])} questions: as facts {r_fact:.3f}, as notes {r_note:.3f}")
    print(
        f"RESULT facts={totals['facts']} archived={totals['archived']} archived_share={share:.4f} "
        f"restated={totals['restated']} old_rule_archived={totals['old_archived']} old_rule_share={old_share:.4f} "
        f"r10_fact={r_fact:.3f} r10_note={r_note:.3f}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=PAIRS, help="labelled pairs, one JSON object a line")
    parser.add_argument(
        "--errors",
        action="store_true",
        help="list the pairs where the new rule disagrees with the label (with --locomo-facts: each restatement and supersession)",
    )
    parser.add_argument(
        "--locomo-facts",
        nargs="?",
        type=Path,
        const=DEFAULT_LOCOMO,
        metavar="PATH",
        help="add a LoCoMo file's extracted facts to a cube and count what is archived",
    )
    parser.add_argument("--quick", action="store_true", help="the labelled pairs (the default; it takes seconds)")
    args = parser.parse_args(argv)
    if args.locomo_facts is not None:
        if not args.locomo_facts.is_file():
            parser.error(f"no data file {args.locomo_facts}")
        return run_locomo(args.locomo_facts, args.errors)
    if not args.pairs.is_file():
        parser.error(f"no pairs file {args.pairs}")
    return run_pairs(args.pairs, args.errors)


if __name__ == "__main__":
    raise SystemExit(main())
