"""GGUF files (llama.cpp, Ollama, LM Studio) as the local model: checked, then converted once.

A GGUF file holds the weights, the hyper-parameters, the tokenizer and the chat template.
``import_gguf`` checks the file (magic, header, every tensor within the file, architecture,
tensor types), then writes a model folder under ``<home>/models/gguf/<sha256>-<backend>/``
that the backends load like any other: config.json, tokenizer.json and tokenizer_config.json
(with the file's chat template), plus model.safetensors (MLX, on Apple Silicon) or model.onnx
(ONNX Runtime, elsewhere). The folder is named by the file's content hash, so one file is
converted once however it is named, and a changed file gets a new folder.

Weights: ``mx.load`` reads GGUF directly. Q4_0, Q4_1 and Q8_0 blocks arrive as MLX affine
quantized triples (group size 32) and stay so; F16, F32 and the K-quants MLX can read (Q2_K,
Q4_K, Q6_K) arrive dequantized, and matrices from K-quants are quantized again to MLX group-32
blocks so that memory stays near the file's size. Files with types mx.load refuses (Q5_0, Q5_1,
Q3_K, Q5_K: Q4_K_M and Q5_K_M files hold some) are read with llama.cpp's reader and
dequantized, then quantized again the same way. Both backends keep the same blocks: MLX as
they are, the ONNX decoder as ONNX Runtime's ``MatMulNBits`` blocks (``onnx_quant``); float
matrices stay float (float32 on a CPU). llama.cpp stores a Llama model's query and key rows
interleaved for its rotary embedding; they are put back in the Hugging Face order both
backends expect.

Architectures: Llama, Qwen2, Qwen 3 (per-head query/key norms), Gemma 3 (norms around each
block, scaled embeddings, GELU, sliding-window layers) and Phi 3 (fused query/key/value and
gate/up matrices). The converted weights always follow Hugging Face's names and values:
llama.cpp stores Gemma's norms as (1 + weight), so 1 is taken off here and put back where
the ONNX decoder needs the product.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from memory.errors import InvalidInput

log = logging.getLogger(__name__)

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3", "phi3")
# What mlx-lm builds for each (model_type, Hugging Face class); Gemma 3 without its vision tower.
_MODEL_TYPES = {
    "llama": ("llama", "LlamaForCausalLM"),
    "qwen2": ("qwen2", "Qwen2ForCausalLM"),
    "qwen3": ("qwen3", "Qwen3ForCausalLM"),
    "gemma3": ("gemma3_text", "Gemma3ForCausalLM"),
    "phi3": ("phi3", "Phi3ForCausalLM"),
}
# llama.cpp hard-codes these for Gemma 3 rather than writing them to the file (src/llama-model.cpp).
GEMMA3_SLIDING_WINDOW_PATTERN = 6
GEMMA3_LOCAL_ROPE_THETA = 10_000.0
# Tensor types mx.load reads: the first three stay quantized, the rest arrive as float16.
KEPT_QUANTIZED = ("Q4_0", "Q4_1", "Q8_0")
MLX_READS = ("F32", "F16", "BF16", *KEPT_QUANTIZED, "Q2_K", "Q4_K", "Q6_K")
# Types mx.load refuses, which llama.cpp's quantizer still writes into Q4_K_M and Q5_K_M files
# (Q5_0 and Q8_0 where a row is not a multiple of 256, as in Gemma 3 270M): a file with any of
# them is read with llama.cpp's own reader and dequantized with its numpy code.
DEQUANTIZED_HERE = ("Q5_0", "Q5_1", "Q3_K", "Q5_K")
READABLE = (*MLX_READS, *DEQUANTIZED_HERE)
FLOAT_TYPES = ("F32", "F16", "BF16")
FORMAT = "memcube-gguf/1"
Progress = Callable[[str], None]  # told each step of a conversion, as a line a person reads
_NAMES = (  # GGUF tensor names -> Hugging Face names, in the order they are applied
    ("token_embd", "model.embed_tokens"),
    ("attn_q_norm", "self_attn.q_norm"),
    ("attn_k_norm", "self_attn.k_norm"),
    ("output_norm", "model.norm"),
    ("attn_output.", "self_attn.o_proj."),
    ("output.", "lm_head."),
    ("blk.", "model.layers."),
    ("attn_q.", "self_attn.q_proj."),
    ("attn_k.", "self_attn.k_proj."),
    ("attn_v.", "self_attn.v_proj."),
    ("attn_norm", "input_layernorm"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate.", "mlp.gate_proj."),
    ("ffn_up.", "mlp.up_proj."),
    ("ffn_down.", "mlp.down_proj."),
)
# Names that mean something else in a family; applied before _NAMES.
_FAMILY_NAMES = {
    # Gemma's ffn_norm is the norm before the MLP; the one after attention has its own name.
    "gemma3": (
        ("post_attention_norm", "post_attention_layernorm"),
        ("ffn_norm", "pre_feedforward_layernorm"),
        ("post_ffw_norm", "post_feedforward_layernorm"),
    ),
    # Phi 3 keeps query, key and value in one matrix, and the MLP's gate and up halves in ffn_up.
    "phi3": (("attn_qkv.", "self_attn.qkv_proj."), ("ffn_up.", "mlp.gate_up_proj.")),
}


class GGUFRefused(InvalidInput):
    """A GGUF file that cannot serve as the local model; the message says why and what would."""


class GGUFInfo(BaseModel):
    path: Path
    size: int
    architecture: str
    name: str
    tensor_types: dict[str, int]
    types_by_tensor: dict[str, str]  # tensor name -> its GGUF type


def check_gguf(path: Path) -> GGUFInfo:
    """Read a GGUF file's header and check that it can be converted; reads no tensor data.

    Raises:
        GGUFRefused: no such file, not a GGUF file, truncated or damaged, an architecture or a
            tensor type that is not supported.
    """
    if not path.exists():
        raise GGUFRefused(f"no such file: {path}")
    if not path.is_file():
        raise GGUFRefused(f"{path} is not a file: give the path of a .gguf file")
    size = path.stat().st_size
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise GGUFRefused(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")
    try:
        reader = _open_reader(path)
    except Exception as exc:  # the reader fails in many ways on a cut header: all mean the same here
        raise GGUFRefused(
            f"{path} is truncated or damaged: its GGUF header cannot be read ({type(exc).__name__}: {exc})"
        ) from None
    for tensor in reader.tensors:
        end = int(tensor.data_offset) + int(tensor.n_bytes)
        if end > size:
            raise GGUFRefused(
                f"{path} is truncated: tensor {tensor.name} ends at byte {end:,} but the file has {size:,} bytes "
                "(an interrupted download or copy? fetch the file again)"
            )
    architecture = _field(reader, "general.architecture") or "unknown"
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise GGUFRefused(
            f"{path.name}: architecture {architecture!r} is not supported; supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    types = Counter(t.tensor_type.name for t in reader.tensors)
    unsupported = sorted(set(types) - set(READABLE))
    if unsupported:
        raise GGUFRefused(
            f"{path.name}: tensor type {', '.join(unsupported)} is not supported; supported: {', '.join(READABLE)} "
            "(pick a Q4_0, Q4_1, Q8_0, Q4_K_M, Q5_K_M or F16 file of the model)"
        )
    return GGUFInfo(
        path=path,
        size=size,
        architecture=architecture,
        name=_field(reader, "general.name") or path.stem,
        tensor_types=dict(types),
        types_by_tensor={t.name: t.tensor_type.name for t in reader.tensors},
    )


def _open_reader(path: Path) -> Any:
    """llama.cpp's reader of ``path``, shared by the check and the conversion that follows it: it takes
    seconds (20 s for Gemma 3's 262,144 tokens on this CPU) to parse a large vocabulary."""
    stat = path.stat()
    return _reader(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=1)
def _reader(path: Path, size: int, mtime_ns: int) -> Any:  # size and mtime: a changed file is read again
    from gguf import GGUFReader

    return GGUFReader(path)


def _field(reader: Any, key: str) -> str | None:
    field = reader.fields.get(key)
    if field is None:
        return None
    value = field.contents()
    return value if isinstance(value, str) else None


def file_sha256(path: Path, home: Path) -> str:
    """The file's SHA-256, remembered by (path, size, mtime) so a large file is hashed once."""
    index_path = gguf_root(home) / "hashes.json"
    stat = path.stat()
    key = str(path.resolve())
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    known = index.get(key)
    if isinstance(known, dict) and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
        return str(known["sha256"])
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    index[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest.hexdigest()}
    _write_private(index_path, json.dumps(index, indent=1))
    return digest.hexdigest()


def gguf_root(home: Path) -> Path:
    return home / "models" / "gguf"


def gguf_backend(requested: str) -> str:
    """The backend a GGUF file is converted for: MLX on Apple Silicon, ONNX Runtime elsewhere.

    MLX's CPU build computes quantized and half-precision products element by element, far
    slower than ONNX Runtime's kernels, so off Apple Silicon the weights become ONNX.
    """
    if requested in ("mlx", "onnx"):
        return requested
    return "mlx" if sys.platform == "darwin" and platform.machine() == "arm64" else "onnx"


def import_gguf(
    path: Path, home: Path, backend: str = "auto", *, float32: bool = False, progress: Progress | None = None
) -> Path:
    """The model folder converted from ``path`` for ``backend``, converting it first if this file never was.

    Args:
        float32: ONNX only: every weight float32 instead of the file's quantized matrices as
            ``MatMulNBits`` blocks (a folder of its own; for comparisons).
        progress: told each step of a conversion (default: the log, at INFO).

    Raises:
        GGUFRefused: the file cannot be used (see ``check_gguf``); nothing is written then.
    """
    path = path.expanduser()
    info = check_gguf(path)
    backend = gguf_backend(backend)
    variant = "-float32" if float32 and backend == "onnx" else ""
    target = gguf_root(home) / f"{file_sha256(path, home)[:32]}-{backend}{variant}"
    if (target / "config.json").is_file():
        return target
    # Built beside the target and renamed into place: a crash or a second server converting the
    # same file at the same time never leaves a half-written folder that looks converted.
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True, mode=0o700)
    try:
        convert(info, partial, backend, float32=float32, progress=progress)
        (partial / ".memcube-revision").write_text(f"gguf-sha256:{target.name}")
        try:
            partial.rename(target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        _reader.cache_clear()  # its parsed vocabulary is large: not kept past the conversion
    log.info("converted %s to %s", path, target)
    return target


def convert(info: GGUFInfo, folder: Path, backend: str, *, float32: bool = False, progress: Progress | None = None) -> None:
    """Write the model folder (``mlx`` or ``onnx`` layout) for a checked GGUF file (see ``import_gguf``)."""
    import mlx.core as mx

    from memory.activation.gguf_tokenizer import TokenizerRefused, build_tokenizer

    started = time.monotonic()

    def report(step: str) -> None:
        line = f"converting {info.name} for {backend}: {step} ({time.monotonic() - started:.0f} s)"
        if progress is not None:
            progress(line)
        else:
            log.info("%s", line)

    report(f"reading {info.size / 1e6:.0f} MB of weights")

    source = info.path
    if source.suffix.lower() != ".gguf":  # an Ollama blob: mx.load goes by the file extension
        source = folder / "source.gguf"
        source.symlink_to(info.path.resolve())
    needs_reader = "BF16" in info.tensor_types or not set(info.tensor_types) <= set(MLX_READS)
    reader = _open_reader(info.path) if needs_reader else None
    try:
        if reader is None or set(info.tensor_types) <= set(MLX_READS):
            loaded: Any = mx.load(str(source), return_metadata=True)  # (tensors, metadata) for a GGUF file
            weights, meta = loaded
        else:
            weights, meta = _read_dequantized(reader)
    except Exception as exc:
        raise GGUFRefused(f"{info.path.name} cannot be read: {exc}") from None
    report("rebuilding the tokenizer")
    try:
        tokenizer = build_tokenizer(meta)
    except TokenizerRefused as exc:
        raise GGUFRefused(f"{info.path.name}: {exc}") from None
    config = model_config(info.architecture, meta, weights)
    # Matrices MLX reads as floats (K-quants, Q5) are quantized again to MLX blocks, for either backend:
    # the ONNX decoder keeps the same blocks (unless float32 is asked for).
    weights = _hf_weights(info, weights, config, requantize=backend == "mlx" or not float32, reader=reader)
    if backend == "mlx":
        float_dtype = _float_dtype(info)
        weights = {k: v.astype(float_dtype) if mx.issubdtype(v.dtype, mx.floating) else v for k, v in weights.items()}
        report("writing model.safetensors")
        mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "mlx"})
    else:
        config.pop("quantization", None)
        _write_onnx(weights, config, folder, quantize=not float32, report=report)
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    tokenizer.save(str(folder / "tokenizer.json"))
    tokens = meta["tokenizer.ggml.tokens"]

    def token(key: str) -> str | None:
        index = _scalar(meta.get(f"tokenizer.ggml.{key}"))
        return tokens[int(index)] if index is not None and 0 <= int(index) < len(tokens) else None

    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "chat_template": meta.get("tokenizer.chat_template"),
                "bos_token": token("bos_token_id"),
                "eos_token": token("eos_token_id"),
                "unk_token": token("unknown_token_id"),
                "pad_token": token("padding_token_id"),
                "add_bos_token": bool(_scalar(meta.get("tokenizer.ggml.add_bos_token"))),
                "model_max_length": config["max_position_embeddings"],
            },
            indent=1,
        )
    )
    if source != info.path:
        source.unlink()
    (folder / "memcube-gguf.json").write_text(
        json.dumps(
            {
                "format": FORMAT,
                "source": str(info.path),
                "name": info.name,
                "architecture": info.architecture,
                "backend": backend,
                "tensor_types": info.tensor_types,
            },
            indent=1,
        )
    )


def _read_dequantized(reader: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every tensor as float32 and the metadata, from llama.cpp's reader: what ``mx.load``
    returns, for the files it cannot read."""
    import mlx.core as mx
    import numpy as np
    from gguf.quants import dequantize

    meta = {key: field.contents() for key, field in reader.fields.items() if not key.startswith("GGUF.")}
    weights: dict[str, Any] = {}
    for tensor in reader.tensors:
        if tensor.tensor_type.name == "BF16":
            weights[tensor.name] = _bf16(tensor).astype(mx.float32)
            continue
        shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
        values = dequantize(np.asarray(tensor.data), tensor.tensor_type)
        weights[tensor.name] = mx.array(values.reshape(shape).astype(np.float32, copy=False))
    return weights, meta


def _write_onnx(weights: dict, config: dict, folder: Path, *, quantize: bool, report: Progress) -> None:
    """The network as an ONNX decoder with a KV cache: MLX's quantized blocks kept as ONNX Runtime's
    ``MatMulNBits`` blocks, or every weight float32 without ``quantize``."""
    import onnx

    from memory.activation.onnx_export import onnx_decoder

    shape, variant = onnx_shape(config)
    plain, blocks = _split_blocks(weights, keep=quantize)
    plain, blocks = onnx_weights(plain, blocks, config)
    local = None
    if variant.sliding_window is not None:
        local = inv_freq({**config, "rope_theta": config["rope_local_base_freq"], "rope_scaling": None})
    layers = shape.num_hidden_layers
    model = onnx_decoder(
        shape,
        plain,
        inv_freq=inv_freq(config),
        variant=variant,
        local_inv_freq=local,
        quantized=blocks,
        on_layer=lambda n: report(f"building layer {n + 1}/{layers}"),
    )
    report("writing model.onnx")
    big = sum(t.ByteSize() for t in model.graph.initializer) > 1_500_000_000
    onnx.save_model(
        model, str(folder / "model.onnx"), save_as_external_data=big, all_tensors_to_one_file=True, location="model.onnx_data"
    )


def onnx_shape(config: dict) -> tuple[Any, Any]:
    """The ONNX decoder's ``Shape`` and ``Variant`` for a converted model's config.json."""
    from memory.activation.onnx_export import Shape, Variant

    shape = Shape(
        hidden_size=config["hidden_size"],
        num_hidden_layers=config["num_hidden_layers"],
        num_attention_heads=config["num_attention_heads"],
        num_key_value_heads=config["num_key_value_heads"],
        intermediate_size=config["intermediate_size"],
        vocab_size=config["vocab_size"],
        rope_theta=config["rope_theta"],
        rms_norm_eps=config["rms_norm_eps"],
        head_size=config["head_dim"],
    )
    if config["model_type"] != "gemma3_text":
        return shape, Variant()
    return shape, Variant(
        activation="gelu_tanh",
        embedding_scale=float(config["hidden_size"]) ** 0.5,
        attention_scale=float(config["query_pre_attn_scalar"]) ** -0.5,
        sliding_window=config["sliding_window"],
        sliding_window_pattern=config["sliding_window_pattern"],
    )


def _split_blocks(weights: dict, *, keep: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """numpy float32 arrays, and MLX quantized triples as ``BlockQuantized`` (dequantized unless ``keep``)."""
    import mlx.core as mx
    import numpy as np

    from memory.activation.onnx_quant import from_mlx

    plain: dict[str, np.ndarray] = {}
    blocks: dict[str, Any] = {}
    for key, value in weights.items():
        if key.endswith((".scales", ".biases")):
            continue
        stem = key.removesuffix(".weight")
        if f"{stem}.scales" not in weights:
            plain[key] = np.array(value.astype(mx.float32))
            continue
        # In float32: float16 scales and biases, as MLX keeps them, convert exactly.
        scales, biases = weights[f"{stem}.scales"].astype(mx.float32), weights[f"{stem}.biases"].astype(mx.float32)
        if keep:
            blocks[key] = from_mlx(np.array(value), np.array(scales), np.array(biases))
        else:
            bits = value.shape[-1] // scales.shape[-1]
            plain[key] = np.array(mx.dequantize(value, scales, biases, group_size=32, bits=bits))
    return plain, blocks


def onnx_weights(plain: dict, blocks: dict, config: dict) -> tuple[dict, dict]:
    """Hugging Face weights (numpy, and ``BlockQuantized``) as the ONNX decoder takes them: Phi 3's fused
    matrices split, Gemma's norms as the (1 + weight) they multiply by, zero biases where a family has none."""
    import numpy as np

    plain, blocks = dict(plain), dict(blocks)
    heads, kv_heads, d = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]
    for n in range(config["num_hidden_layers"]):
        p = f"model.layers.{n}."
        attn, mlp, ffn = p + "self_attn.", p + "mlp.", config["intermediate_size"]
        qkv = {attn + "q_proj.weight": heads * d, attn + "k_proj.weight": kv_heads * d, attn + "v_proj.weight": kv_heads * d}
        _split_rows(plain, blocks, attn + "qkv_proj.weight", qkv)
        _split_rows(plain, blocks, mlp + "gate_up_proj.weight", {mlp + "gate_proj.weight": ffn, mlp + "up_proj.weight": ffn})
        for part, rows in (("q", heads), ("k", kv_heads), ("v", kv_heads)):  # the decoder adds biases; most have none
            plain.setdefault(p + f"self_attn.{part}_proj.bias", np.zeros(rows * d, np.float32))
    if config["model_type"] == "gemma3_text":
        plain = {k: v + np.float32(1.0) if k.endswith("norm.weight") else v for k, v in plain.items()}
    return plain, blocks


def _split_rows(plain: dict, blocks: dict, fused: str, parts: dict[str, int]) -> None:
    """Phi 3's fused matrix ``fused`` (attn_qkv, or ffn_up holding gate and up) as its parts' own matrices
    (``parts``: name -> rows, in order), float or blocks alike."""
    import dataclasses

    import numpy as np

    cuts = list(np.cumsum(list(parts.values()))[:-1])
    names = list(parts)
    if fused in plain:
        plain |= dict(zip(names, np.split(plain.pop(fused), cuts), strict=True))
    elif fused in blocks:
        q = blocks.pop(fused)
        pieces = zip(np.split(q.codes, cuts), np.split(q.scales, cuts), np.split(q.offsets, cuts), strict=True)
        for name, (codes, scales, offsets) in zip(names, pieces, strict=True):
            blocks[name] = dataclasses.replace(q, codes=codes, scales=scales, offsets=offsets)


def _float_dtype(info: GGUFInfo) -> Any:
    """Half precision on a GPU; float32 on a CPU, where MLX computes half precision element by element."""
    import mlx.core as mx

    if not mx.metal.is_available():
        return mx.float32
    return mx.bfloat16 if "BF16" in info.tensor_types else mx.float16


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def model_config(architecture: str, meta: dict, weights: dict) -> dict:
    """The Hugging Face config.json mlx-lm builds the model from, out of the GGUF hyper-parameters."""

    def hp(key: str, default: Any = None) -> Any:
        value = _scalar(meta.get(f"{architecture}.{key}"))
        return default if value is None else value

    heads = int(hp("attention.head_count"))
    hidden = int(hp("embedding_length"))
    eos = [int(_scalar(meta[k])) for k in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id") if k in meta]
    bos = _scalar(meta.get("tokenizer.ggml.bos_token_id"))
    model_type, hf_class = _MODEL_TYPES[architecture]
    config: dict[str, Any] = {
        "model_type": model_type,
        "architectures": [hf_class],
        "hidden_size": hidden,
        "num_hidden_layers": int(hp("block_count")),
        "intermediate_size": int(hp("feed_forward_length")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(hp("attention.head_count_kv", heads)),
        "head_dim": int(hp("attention.key_length", hidden // heads)),
        "rms_norm_eps": float(hp("attention.layer_norm_rms_epsilon", 1e-6)),
        "vocab_size": int(weights["token_embd.weight"].shape[0]),
        "rope_theta": float(hp("rope.freq_base", 10000.0)),
        "max_position_embeddings": int(hp("context_length", 4096)),
        "tie_word_embeddings": "output.weight" not in weights,
        "eos_token_id": sorted(set(eos)) or None,
        "bos_token_id": int(bos) if bos is not None else None,
        "hidden_act": "silu",
        "attention_bias": architecture == "qwen2",
    }
    scaling = hp("rope.scaling.type")
    if scaling == "linear":
        config["rope_scaling"] = {"type": "linear", "factor": float(hp("rope.scaling.factor", 1.0))}
    elif scaling not in (None, "none"):
        raise GGUFRefused(f"rope scaling {scaling!r} is not supported (supported: none, linear, Llama 3's rope_freqs)")
    if "rope_freqs.weight" in weights:
        config["rope_scaling"] = _llama3_rope_scaling(weights.pop("rope_freqs.weight"), config)
    if architecture == "gemma3":
        config |= _gemma3_config(hp, config)
    elif architecture == "phi3":
        config |= _phi3_config(hp, config, weights)
    return config


def _gemma3_config(hp: Any, config: dict) -> dict:
    """Gemma 3's extras, as llama.cpp runs the file: softcapping, if a file has it, is refused
    (Gemma 3 dropped it, and mlx-lm's Gemma 3 does not apply it)."""
    if hp("final_logit_softcapping") or hp("attn_logit_softcapping"):
        raise GGUFRefused("this Gemma 3 file caps its logits (softcapping), which is not supported")
    heads, hidden = config["num_attention_heads"], config["hidden_size"]
    # llama.cpp: the 27B model (62 layers) scales queries by hidden / heads, the others by the head size.
    query_scalar = hidden // heads if config["num_hidden_layers"] == 62 else config["head_dim"]
    return {
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_act": "gelu_pytorch_tanh",
        "query_pre_attn_scalar": query_scalar,
        "sliding_window": int(hp("attention.sliding_window", 4096)),
        "sliding_window_pattern": GEMMA3_SLIDING_WINDOW_PATTERN,
        "rope_local_base_freq": float(hp("rope.freq_base_swa", GEMMA3_LOCAL_ROPE_THETA)),
    }


def _phi3_config(hp: Any, config: dict, weights: dict) -> dict:
    """Phi 3's extras. Long-context files (rope_factors_long/short: Phi-3-128k, Phi-3.5, Phi-4-mini)
    and partial rotary embeddings are refused rather than run with a wrong position encoding."""
    if any(name.startswith("rope_factors_") for name in weights):
        raise GGUFRefused("this Phi 3 file uses long-context rope scaling (LongRoPE), which is not supported")
    rotary = int(hp("rope.dimension_count", config["head_dim"]))
    if rotary != config["head_dim"]:
        raise GGUFRefused(f"this Phi 3 file rotates {rotary} of each head's {config['head_dim']} dimensions; not supported")
    if config["head_dim"] * config["num_attention_heads"] != config["hidden_size"]:
        raise GGUFRefused("this Phi 3 file's head size differs from hidden size / heads; not supported")
    # mlx-lm's Phi 3 attends to the whole context; the file's sliding window (2047 tokens for
    # Phi-3-mini-4k) is larger than any prompt memory_ask builds.
    return {
        "original_max_position_embeddings": int(hp("rope.scaling.original_context_length", config["max_position_embeddings"])),
    }


def _llama3_rope_scaling(freqs: Any, config: dict) -> dict:
    """Llama 3.1+ files store the scaled rotary frequencies as a tensor; mlx-lm takes the four numbers
    that produce them. The published defaults are tried with the file's factor and must reproduce
    the tensor: a file made with other numbers is refused, not run with a wrong position encoding."""
    import mlx.core as mx
    import numpy as np

    stored = np.array(freqs.astype(mx.float32))
    scaling = {
        "rope_type": "llama3",
        "factor": float(stored.max()),
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    expected = _llama3_divisors(config["head_dim"], config["rope_theta"], scaling)
    if stored.shape != expected.shape or not np.allclose(stored, expected, rtol=1e-3):
        raise GGUFRefused("this file's Llama 3 rope frequencies do not follow the published scaling; it is not supported")
    return scaling


def _llama3_divisors(dim: int, base: float, scaling: dict) -> Any:
    """What each rotary frequency is divided by under Llama 3's scaling (llama.cpp's rope_freqs)."""
    import numpy as np

    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    original = scaling["original_max_position_embeddings"]
    wavelen = 2 * np.pi * base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    smooth = (original / wavelen - low) / (high - low)
    return np.where(
        wavelen < original / high, 1.0, np.where(wavelen > original / low, factor, 1.0 / ((1 - smooth) / factor + smooth))
    )


def inv_freq(config: dict) -> Any:
    """The rotary frequencies the model runs with, scaling included (for the ONNX decoder)."""
    import numpy as np

    dim, base = config["head_dim"], config["rope_theta"]
    frequencies = 1.0 / base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    scaling = config.get("rope_scaling")
    if scaling and scaling.get("type") == "linear":
        frequencies = frequencies / scaling["factor"]
    elif scaling and scaling.get("rope_type") == "llama3":
        frequencies = frequencies / _llama3_divisors(dim, base, scaling)
    return frequencies.astype(np.float32)


def _hf_weights(info: GGUFInfo, weights: dict, config: dict, *, requantize: bool, reader: Any) -> dict:
    """Hugging Face names and layouts; dequantized K-quant matrices quantized again when ``requantize``."""
    import mlx.core as mx

    tensors = {t.name: t for t in reader.tensors} if reader is not None else {}
    types = info.types_by_tensor
    out: dict[str, Any] = {}
    for name, value in weights.items():
        base = name.rsplit(".", 1)[0]
        gguf_type = types.get(f"{base}.weight")
        if gguf_type == "BF16" and name.endswith(".weight"):
            value = _bf16(tensors[f"{base}.weight"])
        new = _hf_name(name, info.architecture)
        if info.architecture == "gemma3" and new.endswith("norm.weight"):
            value = value - 1.0  # llama.cpp stores Gemma's (1 + weight); Hugging Face and mlx-lm keep the weight
        if (
            info.architecture == "llama"
            and (".self_attn.q_proj." in new or ".self_attn.k_proj." in new)
            and not new.endswith(".bias")
        ):
            heads = config["num_attention_heads"] if ".q_proj." in new else config["num_key_value_heads"]
            value = _unpermute(value, heads)
        if (
            requantize
            and gguf_type not in (None, *FLOAT_TYPES)
            and name.endswith(".weight")
            and value.ndim == 2
            and mx.issubdtype(value.dtype, mx.floating)  # dequantized on reading: quantized again for MLX
        ):
            w, scales, biases = mx.quantize(value, group_size=32, bits=_mlx_bits(gguf_type))
            out[new], out[new.replace(".weight", ".scales")], out[new.replace(".weight", ".biases")] = w, scales, biases
            continue
        out[new] = value
    if any(k.endswith(".scales") for k in out):
        config["quantization"] = {"group_size": 32, "bits": 4}  # per-layer bits are read from the shapes
    return out


def _hf_name(gguf_name: str, architecture: str) -> str:
    for old, replacement in (*_FAMILY_NAMES.get(architecture, ()), *_NAMES):
        gguf_name = gguf_name.replace(old, replacement)
    return gguf_name


def _mlx_bits(gguf_type: str) -> int:
    """Bits of the MLX blocks (group size 32) a dequantized GGUF matrix is quantized to again:
    8 for the types finer than 4 bits, so that no precision the file had is lost."""
    return 8 if gguf_type.startswith(("Q5", "Q6", "Q8")) else 4


def _unpermute(value: Any, heads: int) -> Any:
    """Undo llama.cpp's interleaving of each head's rotary halves (rows); scales and biases follow their rows."""
    rows = value.shape[0]
    return value.reshape(heads, rows // heads // 2, 2, *value.shape[1:]).swapaxes(1, 2).reshape(value.shape)


def _bf16(tensor: Any) -> Any:
    """A BF16 tensor read bit-exactly (mx.load would narrow it to float16, whose range is smaller)."""
    import mlx.core as mx
    import numpy as np

    raw = np.asarray(tensor.data).view(np.uint16).astype(np.uint32) << 16
    shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
    return mx.array(raw.view(np.float32).reshape(shape)).astype(mx.bfloat16)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.chmod(temporary, 0o600)
    temporary.replace(path)
