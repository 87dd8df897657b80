"""Qwen2-shaped decoders with random weights, for tests and the benchmark (never for answers).

``build_mlx_model`` writes a folder that ``mlx_lm.load`` reads (config.json, safetensors,
tokenizer.json, tokenizer_config.json with a chat template); ``build_onnx_model`` writes the
same network as an ONNX decoder in the Hugging Face Optimum layout (inputs ``input_ids``,
``attention_mask``, ``position_ids``, ``past_key_values.{i}.key/value``; outputs ``logits``,
``present.{i}.key/value``). Given the same seed both hold the same weights, so their logits
can be compared. Nothing is downloaded: the tokenizer is a byte-level BPE with no merges.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from memory.activation.onnx_export import Shape, onnx_decoder

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


# Qwen2.5-0.5B-Instruct's shape (494M parameters).
QWEN25_05B = Shape(
    hidden_size=896,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    intermediate_size=4864,
    vocab_size=151936,
)


def random_weights(shape: Shape, seed: int = 0) -> dict[str, np.ndarray]:
    """Hugging Face Qwen2 parameter names -> float32 arrays ([out, in] for linear layers)."""
    rng = np.random.default_rng(seed)

    def normal(*dims: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(dims, dtype=np.float32) * scale).astype(np.float32)

    h, d, kv, i = shape.hidden_size, shape.head_dim, shape.num_key_value_heads, shape.intermediate_size
    weights = {"model.embed_tokens.weight": normal(shape.vocab_size, h, scale=1.0), "model.norm.weight": np.ones(h, np.float32)}
    for n in range(shape.num_hidden_layers):
        p = f"model.layers.{n}."
        weights |= {
            p + "input_layernorm.weight": np.ones(h, np.float32),
            p + "post_attention_layernorm.weight": np.ones(h, np.float32),
            p + "self_attn.q_proj.weight": normal(shape.num_attention_heads * d, h),
            p + "self_attn.q_proj.bias": normal(shape.num_attention_heads * d),
            p + "self_attn.k_proj.weight": normal(kv * d, h),
            p + "self_attn.k_proj.bias": normal(kv * d),
            p + "self_attn.v_proj.weight": normal(kv * d, h),
            p + "self_attn.v_proj.bias": normal(kv * d),
            p + "self_attn.o_proj.weight": normal(h, shape.num_attention_heads * d),
            p + "mlp.gate_proj.weight": normal(i, h),
            p + "mlp.up_proj.weight": normal(i, h),
            p + "mlp.down_proj.weight": normal(h, i),
        }
    return weights


def _config(shape: Shape) -> dict:
    eos = 256 + SPECIAL_TOKENS.index("<|im_end|>")
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "torch_dtype": "float32",
        "tie_word_embeddings": True,
        "max_position_embeddings": 32768,
        "eos_token_id": eos,
        "bos_token_id": None,
        "hidden_act": "silu",
        "use_sliding_window": False,
        **{k: v for k, v in asdict(shape).items() if k != "head_size"},
        "head_dim": shape.head_dim,
    }


def write_tokenizer(folder: Path, vocab_size: int) -> None:
    """A byte-level BPE tokenizer with no merges (one token per byte) plus ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers import AddedToken

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    # Ids past the specials exist only so that every id the model can sample decodes to something.
    fillers = {f"<|x{n}|>": n for n in range(len(vocab) + len(SPECIAL_TOKENS), vocab_size)}
    tokenizer = Tokenizer(models.BPE(vocab={**vocab, **fillers}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "bos_token": None,
                "unk_token": None,
                "chat_template": CHATML_TEMPLATE,
                "model_max_length": 32768,
            }
        )
    )


def build_mlx_model(folder: Path, shape: Shape = Shape(), seed: int = 0) -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights = random_weights(shape, seed)
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "mlx"})
    (folder / "config.json").write_text(json.dumps(_config(shape)))
    write_tokenizer(folder, shape.vocab_size)
    return folder


def build_onnx_model(folder: Path, shape: Shape = Shape(), seed: int = 0) -> Path:
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    model = onnx_decoder(shape, random_weights(shape, seed))
    big = sum(t.ByteSize() for t in model.graph.initializer) > 1_500_000_000
    onnx.save_model(
        model, str(folder / "model.onnx"), save_as_external_data=big, all_tensors_to_one_file=True, location="model.onnx_data"
    )
    (folder / "config.json").write_text(json.dumps(_config(shape)))
    write_tokenizer(folder, shape.vocab_size)
    return folder
