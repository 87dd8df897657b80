"""GGUF files (llama.cpp, Ollama, LM Studio) as the local model: checked, then converted once.

A GGUF file holds the weights, the hyper-parameters, the tokenizer and the chat template.
``import_gguf`` checks the file (magic, header, every tensor within the file, architecture,
tensor types), then writes a model folder under ``<home>/models/gguf/<sha256>-<backend>/``
that the backends load like any other: config.json, tokenizer.json and tokenizer_config.json
(with the file's chat template), plus model.safetensors (MLX, on Apple Silicon) or model.onnx
(ONNX Runtime, elsewhere). The folder is named by the file's content hash, so one file is
converted once however it is named, and a changed file gets a new folder.

Weights: ``mx.load`` reads GGUF directly. Q4_0, Q4_1 and Q8_0 blocks arrive as MLX affine
quantized triples (group size 32) and stay so for MLX; F16, F32 and the K-quants MLX can read
(Q2_K, Q4_K, Q6_K) arrive dequantized, and for MLX matrices from K-quants are quantized again
to MLX group-32 blocks so that memory stays near the file's size. The ONNX decoder takes
float32 weights. llama.cpp stores a Llama model's query and key rows interleaved for its
rotary embedding; they are put back in the Hugging Face order both backends expect.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from memory.errors import InvalidInput

log = logging.getLogger(__name__)

SUPPORTED_ARCHITECTURES = ("llama", "qwen2")
# Tensor types mx.load reads: the first three stay quantized, the rest arrive as float16.
KEPT_QUANTIZED = ("Q4_0", "Q4_1", "Q8_0")
READABLE = ("F32", "F16", "BF16", *KEPT_QUANTIZED, "Q2_K", "Q4_K", "Q6_K")
# Bits of the MLX blocks a dequantized K-quant matrix is quantized to again (group size 32).
REQUANTIZE_BITS = {"Q2_K": 4, "Q4_K": 4, "Q6_K": 8}
FORMAT = "memcube-gguf/1"
_NAMES = (  # GGUF tensor names -> Hugging Face names, in the order they are applied
    ("token_embd", "model.embed_tokens"),
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


class GGUFRefused(InvalidInput):
    """A GGUF file that cannot serve as the local model; the message says why and what would."""


class GGUFInfo(BaseModel):
    path: Path
    size: int
    architecture: str
    name: str
    tensor_types: dict[str, int]


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
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
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
            "(pick a Q4_0, Q4_1, Q8_0, Q4_K_M or F16 file of the model)"
        )
    return GGUFInfo(
        path=path,
        size=size,
        architecture=architecture,
        name=_field(reader, "general.name") or path.stem,
        tensor_types=dict(types),
    )


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
    slower than ONNX Runtime's float32 kernels, so off Apple Silicon the weights become ONNX.
    """
    if requested in ("mlx", "onnx"):
        return requested
    return "mlx" if sys.platform == "darwin" and platform.machine() == "arm64" else "onnx"


def import_gguf(path: Path, home: Path, backend: str = "auto") -> Path:
    """The model folder converted from ``path`` for ``backend``, converting it first if this file never was.

    Raises:
        GGUFRefused: the file cannot be used (see ``check_gguf``); nothing is written then.
    """
    path = path.expanduser()
    info = check_gguf(path)
    backend = gguf_backend(backend)
    target = gguf_root(home) / f"{file_sha256(path, home)[:32]}-{backend}"
    if (target / "config.json").is_file():
        return target
    # Built beside the target and renamed into place: a crash or a second server converting the
    # same file at the same time never leaves a half-written folder that looks converted.
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True, mode=0o700)
    try:
        convert(info, partial, backend)
        (partial / ".memcube-revision").write_text(f"gguf-sha256:{target.name}")
        try:
            partial.rename(target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log.info("converted %s to %s", path, target)
    return target


def convert(info: GGUFInfo, folder: Path, backend: str) -> None:
    """Write the model folder (``mlx`` or ``onnx`` layout) for a checked GGUF file."""
    import mlx.core as mx

    from memory.activation.gguf_tokenizer import TokenizerRefused, build_tokenizer

    source = info.path
    if source.suffix.lower() != ".gguf":  # an Ollama blob: mx.load goes by the file extension
        source = folder / "source.gguf"
        source.symlink_to(info.path.resolve())
    try:
        loaded: Any = mx.load(str(source), return_metadata=True)  # (tensors, metadata) for a GGUF file
        weights, meta = loaded
    except Exception as exc:
        raise GGUFRefused(f"{info.path.name} cannot be read: {exc}") from None
    try:
        tokenizer = build_tokenizer(meta)
    except TokenizerRefused as exc:
        raise GGUFRefused(f"{info.path.name}: {exc}") from None
    config = model_config(info.architecture, meta, weights)
    weights = _hf_weights(info, weights, config, requantize=backend == "mlx")
    if backend == "mlx":
        float_dtype = _float_dtype(info)
        weights = {k: v.astype(float_dtype) if mx.issubdtype(v.dtype, mx.floating) else v for k, v in weights.items()}
        mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "mlx"})
    else:
        config.pop("quantization", None)
        _write_onnx(weights, config, folder)
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


def _write_onnx(weights: dict, config: dict, folder: Path) -> None:
    """The network as an ONNX decoder with a KV cache (float32: ONNX Runtime's fastest CPU path)."""
    import mlx.core as mx
    import numpy as np
    import onnx

    from memory.activation.onnx_export import Shape, onnx_decoder

    shape = Shape(
        hidden_size=config["hidden_size"],
        num_hidden_layers=config["num_hidden_layers"],
        num_attention_heads=config["num_attention_heads"],
        num_key_value_heads=config["num_key_value_heads"],
        intermediate_size=config["intermediate_size"],
        vocab_size=config["vocab_size"],
        rope_theta=config["rope_theta"],
        rms_norm_eps=config["rms_norm_eps"],
    )
    if shape.head_dim != config["head_dim"]:
        raise GGUFRefused(f"head size {config['head_dim']} differs from hidden size / heads; the ONNX path does not support it")
    plain: dict[str, np.ndarray] = {}
    for key, value in weights.items():
        if key.endswith((".scales", ".biases")):
            continue
        stem = key.removesuffix(".weight")
        if f"{stem}.scales" in weights:
            scales, biases = weights[f"{stem}.scales"], weights[f"{stem}.biases"]
            bits = value.shape[-1] // scales.shape[-1]
            value = mx.dequantize(value, scales, biases, group_size=32, bits=bits)
        plain[key] = np.array(value.astype(mx.float32))
    for n in range(shape.num_hidden_layers):  # the decoder adds query, key and value biases; Llama has none
        for part, rows in (("q", shape.num_attention_heads), ("k", shape.num_key_value_heads), ("v", shape.num_key_value_heads)):
            plain.setdefault(f"model.layers.{n}.self_attn.{part}_proj.bias", np.zeros(rows * shape.head_dim, np.float32))
    model = onnx_decoder(shape, plain, inv_freq=inv_freq(config))
    big = sum(t.ByteSize() for t in model.graph.initializer) > 1_500_000_000
    onnx.save_model(
        model, str(folder / "model.onnx"), save_as_external_data=big, all_tensors_to_one_file=True, location="model.onnx_data"
    )


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
    config: dict[str, Any] = {
        "model_type": architecture,
        "architectures": [{"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}[architecture]],
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
    return config


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


def _hf_weights(info: GGUFInfo, weights: dict, config: dict, *, requantize: bool) -> dict:
    """Hugging Face names and layouts; dequantized K-quant matrices quantized again when ``requantize``."""
    import mlx.core as mx

    reader = None
    if set(info.tensor_types) & {"BF16", *REQUANTIZE_BITS}:
        from gguf import GGUFReader

        reader = GGUFReader(info.path)
    tensors = {t.name: t for t in reader.tensors} if reader is not None else {}
    types = {name: t.tensor_type.name for name, t in tensors.items()}
    out: dict[str, Any] = {}
    for name, value in weights.items():
        base = name.rsplit(".", 1)[0]
        gguf_type = types.get(f"{base}.weight")
        if gguf_type == "BF16" and name.endswith(".weight"):
            value = _bf16(tensors[f"{base}.weight"])
        new = name
        for old, replacement in _NAMES:
            new = new.replace(old, replacement)
        if (
            info.architecture == "llama"
            and (".self_attn.q_proj." in new or ".self_attn.k_proj." in new)
            and not new.endswith(".bias")
        ):
            heads = config["num_attention_heads"] if ".q_proj." in new else config["num_key_value_heads"]
            value = _unpermute(value, heads)
        if requantize and gguf_type in REQUANTIZE_BITS and name.endswith(".weight") and value.ndim == 2:
            w, scales, biases = mx.quantize(value, group_size=32, bits=REQUANTIZE_BITS[gguf_type])
            out[new], out[new.replace(".weight", ".scales")], out[new.replace(".weight", ".biases")] = w, scales, biases
            continue
        out[new] = value
    if any(k.endswith(".scales") for k in out):
        config["quantization"] = {"group_size": 32, "bits": 4}  # per-layer bits are read from the shapes
    return out


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
