"""GGUF files as the local model: conversion to MLX and ONNX, the clear refusals, model discovery.

The small models are written with llama.cpp's own GGUF writer from known weights, so the
converted network can be compared with those weights run directly. The real SmolLM2 tests
(tokenizer, chat template, caches, answers) are in test_real_model.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from gguf_files import FAMILY_SHAPES, reference_folder, smollm2_gguf, write_gguf

from memory.activation.base import NoLocalModel
from memory.activation.engine import load_backend, resolve_model
from memory.activation.gguf import GGUFRefused, check_gguf, gguf_root, import_gguf
from memory.activation.model_files import find_gguf, lmstudio_models, ollama_models
from memory.activation.onnx_quant import quantize_blockwise
from memory.config import LocalModelConfig
from server.cli import main as cli

TEXT = "Wen opened an online flower shop in 2023."


@pytest.mark.parametrize("backend", ["mlx", "onnx"])
@pytest.mark.parametrize("architecture", ["qwen2", "llama", "qwen3", "gemma3", "phi3"])
def test_a_converted_gguf_computes_what_its_weights_compute(architecture, backend, tmp_path):
    """Names, the Llama query/key interleaving, biases, Qwen 3's head norms, Gemma 3's norms, scaled
    embeddings and sliding windows, Phi 3's fused matrices all land where mlx-lm and the ONNX decoder
    expect them: the same logits as mlx-lm's own model of the family run on the original weights,
    whole sequence at once (float32 file, tight tolerance)."""
    import mlx.core as mx

    shape = FAMILY_SHAPES[architecture]
    weights = write_gguf(tmp_path / "tiny.gguf", architecture, shape=shape)
    reference = load_backend(reference_folder(tmp_path / "ref", weights, shape, architecture), "ref", "mlx")
    converted = load_backend(import_gguf(tmp_path / "tiny.gguf", tmp_path / "home", backend), "tiny", backend)

    tokens = reference.encode(TEXT)
    assert converted.encode(TEXT) == tokens
    expected = np.array(reference.model(mx.array(tokens)[None])[0, -1].astype(mx.float32))  # type: ignore[attr-defined]
    got, _ = converted.prefill(converted.new_cache(), tokens)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)


def test_q8_0_blocks_stay_quantized_and_keep_the_llama_row_order(tmp_path):
    """Q8_0 matrices arrive as MLX quantized blocks; the query/key rows are reordered with their scales."""
    weights = write_gguf(tmp_path / "q8.gguf", "llama", quantization="Q8_0")
    folder = import_gguf(tmp_path / "q8.gguf", tmp_path / "home", "mlx")
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization"]["group_size"] == 32
    reference = load_backend(reference_folder(tmp_path / "ref", weights), "ref", "mlx")
    converted = load_backend(folder, "q8", "mlx")
    tokens = reference.encode(TEXT)
    expected, _ = reference.prefill(reference.new_cache(), tokens)
    got, _ = converted.prefill(converted.new_cache(), tokens)
    # 8-bit blocks: close to the float weights, far closer than weights in the wrong row order would be.
    assert np.corrcoef(got, expected)[0, 1] > 0.999


@pytest.mark.parametrize("backend", ["mlx", "onnx"])
def test_q5_0_blocks_that_mlx_cannot_read_are_dequantized_by_llama_cpps_reader(backend, tmp_path):
    """Q4_K_M files hold Q5_0 matrices where a row is not a multiple of 256 (Gemma 3 270M's 640):
    mx.load refuses them, so the file is read with llama.cpp's reader, dequantized and quantized
    again to MLX's 8-bit blocks, which both backends keep. The reference runs those blocks' values."""
    import gguf
    import mlx.core as mx

    shape = FAMILY_SHAPES["gemma3"]
    weights = write_gguf(tmp_path / "q5.gguf", "gemma3", shape=shape, quantization="Q5_0")
    q5 = gguf.GGMLQuantizationType.Q5_0

    def as_blocks(value: np.ndarray) -> np.ndarray:
        in_file = mx.array(gguf.quants.dequantize(gguf.quants.quantize(value, q5), q5))
        return np.array(mx.dequantize(*mx.quantize(in_file, group_size=32, bits=8), group_size=32, bits=8))

    on_grid = {k: as_blocks(v) if v.ndim == 2 else v for k, v in weights.items()}
    reference = load_backend(reference_folder(tmp_path / "ref", on_grid, shape, "gemma3"), "ref", "mlx")
    folder = import_gguf(tmp_path / "q5.gguf", tmp_path / "home", backend)
    assert json.loads((folder / "memcube-gguf.json").read_text())["tensor_types"]["Q5_0"] > 0
    converted = load_backend(folder, "q5", backend)
    tokens = reference.encode(TEXT)
    expected = np.array(reference.model(mx.array(tokens)[None])[0, -1].astype(mx.float32))  # type: ignore[attr-defined]
    got, _ = converted.prefill(converted.new_cache(), tokens)
    if backend == "onnx":
        assert_close_to_int8_products(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(("architecture", "quantization", "bits"), [("llama", "Q4_1", 4), ("phi3", "Q8_0", 8)])
def test_quantized_matrices_stay_quantized_on_the_onnx_path(architecture, quantization, bits, tmp_path):
    """Each quantized matrix becomes MatMulNBits blocks holding the file's own blocks exactly (4 bits
    from Q4_1, offsets and all; 8 from Q8_0; the embedding's shared with the tied output head), and no
    float copy of it is stored. The logits are those of the reference run on the file's values."""
    import gguf
    import mlx.core as mx
    import onnx

    shape = FAMILY_SHAPES[architecture]
    weights = write_gguf(tmp_path / "q.gguf", architecture, shape=shape, quantization=quantization)
    qtype = gguf.GGMLQuantizationType[quantization]
    on_grid = {k: gguf.quants.dequantize(gguf.quants.quantize(v, qtype), qtype) if v.ndim == 2 else v for k, v in weights.items()}
    reference = load_backend(reference_folder(tmp_path / "ref", on_grid, shape, architecture), "ref", "mlx")
    folder = import_gguf(tmp_path / "q.gguf", tmp_path / "home", "onnx")

    graph = onnx.load(str(folder / "model.onnx")).graph
    matmuls = [n for n in graph.node if n.op_type == "MatMulNBits"]
    # Per layer q, k, v, o, gate, up, down (Phi 3's fused ones split), and the output head.
    assert len(matmuls) == shape.num_hidden_layers * 7 + 1
    assert {next(a.i for a in n.attribute if a.name == "bits") for n in matmuls} == {bits}
    floats = [
        t
        for t in graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2 and not t.name.endswith(".remainders")
    ]
    assert not floats, [t.name for t in floats]

    converted = load_backend(folder, "q", "onnx")
    tokens = reference.encode(TEXT)
    expected = np.array(reference.model(mx.array(tokens)[None])[0, -1].astype(mx.float32))  # type: ignore[attr-defined]
    got, _ = converted.prefill(converted.new_cache(), tokens)
    assert_close_to_int8_products(got, expected)


def test_the_blocks_hold_exactly_what_matmulnbits_multiplies_by():
    """With float32 products (accuracy level 0) the quantized decoder computes exactly what the float
    decoder computes with the blocks' values: the packing, scales, offsets, the 4-bit embedding rows
    unpacked in the graph and the tied head are right, and level 4's int8 activations are the only
    approximation the converted models add."""
    import onnxruntime as ort
    from random_models import Shape, random_weights

    from memory.activation.onnx_export import onnx_decoder

    shape = Shape()
    weights = random_weights(shape, seed=3)
    blocks = {k: quantize_blockwise(v, 8 if "mlp" in k else 4) for k, v in weights.items() if v.ndim == 2}
    on_grid = {k: blocks[k].dequantize() if k in blocks else v for k, v in weights.items()}
    feeds: dict[str, np.ndarray] = {
        "input_ids": np.array([[5, 17, 200, 3, 99, 42]], np.int64),
        "attention_mask": np.ones((1, 6), np.int64),
        "position_ids": np.arange(6, dtype=np.int64)[None],
    }
    for n in range(shape.num_hidden_layers):
        for part in ("key", "value"):
            feeds[f"past_key_values.{n}.{part}"] = np.zeros((1, shape.num_key_value_heads, 0, shape.head_dim), np.float32)

    def logits(model) -> np.ndarray:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(["logits"], feeds)[0][0, -1]

    floats = {k: v for k, v in weights.items() if k not in blocks}
    quantized = logits(onnx_decoder(shape, floats, quantized=blocks, accuracy_level=0))
    np.testing.assert_allclose(quantized, logits(onnx_decoder(shape, on_grid)), rtol=1e-4, atol=1e-4)


def assert_close_to_int8_products(got: np.ndarray, expected: np.ndarray) -> None:
    """The tolerance of the quantized ONNX path against a reference run on the same weight blocks.

    MatMulNBits' fast kernel (accuracy level 4, as llama.cpp does with its Q8 activations) rounds
    each block of 32 activations to int8 before multiplying: about 0.5% relative error per product,
    which over a few layers stays within 2% of the logits' range (measured: 0.2-0.4%)."""
    error = float(np.abs(got - expected).max() / np.abs(expected).max())
    print(f"largest error: {error:.2%} of the largest logit")
    assert error < 0.02
    assert np.corrcoef(got, expected)[0, 1] > 0.9995


def test_llama3_rope_scaling_is_taken_from_the_file_by_both_backends(tmp_path):
    """Llama 3.1+ files carry their scaled rotary frequencies (rope_freqs). MLX gets the four numbers
    mlx-lm's Llama3RoPE derives them from; the ONNX decoder gets the frequencies themselves: both
    must equal the file's, and the two networks the same logits."""
    import onnx
    from onnx import numpy_helper

    from memory.activation.gguf import _llama3_divisors

    scaling = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    divisors = _llama3_divisors(16, 1_000_000.0, scaling)
    assert divisors.min() == 1.0 and divisors.max() == 8.0  # the tiny shape spans every regime
    write_gguf(tmp_path / "l3.gguf", "llama", extra_tensors={"rope_freqs.weight": divisors})
    unscaled = 1.0 / 1_000_000.0 ** (np.arange(0, 16, 2) / 16)
    in_file = unscaled / divisors

    mlx_folder = import_gguf(tmp_path / "l3.gguf", tmp_path / "home", "mlx")
    mlx = load_backend(mlx_folder, "l3", "mlx")
    rope = mlx.model.model.layers[0].self_attn.rope
    np.testing.assert_allclose(1.0 / np.array(rope._freqs), in_file, rtol=1e-5)
    onnx_folder = import_gguf(tmp_path / "l3.gguf", tmp_path / "home", "onnx")
    [stored] = [
        numpy_helper.to_array(t)
        for t in onnx.load(str(onnx_folder / "model.onnx")).graph.initializer
        if t.name.startswith("inv_freq")
    ]
    np.testing.assert_allclose(stored, in_file, rtol=1e-5)

    onnx_model = load_backend(onnx_folder, "l3", "onnx")
    tokens = mlx.encode(TEXT * 3)
    a, _ = mlx.prefill(mlx.new_cache(), tokens)
    b, _ = onnx_model.prefill(onnx_model.new_cache(), tokens)
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


def test_a_file_is_converted_once_and_found_again_by_its_hash(tmp_path):
    write_gguf(tmp_path / "a.gguf", "qwen2")
    first = import_gguf(tmp_path / "a.gguf", tmp_path / "home", "onnx")
    stamp = (first / "model.onnx").stat().st_mtime_ns
    shutil.copy(tmp_path / "a.gguf", tmp_path / "renamed.gguf")

    assert import_gguf(tmp_path / "renamed.gguf", tmp_path / "home", "onnx") == first
    assert (first / "model.onnx").stat().st_mtime_ns == stamp
    assert [p.name for p in gguf_root(tmp_path / "home").iterdir() if p.is_dir()] == [first.name]


def _unsupported_architecture(path: Path) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), "gemma2")
    writer.add_tensor("token_embd.weight", np.zeros((4, 32), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _unsupported_quantization(path: Path) -> None:
    write_gguf(path, "llama", tensor_type_override={"blk.0.ffn_down.weight": "IQ4_NL"})


def _truncated(path: Path) -> None:
    data = smollm2_gguf().read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _header_cut(path: Path) -> None:
    path.write_bytes(smollm2_gguf().read_bytes()[:200_000])


def _not_gguf(path: Path) -> None:
    path.write_text('{"model_type": "llama"}')


BAD_FILES = {
    "unsupported architecture": (_unsupported_architecture, "architecture 'gemma2' is not supported; supported: llama, qwen2"),
    "unsupported quantization": (_unsupported_quantization, "tensor type IQ4_NL is not supported"),
    "truncated": (_truncated, "is truncated or damaged"),
    "header cut short": (_header_cut, "truncated or damaged"),
    "not a GGUF file": (_not_gguf, "is not a GGUF file"),
}


@pytest.mark.parametrize(
    "case",
    # slow: "truncated" copies and reads half of the real SmolLM2 file (20 s loaded) for the refusal that
    # "header cut short" gets in the quick tier
    [pytest.param(case, marks=pytest.mark.slow) if case == "truncated" else case for case in BAD_FILES],
)
def test_a_bad_file_is_refused_clearly_and_leaves_the_configured_model_alone(case, tmp_path, capsys):
    make, message = BAD_FILES[case]
    home = tmp_path / "home"
    good = tmp_path / "good.gguf"
    write_gguf(good, "qwen2")
    home.mkdir()
    (home / "config.toml").write_text(f'[local_model]\npath = "{good}"\n')
    converted = import_gguf(good, home)
    before = {p: p.read_bytes() for p in [home / "config.toml", *converted.iterdir()]}
    bad = tmp_path / "bad.gguf"
    make(bad)

    with pytest.raises(GGUFRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_gguf(bad, home)
    assert cli(["--home", str(home), "model", "import", str(bad)]) == 2
    assert message in capsys.readouterr().err

    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in gguf_root(home).iterdir() if p.is_dir()) == [converted.name]
    assert resolve_model(LocalModelConfig(path=str(good)), home)[0] == converted


def test_model_import_reports_each_step_on_stderr_and_only_the_result_on_stdout(tmp_path, capsys):
    write_gguf(tmp_path / "tiny.gguf", "phi3", shape=FAMILY_SHAPES["phi3"], quantization="Q8_0")

    assert cli(["--home", str(tmp_path / "home"), "model", "import", str(tmp_path / "tiny.gguf"), "--backend", "onnx"]) == 0
    out, err = capsys.readouterr()
    assert "converting tiny phi3 for onnx: reading" in err
    assert "building layer 2/2" in err and "writing model.onnx" in err
    assert "converting" not in out and "tiny.gguf ->" in out


def test_a_missing_file_is_reported_as_a_path(tmp_path):
    with pytest.raises(NoLocalModel, match="no such file: .*missing.gguf"):
        resolve_model(LocalModelConfig(path=str(tmp_path / "missing.gguf")), tmp_path)
    with pytest.raises(NoLocalModel, match=r"local model path .*nowhere does not exist"):
        resolve_model(LocalModelConfig(path=str(tmp_path / "nowhere")), tmp_path)


def test_pull_of_a_path_or_without_network_answers_in_one_line(tmp_path, capsys, monkeypatch):
    assert cli(["--home", str(tmp_path), "model", "pull", str(tmp_path / "model.gguf")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file or folder" in err and "model.gguf" in err

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli(["--home", str(tmp_path), "model", "pull", "mlx-community/Qwen2.5-0.5B-Instruct-4bit"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cannot reach the Hugging Face hub" in err and "memcube model import FILE.gguf" in err


def _ollama_home(root: Path, gguf: Path) -> None:
    """Ollama's layout: a content-addressed blob named by a manifest."""
    import hashlib

    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    (root / "blobs").mkdir(parents=True)
    shutil.copy(gguf, root / "blobs" / f"sha256-{digest}")
    (root / "blobs" / "sha256-0000").write_text("{}")  # the config layer
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "latest"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "layers": [
                    {
                        "mediaType": "application/vnd.ollama.image.model",
                        "digest": f"sha256:{digest}",
                        "size": gguf.stat().st_size,
                    },
                    {"mediaType": "application/vnd.ollama.image.params", "digest": "sha256:0000", "size": 2},
                ],
            }
        )
    )


def test_ollama_and_lmstudio_models_are_listed_and_usable_by_name(tmp_path, monkeypatch, capsys):
    gguf = tmp_path / "tiny.gguf"
    write_gguf(gguf, "qwen2")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    _ollama_home(tmp_path / "user" / ".ollama" / "models", gguf)
    lms = tmp_path / "user" / ".lmstudio" / "models" / "someone" / "tiny-GGUF"
    lms.mkdir(parents=True)
    shutil.copy(gguf, lms / "tiny-q8_0.gguf")
    (lms / "mmproj-tiny.gguf").write_bytes(b"GGUF")  # a vision projector: not offered

    assert [m.name for m in ollama_models()] == ["ollama:tiny:latest"]
    assert [m.name for m in lmstudio_models()] == ["lmstudio:someone/tiny-GGUF/tiny-q8_0.gguf"]
    assert cli(["--home", str(tmp_path / "home"), "model", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ollama:tiny:latest" in listing and "lmstudio:someone/tiny-GGUF/tiny-q8_0.gguf" in listing

    for name in ("ollama:tiny", "ollama:tiny:latest", "lmstudio:someone/tiny-GGUF/tiny-q8_0.gguf"):
        assert find_gguf(name) is not None
    folder, model_name, backend = resolve_model(LocalModelConfig(path="ollama:tiny"), tmp_path / "home")
    assert model_name == "ollama:tiny" and (folder / "config.json").is_file()
    with pytest.raises(NoLocalModel, match="no local model named 'ollama:other'.*ollama:tiny:latest"):
        find_gguf("ollama:other")


@pytest.mark.slow  # writes and checks many GGUF files (35 s loaded); .ci/run runs it
def test_the_check_reads_architecture_and_tensor_types_from_the_header():
    info = check_gguf(smollm2_gguf())
    assert info.architecture == "llama"
    assert info.tensor_types == {"Q4_1": 210, "Q8_0": 1, "F32": 61}  # the embedding is Q8_0, the norms F32
