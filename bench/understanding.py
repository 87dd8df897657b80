"""Understanding, measured on a personal-assistant dev set: entities, relations, time, noise and confidence.

    uv run python bench/understanding.py [--data PATH] [--verbose] [--home DIR]
    uv run python bench/understanding.py --quick   # entities and relations only, no search (CI's check that it runs)

The set (default bench/data/assistant_life.json, written by hand for issue 27) holds one
fictional person's memories over four months with labelled entities and relations, questions
with gold memory ids (time questions read against a fixed "now"), and nonsense queries.

Prints, each part timed:
- entity precision/recall of ``memory.entities.extract_entities`` against the labels (micro, a
  name once per memory, compared on ``memory.entities.normalize`` with a leading title or kinship
  word and "the" dropped, so "Dr. Okafor" and "Okafor" are one name); recall per labelled kind,
  and with ``extract_mentions`` the share of found names given the labelled kind;
- the same figure through the cube: the set added to a real cube in time order (as ``ingest``
  does), each memory's entities read back from the store: what the product keeps, with the
  names the cube already knew linked (``extract_entities``'s ``known``); a memory kept as a
  restatement of an older one is left out;
- relation precision/recall of ``memory.relations.extract_relations`` (n/a while the module is
  missing); symmetric types match in either direction;
- through the search the MCP tool ``memory_search`` runs (``MemCube.search`` with ``now``, weak
  hits left out as the tool does): time-question top-1, R@1/R@5/R@10 on all questions (and with
  weak hits kept), the share of nonsense queries answered with no hit, and how often hits
  labelled "high" and "medium" are gold.

``--quick`` measures entities (text alone and through the cube) and relations, no search. The last line is
``RESULT key=value ...``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memory import MemoryHome, SearchQuery
from memory.entities import extract_entities, normalize

DEFAULT_DATA = ROOT / "bench" / "data" / "assistant_life.json"
KINDS = ("person", "place", "org", "work", "product", "other")
SYMMETRIC = frozenset({"sibling_of", "spouse_of", "partner_of", "cousin_of", "colleague_of", "friend_of"})
FAMILY_ROLES = (
    "daughter son child mother father parent sister brother sibling wife husband spouse partner aunt uncle cousin "
    "grandmother grandfather niece nephew"
)
RELATION_TYPES = frozenset(
    [f"{role}_of" for role in [*FAMILY_ROLES.split(), "colleague", "manager", "mentor", "friend"]]
    + ["works_at", "lives_in", "from", "member_of", "owns", "studies_at", "located_in"]
)
# Words before a name that are not the name: "Dr. Okafor", "Aunt Rosa", "Grandma Ruth" name Okafor, Rosa, Ruth.
_TITLES = re.compile(
    r"^(?:(?:dr|mr|mrs|ms|mx|prof|sir|dame|aunt|auntie|uncle|cousin|grandma|grandpa|granny|nana|grandmother|"
    r"grandfather|sister|brother|the)\.?\s+)+"
)
LIMIT = 10


def name_key(name: str) -> str:
    """An entity's key for comparison: normalized, a leading title or kinship word and "the" dropped."""
    key = normalize(name)
    stripped = _TITLES.sub("", key)
    return stripped or key


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


# ---------------------------------------------------------------- entities


def entity_part(memories: list[dict[str, Any]], verbose: bool) -> dict[str, float]:
    """``extract_entities`` of each memory's text alone (no names known), against the labels."""
    mentions_fn = getattr(importlib.import_module("memory.entities"), "extract_mentions", None)
    kinds: dict[str, dict[str, str]] = {}
    if mentions_fn is not None:
        for memory in memories:
            kinds[memory["id"]] = {}
            for mention in mentions_fn(memory["text"]):
                kinds[memory["id"]].setdefault(name_key(mention.text), mention.kind)
    predicted = {m["id"]: extract_entities(m["text"]) for m in memories}
    precision, recall = score_entities("entities", memories, predicted, kinds if mentions_fn else None, verbose)
    return {"ent_p": precision, "ent_r": recall}


def score_entities(
    title: str,
    memories: list[dict[str, Any]],
    names: dict[str, list[str]],
    kinds_by_memory: dict[str, dict[str, str]] | None,
    verbose: bool,
) -> tuple[float, float]:
    """Micro precision and recall of ``names`` (per memory id) against the labels, printed with
    recall per labelled kind (and, given the kinds found, the share of found names given the
    labelled kind). Memories missing from ``names`` are left out."""
    tp = fp = fn = 0
    kind_total: Counter[str] = Counter()
    kind_found: Counter[str] = Counter()
    kind_right: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    extra: Counter[str] = Counter()
    for memory in memories:
        if memory["id"] not in names:
            continue
        gold: dict[str, str] = {}
        for entity in memory["entities"]:
            gold.setdefault(name_key(entity["text"]), entity["kind"])
        predicted = {name_key(n) for n in names[memory["id"]]}
        predicted.discard("")
        tp += len(predicted & gold.keys())
        fp += len(predicted - gold.keys())
        fn += len(gold.keys() - predicted)
        missed.update(f"{k} ({gold[k]})  in: {memory['text'][:70]}" for k in gold.keys() - predicted)
        extra.update(f"{k}  in: {memory['text'][:70]}" for k in predicted - gold.keys())
        kinds = (kinds_by_memory or {}).get(memory["id"], {})
        for key, kind in gold.items():
            kind_total[kind] += 1
            if key in predicted:
                kind_found[kind] += 1
                if kinds.get(key) == kind:
                    kind_right[kind] += 1
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    print(f"{title}: {tp + fn} labelled, {tp + fp} extracted, {tp} right: P={precision:.3f} R={recall:.3f}")
    with_kinds = kinds_by_memory is not None
    header = f"  {'kind':8} {'n':>4} {'recall':>7}" + (f" {'kind right':>10}" if with_kinds else "")
    print(header)
    for kind in KINDS:
        if kind_total[kind]:
            line = f"  {kind:8} {kind_total[kind]:4d} {ratio(kind_found[kind], kind_total[kind]):7.3f}"
            if with_kinds:
                line += f" {ratio(kind_right[kind], kind_found[kind]):10.3f}"
            print(line)
    if verbose:
        print("  missed (label not extracted):")
        for item, _ in missed.most_common(40):
            print(f"    - {item}")
        print("  false positives (extracted, not labelled):")
        for item, _ in extra.most_common(40):
            print(f"    + {item}")
    return precision, recall


def cube_entity_part(cube: Any, created: dict[str, str], memories: list[dict[str, Any]], verbose: bool) -> dict[str, float]:
    """The entities the cube stored for each memory when the set was added in order (``ingest``):
    what the product keeps, names the cube already knew linked (``known``), read back from the store.
    A memory the cube kept as a restatement of an older one stores no entities of its own: left out."""
    ids = list(created.values())
    stored = {m.id: m.entities for start in range(0, len(ids), 100) for m in cube.store.get_many(ids[start : start + 100])}
    names = {set_id: stored[cube_id] for set_id, cube_id in created.items()}
    skipped = len(memories) - len(names)
    title = f"entities through the cube ({skipped} restated memories left out)" if skipped else "entities through the cube"
    precision, recall = score_entities(title, memories, names, None, verbose)
    return {"ent_cube_p": precision, "ent_cube_r": recall}


# ---------------------------------------------------------------- relations


def relation_key(source: str, type_: str, target: str) -> tuple[str, frozenset[str] | tuple[str, str]]:
    ends = (name_key(source), name_key(target))
    return (type_, frozenset(ends)) if type_ in SYMMETRIC else (type_, ends)


def relation_part(memories: list[dict[str, Any]], verbose: bool) -> dict[str, float] | None:
    try:
        module = importlib.import_module("memory.relations")
    except ImportError:
        print("relations: n/a (memory.relations is not there yet)")
        return None
    extract: Callable[[str], Iterable[Any]] = module.extract_relations
    tp = fp = fn = 0
    per_type: dict[str, Counter[str]] = defaultdict(Counter)
    missed: list[str] = []
    extra: list[str] = []
    for memory in memories:
        gold = {relation_key(r["source"], r["type"], r["target"]) for r in memory["relations"]}
        predicted = {relation_key(r.source, r.type, r.target) for r in extract(memory["text"])}
        tp += len(predicted & gold)
        fp += len(predicted - gold)
        fn += len(gold - predicted)
        for key in gold:
            per_type[key[0]]["gold"] += 1
            per_type[key[0]]["found"] += key in predicted
        for key in predicted - gold:
            per_type[key[0]]["extra"] += 1
        missed.extend(f"{k[0]} {sorted(k[1])}  in: {memory['text'][:70]}" for k in gold - predicted)
        extra.extend(f"{k[0]} {sorted(k[1])}  in: {memory['text'][:70]}" for k in predicted - gold)
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    print(f"relations: {tp + fn} labelled, {tp + fp} extracted, {tp} right: P={precision:.3f} R={recall:.3f}")
    print(f"  {'type':12} {'gold':>4} {'found':>5} {'wrong':>5}")
    for type_ in sorted(per_type):
        c = per_type[type_]
        print(f"  {type_:12} {c['gold']:4d} {c['found']:5d} {c['extra']:5d}")
    if verbose:
        print("  missed:")
        for item in missed[:40]:
            print(f"    - {item}")
        print("  wrong:")
        for item in extra[:40]:
            print(f"    + {item}")
    return {"rel_p": precision, "rel_r": recall}


# ---------------------------------------------------------------- search


def ingest(home: MemoryHome, memories: list[dict[str, Any]]) -> tuple[Any, dict[str, set[str]], dict[str, str]]:
    """One cube with the set's memories, added as a client would over the months, without labels.

    The undated memories come first in one call, then one call per day in time order, so a later
    preference can replace an earlier one and names already known are linked. Returns the cube,
    per cube memory id the set ids it stands for (a restatement returns an older id), and per set
    id the cube memory it created (restatements left out).
    """
    cube = home.cube("assistant-life", create=True)
    days: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for memory in sorted(memories, key=lambda m: m["occurred_at"] or ""):
        days[(memory["occurred_at"] or "")[:10]].append(memory)
    stands_for: dict[str, set[str]] = defaultdict(set)
    created: dict[str, str] = {}
    replaced = restated = 0
    for day in sorted(days):
        batch = [
            {"text": m["text"], "type": m["type"], "occurred_at": m["occurred_at"], "due_at": m["due_at"], "state": m["state"]}
            for m in days[day]
        ]
        for outcome, memory in zip(cube.add(batch, client="bench/understanding"), days[day], strict=True):
            stands_for[outcome.id].add(memory["id"])
            if outcome.created:
                created[memory["id"]] = outcome.id
            replaced += len(outcome.superseded)
            restated += outcome.restated is not None
    print(f"ingest: {len(days)} add calls, {replaced} older memories replaced, {restated} restatements kept as one")
    return cube, stands_for, created


def cube_part(data: dict[str, Any], home_dir: Path, verbose: bool, search: bool) -> dict[str, float]:
    """The set added to a real cube: the entities it stored, then (``search``) the search measures."""
    started = time.perf_counter()
    home = MemoryHome(home_dir)
    try:
        cube, stands_for, created = ingest(home, data["memories"])
        print(f"ingest: {len(data['memories'])} memories in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        out = cube_entity_part(cube, created, data["memories"], verbose)
        print(f"  ({time.perf_counter() - started:.1f}s)")
        if search:
            out.update(_search(cube, stands_for, data, verbose))
        return out
    finally:
        home.close()


def _ids(hits: list[Any], stands_for: dict[str, set[str]]) -> list[set[str]]:
    return [stands_for.get(h.id, set()) for h in hits]


def _search(cube: Any, stands_for: dict[str, set[str]], data: dict[str, Any], verbose: bool) -> dict[str, float]:
    started = time.perf_counter()
    default_now = data["now"]
    recall: dict[str, dict[int, list[float]]] = {"tool": defaultdict(list), "weak": defaultdict(list)}
    time_right: list[bool] = []
    by_kind: dict[str, list[bool]] = defaultdict(list)
    confidence: dict[str, Counter[str]] = defaultdict(Counter)
    first_misses: list[str] = []
    for question in data["questions"]:
        gold = set(question["gold"])
        now = question.get("now", default_now)
        for mode, weak in (("tool", False), ("weak", True)):
            hits = cube.search(SearchQuery(query=question["q"], limit=LIMIT, include_weak=weak), now=now).hits
            found = _ids(hits, stands_for)
            for k in (1, 5, 10):
                top = set().union(*found[:k]) if found[:k] else set()
                recall[mode][k].append(len(gold & top) / len(gold))
            if mode != "tool":
                continue
            first = bool(found) and bool(found[0] & gold)
            by_kind[question["kind"]].append(first)
            if question["kind"] == "time":
                time_right.append(first)
            if not first:
                got = hits[0].text[:60] if hits else "(no hit)"
                first_misses.append(f"{question['kind']:10} {question['q']}  [now {now[:10]}]  -> {got}")
            for hit, ids in zip(hits, found, strict=True):
                confidence[hit.confidence or "none"]["right" if ids & gold else "wrong"] += 1
    nonsense_hits: list[int] = []
    nonsense_high = 0
    for query in data["nonsense"]:
        hits = cube.search(SearchQuery(query=query, limit=LIMIT), now=default_now).hits
        nonsense_hits.append(len(hits))
        nonsense_high += sum(1 for h in hits if h.confidence == "high")
        if verbose and hits:
            print(f"  nonsense with hits: {query!r}: {len(hits)} ({hits[0].confidence}: {hits[0].text[:50]})")
    elapsed = time.perf_counter() - started
    questions = len(data["questions"])
    out: dict[str, float] = {
        "time_top1": ratio(sum(time_right), len(time_right)),
        "r1": _mean(recall["tool"][1]),
        "r5": _mean(recall["tool"][5]),
        "r10": _mean(recall["tool"][10]),
        "r10_weak": _mean(recall["weak"][10]),
        "nonsense_empty": ratio(sum(1 for n in nonsense_hits if n == 0), len(nonsense_hits)),
        "high_right": ratio(confidence["high"]["right"], sum(confidence["high"].values())),
        "high_n": float(sum(confidence["high"].values())),
        "medium_right": ratio(confidence["medium"]["right"], sum(confidence["medium"].values())),
        "medium_n": float(sum(confidence["medium"].values())),
    }
    print(f"search: {questions} questions ({len(time_right)} time), {len(nonsense_hits)} nonsense queries in {elapsed:.1f}s")
    print(f"  time top-1: {out['time_top1']:.3f} ({sum(time_right)}/{len(time_right)})")
    print(
        "  top-1 by kind: " + ", ".join(f"{k} {_mean([float(x) for x in v]):.3f} ({len(v)})" for k, v in sorted(by_kind.items()))
    )
    print(
        f"  R@1 {out['r1']:.3f}  R@5 {out['r5']:.3f}  R@10 {out['r10']:.3f}   (weak hits kept: R@1 {_mean(recall['weak'][1]):.3f}  R@5 {_mean(recall['weak'][5]):.3f}  R@10 {out['r10_weak']:.3f})"
    )
    print(
        f"  nonsense empty: {out['nonsense_empty']:.3f} ({sum(1 for n in nonsense_hits if n == 0)}/{len(nonsense_hits)}), "
        f"{sum(nonsense_hits)} hits in all, {nonsense_high} of them high"
    )
    for level in ("high", "medium", "low", "none"):
        c = confidence[level]
        if c:
            print(f"  confidence {level:6}: {sum(c.values()):4d} hits, {ratio(c['right'], sum(c.values())):.3f} gold")
    if verbose and first_misses:
        print("  questions whose first hit is not gold:")
        for line in first_misses:
            print(f"    {line}")
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true", help="entities and relations only (the cube is built, no search)")
    parser.add_argument("--verbose", "-v", action="store_true", help="the worst misses and false positives")
    parser.add_argument("--home", type=Path, help="build the cube here and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    data = load(args.data)
    print(
        f"{args.data.name}: {len(data['memories'])} memories, {len(data['questions'])} questions, "
        f"{len(data['nonsense'])} nonsense queries, now {data['now']}"
    )
    result: dict[str, float] = {}
    started = time.perf_counter()
    result.update(entity_part(data["memories"], args.verbose))
    print(f"  ({time.perf_counter() - started:.1f}s)")
    started = time.perf_counter()
    relations = relation_part(data["memories"], args.verbose)
    print(f"  ({time.perf_counter() - started:.1f}s)")
    home_dir = args.home or Path(tempfile.mkdtemp(prefix="memcube-understanding-"))
    try:
        result.update(cube_part(data, home_dir, args.verbose, search=not args.quick))
    finally:
        if args.home is None:
            shutil.rmtree(home_dir, ignore_errors=True)
    fields = {**result, **(relations or {})}
    text = " ".join(f"{k}={v:.3f}" if k not in ("high_n", "medium_n") else f"{k}={int(v)}" for k, v in fields.items())
    if relations is None:
        text += " rel_p=n/a rel_r=n/a"
    print(f"RESULT {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
