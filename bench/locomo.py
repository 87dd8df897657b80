"""Retrieval benchmark on LoCoMo conversations, through the memory API that memory_search calls.

    uv run python bench/locomo.py [path]          # default ../shared/data/locomo-dev.json
    uv run python bench/locomo.py --facts         # the extracted facts, one memory each
    uv run python bench/locomo.py --no-sessions   # turns stored without a session_id
    uv run python bench/locomo.py --all           # every arrival side by side
    uv run python bench/locomo.py --quick         # the hybrid mode only (CI's check that it runs)
    uv run python bench/locomo.py --all --engine postgres [--store URL]   # searches ranked on PostgreSQL

How memories *arrive* changes what search has to work with; each arrival gets its own cubes:

- ``sessions`` (the default): one memory per turn with its ``session_id``;
- ``no-sessions`` (``--no-sessions``): the same turns without a ``session_id`` (a client
  that does not send one);
- ``facts`` (``--facts``): the data set's extracted ``observation`` facts, one memory per
  fact, ``type: fact``, the speaker as entity, ``occurred_at`` = the session's date, no
  session: what an assistant saves. A fact cites the turns it was drawn from; an evidence
  turn counts as found when a retrieved fact cites it. The ``ceiling`` is the share of
  evidence that some fact cites (no search can find the rest).

Every arrival runs the project's modes (hybrid, keyword-only, vector-only by default) and
``plain``: bare cosine of the same embedding model over the memories' texts, no MemCube
fusion, the baseline any vector store gives. Each arrival ends with a line
``RESULT arrival=<name> r5=... r10=... multihop_r10=... p50_ms=...`` for its first mode.

Each conversation goes into its own cube, one memory per turn (``"<speaker>: <text>"``
plus ``" [shares a photo: <caption>]"`` where the turn has one), with ``occurred_at`` =
the session's date and ``session_id`` = the conversation and session. Every category 1-4
question is asked; a question's recall@k is the share of its evidence turns in the top k.
Searches go through ``MemCube.search``, the call behind the memory_search tool, asked at the
end of the day of the conversation's last session (``asked_at``): time words in a question
("4 years ago", "last year") are read as its speakers meant them, and the figures do not
drift with the date the bench runs on.

``--engine postgres`` (issue 28, acceptance 3) ingests each cube as usual, copies it into a
PostgreSQL store (``memcube migrate``'s copy: ``--store URL``, MEMCUBE_STORE, or an embedded
PostgreSQL 18 with pgvector started here, as the tests do) and ranks every search there:
BM25 over ``tsvector``, pgvector's HNSW index, the entity tables (``MemCube.read_ranking_from``).
Time words, the relevance floor and the priors run as for SQLite, in the process.

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
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memory import MemoryHome, SearchQuery

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
    "plain": (),  # not a MemCube search: bare cosine of the embedding model (see PlainIndex)
}
ARRIVALS = ("sessions", "no-sessions", "facts")
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
    """'4:05 pm on 19 March, 2022' -> '2022-03-19T16:05:00Z'."""
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


def ingest(home: MemoryHome, sample: dict[str, Any], arrival: str) -> tuple[str, dict[str, set[str]], dict[str, str]]:
    """One cube per conversation and arrival, one add call per session.

    Returns the cube name, memory id -> the dia ids it stands for (a turn: its own; a fact:
    those it cites), and the memories' texts.
    """
    cube_name = re.sub(r"[^A-Za-z0-9_-]", "-", f"{sample['sample_id']}-{arrival}")
    cube = home.cube(cube_name, create=True)
    dia_of: dict[str, set[str]] = defaultdict(set)
    texts: dict[str, str] = {}
    for number, when, turns in sessions(sample["conversation"]):
        batch: list[dict[str, Any]]
        if arrival == "facts":
            items = session_facts(sample, number)
            batch = [
                {"text": text, "type": "fact", "entities": [speaker], "occurred_at": when, "metadata": {"cites": cites}}
                for speaker, text, cites in items
            ]
            cited = [cites for _, _, cites in items]
        else:
            session = {"session_id": f"{cube_name}/session-{number}"} if arrival == "sessions" else {}
            batch = [
                {"text": turn_text(t), "type": "event", "occurred_at": when, **session, "metadata": {"dia_id": t["dia_id"]}}
                for t in turns
            ]
            cited = [[t["dia_id"]] for t in turns]
        for start in range(0, len(batch), 500):
            part = batch[start : start + 500]
            for outcome, item, cites in zip(cube.add(part, client="bench/locomo"), part, cited[start : start + 500], strict=True):
                dia_of[outcome.id].update(evidence_ids(cites))
                texts[outcome.id] = str(item["text"])
    return cube_name, dia_of, texts


def session_facts(sample: dict[str, Any], number: int) -> list[tuple[str, str, list[str]]]:
    """The observation facts of one session as (speaker, text, cited dia ids)."""
    found = []
    for speaker, facts in (sample.get("observation", {}).get(f"session_{number}_observation") or {}).items():
        for fact in facts:
            text, cites = fact[0], fact[1] if len(fact) > 1 else []
            found.append((speaker, str(text), [cites] if isinstance(cites, str) else list(cites)))
    return found


def asked_at(conversation: dict[str, Any]) -> str:
    """When the questions are asked: the end of the day of the last session ('2023-10-22T23:59:59Z')."""
    return max(when for _, when, _ in sessions(conversation))[:10] + "T23:59:59Z"


def turn_ids(sample: dict[str, Any]) -> set[str]:
    return {
        evidence_ids([t["dia_id"]])[0]
        for _, _, turns in sessions(sample["conversation"])
        for t in turns
        if evidence_ids([t["dia_id"]])
    }


class PlainIndex:
    """The baseline: bare cosine of the embedding model between a query and each memory's text."""

    def __init__(self, embedder: Any, texts: dict[str, str]) -> None:
        self.embedder = embedder
        self.ids = list(texts)
        self.matrix = embedder.embed(list(texts.values())) if texts else None

    def search(self, query: str, limit: int) -> list[str]:
        if self.matrix is None:
            return []
        scores = self.matrix @ self.embedder.embed_one(query)
        return [self.ids[i] for i in scores.argsort()[::-1][:limit]]


def rank_on_postgres(cube: Any, store_url: str) -> None:
    """Copy the cube into the PostgreSQL store and rank its searches there from now on."""
    from memory.store.postgres.connect import connect
    from memory.store.postgres.cube_copy import copy_cube
    from memory.store.postgres.search_source import PostgresSearchSource, PostgresVectorScores

    with connect(store_url) as conn:
        copy_cube(cube.store, conn, cube.name)
        row = conn.execute("SELECT id FROM cubes WHERE name = %s", (cube.name,)).fetchone()
    assert row is not None
    cube.read_ranking_from(PostgresSearchSource(store_url, int(row[0])), PostgresVectorScores(store_url, int(row[0])))


def evaluate(
    path: Path, modes: list[str], home_dir: Path, details: Path | None, arrival: str, store_url: str | None = None
) -> dict[str, Any]:
    data = json.loads(path.read_text())
    home = MemoryHome(home_dir)
    results: dict[str, dict[str, Any]] = {m: {"per_q": [], "latency": [], "cpu": []} for m in modes}
    records = []
    started = time.perf_counter()
    total = 0
    ceiling: list[float] = []
    for sample in data:
        t0 = time.perf_counter()
        cube_name, dia_of, texts = ingest(home, sample, arrival)
        total += len(texts)
        known = turn_ids(sample)
        cited = {d for ids in dia_of.values() for d in ids}
        print(f"{cube_name}: {len(texts)} memories ingested in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        cube = home.cube(cube_name)
        if store_url is not None:
            rank_on_postgres(cube, store_url)
        now = asked_at(sample["conversation"])
        cube.search(SearchQuery(query="warm up", limit=5))  # load the mirror and the model outside the timings
        plain = PlainIndex(home.embedder, texts) if "plain" in modes else None
        for qa in sample["qa"]:
            if qa.get("category") not in CATEGORIES:
                continue
            evidence = [e for e in evidence_ids(qa.get("evidence", [])) if e in known]
            if not evidence:
                continue
            ceiling.append(sum(1 for e in evidence if e in cited) / len(evidence))
            for mode in modes:
                signals = MODES[mode]
                t1, c1 = time.perf_counter(), time.process_time()
                if mode == "plain":
                    assert plain is not None
                    ids = plain.search(qa["question"], max(KS))
                else:
                    query = (
                        SearchQuery(query=qa["question"], limit=max(KS))
                        if signals is None
                        else SearchQuery(query=qa["question"], limit=max(KS), signals=signals)
                    )
                    ids = [h.id for h in cube.search(query, now=now).hits]  # what the memory_search tool runs
                results[mode]["latency"].append((time.perf_counter() - t1) * 1000)
                results[mode]["cpu"].append((time.process_time() - c1) * 1000)
                ranked = [dia_of.get(i, set()) for i in ids]
                row = {"category": qa["category"]}
                for k in KS:
                    top = set().union(*ranked[:k]) if ranked[:k] else set()
                    found = sum(1 for e in evidence if e in top)
                    row[f"r{k}"] = found / len(evidence)
                    row[f"all{k}"] = float(found == len(evidence))
                results[mode]["per_q"].append(row)
                if details is not None:
                    records.append(
                        {
                            "arrival": arrival,
                            "mode": mode,
                            "cube": cube_name,
                            "question": qa["question"],
                            "evidence": evidence,
                            "category": qa["category"],
                            "ranked": [sorted(r) for r in ranked],
                            **row,
                        }
                    )
    home.close()
    return {
        "results": results,
        "turns": total,
        "seconds": time.perf_counter() - started,
        "arrival": arrival,
        "ceiling": sum(ceiling) / len(ceiling) if ceiling else 0.0,
        "records": records,
    }


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
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(outcome: dict[str, Any], modes: list[str]) -> str:
    load = f", load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores" if hasattr(os, "getloadavg") else ""
    arrival = outcome["arrival"]
    lines = [f"== arrival {arrival}: {outcome['turns']} memories, {outcome['seconds']:.1f}s in all{load}"]
    if arrival == "facts":
        lines.append(f"ceiling (share of evidence some fact cites): {outcome['ceiling']:.3f}")
    header = (
        f"{'mode':18} {'category':12} {'n':>4} "
        + " ".join(f"{'R@' + str(k):>6}" for k in KS)
        + " "
        + " ".join(f"{'all@' + str(k):>6}" for k in KS)
    )
    lines.append(header)
    for mode in modes:
        per_q = outcome["results"][mode]["per_q"]
        groups = [("overall", per_q)] + [(name, [r for r in per_q if r["category"] == c]) for c, name in CATEGORIES.items()]
        for name, rows in groups:
            s = summarise(rows)
            lines.append(
                f"{mode:18} {name:12} {s['n']:>4} "
                + " ".join(f"{s[f'r{k}']:6.3f}" for k in KS)
                + " "
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
    multihop = summarise([r for r in outcome["results"][main]["per_q"] if r["category"] == 1])
    extra = f" ceiling={outcome['ceiling']:.3f}" if arrival == "facts" else ""
    lines.append(
        f"RESULT arrival={arrival} mode={main} r5={s['r5']:.3f} r10={s['r10']:.3f} multihop_r10={multihop['r10']:.3f}"
        f" p50_ms={percentile(outcome['results'][main]['latency'], 0.5):.1f}{extra}"
    )
    return "\n".join(lines)


def side_by_side(outcomes: list[dict[str, Any]], modes: list[str]) -> str:
    lines = [f"{'arrival':12} {'mode':18} {'R@5':>6} {'R@10':>6} {'mh@10':>6} {'p50 ms':>7}"]
    for outcome in outcomes:
        for mode in modes:
            per_q = outcome["results"][mode]["per_q"]
            s, mh = summarise(per_q), summarise([r for r in per_q if r["category"] == 1])
            lines.append(
                f"{outcome['arrival']:12} {mode:18} {s['r5']:6.3f} {s['r10']:6.3f} {mh['r10']:6.3f} "
                f"{percentile(outcome['results'][mode]['latency'], 0.5):7.1f}"
            )
    for outcome in outcomes:
        lines.append(next(line for line in report(outcome, modes).splitlines() if line.startswith("RESULT ")))
    return "\n".join(lines)


@contextmanager
def postgres_store(url: str | None) -> Iterator[str]:
    """A new database for this run on the server at ``url``, or on an embedded PostgreSQL started here."""
    sys.path.insert(1, str(ROOT / "tests"))
    from postgres_support import fresh_database, migrated, postgres_server

    with postgres_server() if url is None else nullcontext(url) as server, fresh_database(server) as database:
        with migrated(database):
            pass
        yield database


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_DATA, help="LoCoMo JSON (a list of samples)")
    parser.add_argument(
        "--modes",
        default="hybrid,keyword,vector,plain",
        help=f"comma-separated, the first gives the RESULT line: {', '.join(MODES)}; 'ablate' adds every hybrid-no-* mode",
    )
    parser.add_argument("--home", type=Path, help="keep the cubes in this folder (default: a temporary one, removed after)")
    parser.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="SIGNAL=W",
        help="override a signal's weight in the fused score (memory.retrieval.search.WEIGHTS), to measure what it buys",
    )
    parser.add_argument("--details", type=Path, help="write one JSON line per question and mode here")
    parser.add_argument("--facts", action="store_true", help="the extracted facts arrival (one memory per fact)")
    parser.add_argument("--no-sessions", action="store_true", help="the turns-without-session_id arrival")
    parser.add_argument("--sessions", action="store_true", help="the turns-with-session_id arrival (the default alone)")
    parser.add_argument("--all", action="store_true", help="every arrival, side by side")
    parser.add_argument("--quick", action="store_true", help="the hybrid mode only (iterate fast)")
    parser.add_argument("--engine", choices=("sqlite", "postgres"), default="sqlite", help="where searches are ranked")
    parser.add_argument(
        "--store", help="with --engine postgres: a PostgreSQL whose role may create databases (default: embedded)"
    )
    args = parser.parse_args(argv)
    modes = [m.strip() for m in ("hybrid" if args.quick else args.modes).split(",") if m.strip()]
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
        # CI runs every bench script; without the data set this one has nothing to measure.
        print(f"# skipped: no LoCoMo data at {args.path} (CC BY-NC 4.0, not part of the project)", flush=True)
        print("RESULT skipped=no-data")
        return 0
    temporary = args.home is None
    home_dir = Path(tempfile.mkdtemp(prefix="memcube-locomo-")) if temporary else args.home
    chosen = [a for a, on in zip(ARRIVALS, (args.sessions, args.no_sessions, args.facts), strict=True) if on or args.all]
    outcomes = []
    try:
        with postgres_store(args.store or os.environ.get("MEMCUBE_STORE")) if args.engine == "postgres" else nullcontext() as url:
            for arrival in chosen or ["sessions"]:
                outcomes.append(evaluate(args.path, modes, home_dir, args.details, arrival, url))
                print(report(outcomes[-1], modes), flush=True)
    finally:
        if temporary:
            shutil.rmtree(home_dir, ignore_errors=True)
    if args.details is not None:
        args.details.write_text("".join(json.dumps(r) + "\n" for o in outcomes for r in o["records"]))
    if len(outcomes) > 1:  # the side-by-side summary, then every arrival's RESULT line again, last
        print(side_by_side(outcomes, modes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
