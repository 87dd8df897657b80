"""A Llama/Qwen2-style decoder written out as plain ONNX operators, with a KV cache in and out.

The same graph serves Qwen 3, Gemma 3 and Phi 3: ``Variant`` says what a family changes (the
activation, scaled embeddings, the attention scale, sliding-window layers), and the weights
passed in say the rest (per-head query/key norms, norms after attention and MLP when present).
Matrices given as ``BlockQuantized`` stay 4- or 8-bit blocks, multiplied by ONNX Runtime's
``MatMulNBits`` (see ``memory.activation.onnx_quant``); a quantized embedding is stored once,
its rows unpacked in the graph for the input and its blocks multiplied as the tied output head.

The GGUF import (``memory.activation.gguf``) turns a model file's weights into this graph
for ONNX Runtime, the backend off Apple Silicon; the tests build the same graph from
random weights (``tests/random_models.py``) so that both backends can be compared.
Inputs and outputs follow the Hugging Face Optimum layout (``input_ids``,
``attention_mask``, ``position_ids``, ``past_key_values.{i}.key/value``; ``logits``,
``present.{i}.key/value``), except that ``logits`` holds the last position's alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from memory.activation.onnx_quant import BLOCK_SIZE, BlockQuantized

# MatMulNBits' level 4 multiplies int8 blocks of the activations by the weight blocks, as llama.cpp
# does (its Q8 activations): the only level with fast kernels for one token at a time on a CPU
# (levels 0-1 unpack 8-bit blocks for every product). It costs ~0.5% relative error per product.
ACCURACY_LEVEL = 4


@dataclass(frozen=True)
class Shape:
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 128
    vocab_size: int = 320
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    # The width of one attention head when it is not hidden_size / heads (Qwen 3, Gemma 3).
    head_size: int | None = None

    @property
    def head_dim(self) -> int:
        return self.head_size or self.hidden_size // self.num_attention_heads


@dataclass(frozen=True)
class Variant:
    """What a model family changes in the Qwen2 decoder (the defaults are Qwen2's and Llama's)."""

    activation: str = "silu"  # of the gated MLP: "silu", or "gelu_tanh" (Gemma)
    embedding_scale: float = 1.0  # Gemma multiplies the embeddings by sqrt(hidden_size)
    attention_scale: float | None = None  # default 1 / sqrt(head_dim)
    # Gemma 3: layers attend within this many tokens, except every n-th (n = sliding_window_pattern),
    # which attends to the whole context; the local layers have their own rotary base.
    sliding_window: int | None = None
    sliding_window_pattern: int = 1

    def is_sliding(self, layer: int) -> bool:
        return self.sliding_window is not None and (layer + 1) % self.sliding_window_pattern != 0


def onnx_decoder(
    shape: Shape,
    weights: dict[str, np.ndarray],
    inv_freq: np.ndarray | None = None,
    variant: Variant = Variant(),
    local_inv_freq: np.ndarray | None = None,
    quantized: dict[str, BlockQuantized] | None = None,
    on_layer: Callable[[int], None] | None = None,
    accuracy_level: int = ACCURACY_LEVEL,
):  # -> onnx.ModelProto
    """The Qwen2 decoder as plain ONNX operators (opset 17), with a KV cache in and out.

    ``inv_freq``: the rotary frequencies when the model scales them (default: from rope_theta);
    ``local_inv_freq``: those of the sliding-window layers (default: ``inv_freq``). Norm weights
    are used as given: a Gemma norm's (1 + weight) is the caller's to pass. ``quantized``: weight
    name -> its blocks, for the matrices kept quantized (``weights`` need not hold them).
    ``on_layer``: told each layer's index as it is built (quantizing a large model takes a while).
    ``accuracy_level``: MatMulNBits' (0: float32 products of the unpacked blocks, exact but slow).
    """
    from onnx import TensorProto, helper, numpy_helper

    nodes: list = []
    inits: list = []
    counter = [0]

    def name(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def const(value: np.ndarray, prefix: str = "c") -> str:
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.asarray(value), n))
        return n

    def op(kind: str, inputs: list[str], **attrs) -> str:
        out = name(kind.lower())
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def weight(key: str, transpose: bool = False) -> str:
        value = weights[key].T.copy() if transpose else weights[key]
        inits.append(numpy_helper.from_array(value, key))
        return key

    h, nh, kv, d = shape.hidden_size, shape.num_attention_heads, shape.num_key_value_heads, shape.head_dim
    rep = nh // kv
    eps = const(np.array(shape.rms_norm_eps, np.float32), "eps")
    one_f = const(np.array(1.0, np.float32))

    def rms_norm(x: str, key: str) -> str:
        var = op("ReduceMean", [op("Mul", [x, x])], axes=[-1], keepdims=1)
        return op("Mul", [op("Mul", [x, op("Reciprocal", [op("Sqrt", [op("Add", [var, eps])])])]), weight(key)])

    def activation(x: str) -> str:
        if variant.activation == "silu":
            return op("Mul", [x, op("Sigmoid", [x])])
        if variant.activation == "gelu_tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); opset 17 has no Gelu
            cubic = op("Mul", [op("Mul", [op("Mul", [x, x]), x]), const(np.array(0.044715, np.float32))])
            inner = op("Mul", [op("Add", [x, cubic]), const(np.array(np.sqrt(2 / np.pi), np.float32))])
            return op("Mul", [op("Mul", [x, const(np.array(0.5, np.float32))]), op("Add", [op("Tanh", [inner]), one_f])])
        raise ValueError(f"activation {variant.activation!r} is not supported")

    blocks_of = quantized or {}

    def block_inputs(key: str) -> tuple[str, str, str | None]:
        """The initializers of ``key``'s blocks (codes, scales, remainders [K / 32, N]), added once. A
        symmetric grid (llama.cpp's Q4_0, Q8_0) leaves no remainder: none is stored then."""
        q = blocks_of[key]
        remainders = q.remainders
        symmetric = not remainders.any()
        if f"{key}.codes" not in added:
            added.add(f"{key}.codes")
            inits.append(numpy_helper.from_array(q.codes, f"{key}.codes"))
            inits.append(numpy_helper.from_array(q.scales.reshape(-1), f"{key}.scales"))
            if not symmetric:
                inits.append(numpy_helper.from_array(remainders.T.copy(), f"{key}.remainders"))
        return f"{key}.codes", f"{key}.scales", None if symmetric else f"{key}.remainders"

    added: set[str] = set()

    def matmul_blocks(x: str, key: str, rank: int) -> str:
        """x [..., K] (``rank`` axes) times the blocks of ``key``: MatMulNBits, plus each block's input sum
        times its remainder."""
        q = blocks_of[key]
        codes, scales, remainders = block_inputs(key)
        rows, columns = q.shape
        out = name("matmulnbits")
        nodes.append(
            helper.make_node(
                "MatMulNBits",
                [x, codes, scales],
                [out],
                domain="com.microsoft",
                K=columns,
                N=rows,
                bits=q.bits,
                block_size=BLOCK_SIZE,
                accuracy_level=accuracy_level,
            )
        )
        if remainders is None:
            return out
        per_block = op("Reshape", [x, const(np.array([0] * (rank - 1) + [columns // BLOCK_SIZE, BLOCK_SIZE], np.int64))])
        sums = op("ReduceSum", [per_block, const(np.array([-1], np.int64))], keepdims=0)
        return op("Add", [out, op("MatMul", [sums, remainders])])

    def linear(x: str, key: str, bias: bool = False, rank: int = 3) -> str:
        if key + ".weight" in blocks_of:
            y = matmul_blocks(x, key + ".weight", rank)
        else:
            y = op("MatMul", [x, weight(key + ".weight", transpose=True)])
        return op("Add", [y, weight(key + ".bias")]) if bias else y

    def embedding_rows(key: str) -> str:
        """The input rows of a block-quantized embedding, unpacked: scale * code + offset."""
        q = blocks_of[key]
        codes, scales, _ = block_inputs(key)
        rows, columns = q.shape
        per_row = const(np.array([rows, columns // BLOCK_SIZE], np.int64))
        picked = op("Cast", [op("Gather", [codes, "input_ids"], axis=0)], to=TensorProto.FLOAT)  # [B, S, blocks, bytes]
        if q.bits == 4:  # two codes a byte, the even column in the low nibble
            high = op("Floor", [op("Div", [picked, const(np.array(16.0, np.float32))])])
            low = op("Sub", [picked, op("Mul", [high, const(np.array(16.0, np.float32))])])
            picked = op("Concat", [op("Unsqueeze", [low, last]), op("Unsqueeze", [high, last])], axis=-1)
            picked = op("Reshape", [picked, const(np.array([0, 0, 0, BLOCK_SIZE], np.int64))])
        offsets = f"{key}.offsets"
        inits.append(numpy_helper.from_array(q.offsets.reshape(-1), offsets))

        def per_block(values: str) -> str:
            return op("Unsqueeze", [op("Gather", [op("Reshape", [values, per_row]), "input_ids"], axis=0), last])

        values = op("Add", [op("Mul", [picked, per_block(scales)]), per_block(offsets)])
        return op("Reshape", [values, const(np.array([0, 0, columns], np.int64))])

    last = const(np.array([-1], np.int64))

    # Rotary embedding (rotate-half form, as in Hugging Face Qwen2 and mlx-lm's non-traditional RoPE).
    if inv_freq is None:
        inv_freq = (1.0 / (shape.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d))).astype(np.float32)
    nodes.append(helper.make_node("Cast", ["position_ids"], ["position_ids_f"], to=TensorProto.FLOAT))
    positions = op("Unsqueeze", ["position_ids_f", const(np.array([-1], np.int64))])
    axis1 = const(np.array([1], np.int64))

    def rotary(frequencies: np.ndarray) -> tuple[str, str]:
        freqs = op("Mul", [positions, const(frequencies, "inv_freq")])
        emb = op("Concat", [freqs, freqs], axis=-1)
        return op("Unsqueeze", [op("Cos", [emb]), axis1]), op("Unsqueeze", [op("Sin", [emb]), axis1])

    global_rotary = rotary(inv_freq)
    local_rotary = global_rotary if local_inv_freq is None else rotary(local_inv_freq)
    half = const(np.array([d // 2, d // 2], np.int64))

    def rope(x: str, cos_sin: tuple[str, str]) -> str:
        cos, sin = cos_sin
        x1, x2 = name("x1"), name("x2")
        nodes.append(helper.make_node("Split", [x, half], [x1, x2], axis=-1))
        rotated = op("Concat", [op("Neg", [x2]), x1], axis=-1)
        return op("Add", [op("Mul", [x, cos]), op("Mul", [rotated, sin])])

    # Additive mask [B, 1, rep*S, T]: causal over absolute positions, and padding from attention_mask.
    past_len = op("Gather", [op("Shape", ["past_key_values.0.key"]), const(np.array(2, np.int64))])
    total = op("Gather", [op("Shape", ["attention_mask"]), const(np.array(1, np.int64))])
    zero, one = const(np.array(0, np.int64)), const(np.array(1, np.int64))
    keys_idx = op("Range", [zero, total, one])
    query_idx = op("Unsqueeze", [op("Range", [past_len, total, one]), const(np.array([1], np.int64))])
    causal = op("LessOrEqual", [keys_idx, query_idx])  # [S, T]
    padding = op("Unsqueeze", [op("Cast", ["attention_mask"], to=TensorProto.BOOL), const(np.array([1, 2], np.int64))])

    def additive(allowed: str) -> str:  # [B, 1, S, T] booleans -> the additive mask [B, 1, rep*S, T]
        mask = op("Where", [allowed, const(np.array(0.0, np.float32)), const(np.array(-3.0e38, np.float32))])
        return op("Tile", [mask, const(np.array([1, 1, rep, 1], np.int64))])

    global_mask = additive(op("And", [causal, padding]))
    local_mask = global_mask
    if variant.sliding_window is not None:  # a key is seen while fewer than `window` positions behind the query
        window = const(np.array(variant.sliding_window, np.int64))
        recent = op("Greater", [op("Add", [keys_idx, window]), query_idx])
        local_mask = additive(op("And", [op("And", [causal, recent]), padding]))
    scale = const(np.array(variant.attention_scale or 1.0 / np.sqrt(d), np.float32))

    if "model.embed_tokens.weight" in blocks_of:
        x = embedding_rows("model.embed_tokens.weight")
    else:
        x = op("Gather", [weight("model.embed_tokens.weight"), "input_ids"], axis=0)
    if variant.embedding_scale != 1.0:
        x = op("Mul", [x, const(np.array(variant.embedding_scale, np.float32))])
    for n in range(shape.num_hidden_layers):
        p = f"model.layers.{n}."
        if on_layer is not None:
            on_layer(n)
        sliding = variant.is_sliding(n)
        cos_sin, mask = (local_rotary, local_mask) if sliding else (global_rotary, global_mask)
        normed = rms_norm(x, p + "input_layernorm.weight")

        def heads(y: str, count: int, norm: str) -> str:
            split = op("Transpose", [op("Reshape", [y, const(np.array([0, 0, count, d], np.int64))])], perm=[0, 2, 1, 3])
            return rms_norm(split, norm) if norm in weights else split  # Qwen 3 and Gemma 3 norm each head

        q = rope(heads(linear(normed, p + "self_attn.q_proj", bias=True), nh, p + "self_attn.q_norm.weight"), cos_sin)
        k = rope(heads(linear(normed, p + "self_attn.k_proj", bias=True), kv, p + "self_attn.k_norm.weight"), cos_sin)
        v = heads(linear(normed, p + "self_attn.v_proj", bias=True), kv, "")
        nodes.append(helper.make_node("Concat", [f"past_key_values.{n}.key", k], [f"present.{n}.key"], axis=2))
        nodes.append(helper.make_node("Concat", [f"past_key_values.{n}.value", v], [f"present.{n}.value"], axis=2))
        # Grouped-query attention without copying K/V: fold each group's query heads into rows.
        grouped_q = op("Reshape", [q, const(np.array([0, kv, -1, d], np.int64))])
        scores = op("Mul", [op("MatMul", [grouped_q, op("Transpose", [f"present.{n}.key"], perm=[0, 1, 3, 2])]), scale])
        probs = op("Softmax", [op("Add", [scores, mask])], axis=-1)
        attn = op("Reshape", [op("MatMul", [probs, f"present.{n}.value"]), const(np.array([0, nh, -1, d], np.int64))])
        attn = op("Reshape", [op("Transpose", [attn], perm=[0, 2, 1, 3]), const(np.array([0, 0, nh * d], np.int64))])
        attn = linear(attn, p + "self_attn.o_proj")
        if sandwich := (p + "pre_feedforward_layernorm.weight") in weights:  # Gemma: norms before and after each block
            x = op("Add", [x, rms_norm(attn, p + "post_attention_layernorm.weight")])
            normed = rms_norm(x, p + "pre_feedforward_layernorm.weight")
        else:
            x = op("Add", [x, attn])
            normed = rms_norm(x, p + "post_attention_layernorm.weight")
        gate = linear(normed, p + "mlp.gate_proj")
        mlp = linear(op("Mul", [activation(gate), linear(normed, p + "mlp.up_proj")]), p + "mlp.down_proj")
        x = op("Add", [x, rms_norm(mlp, p + "post_feedforward_layernorm.weight") if sandwich else mlp])
    # Only the last position's logits are output: the next token is all a decoder is asked for, and
    # the output head over every prompt position was the largest product of a prefill.
    x = op("Slice", [x, const(np.array([-1], np.int64)), const(np.array([np.iinfo(np.int64).max], np.int64)), axis1])
    x = rms_norm(x, "model.norm.weight")
    flat = op("Reshape", [x, const(np.array([-1, h], np.int64))])
    if "lm_head.weight" in weights or "lm_head.weight" in blocks_of:
        logits = linear(flat, "lm_head", rank=2)
    elif "model.embed_tokens.weight" in blocks_of:  # tied to the quantized embedding: the same blocks
        logits = matmul_blocks(flat, "model.embed_tokens.weight", rank=2)
    else:
        logits = op("Gemm", [flat, "model.embed_tokens.weight"], transB=1)
    batch = op("Slice", [op("Shape", ["input_ids"]), const(np.array([0], np.int64)), const(np.array([1], np.int64))])
    out_shape = op("Concat", [batch, const(np.array([1, shape.vocab_size], np.int64))], axis=0)
    nodes.append(helper.make_node("Reshape", [logits, out_shape], ["logits"]))

    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    inputs = [
        helper.make_tensor_value_info("input_ids", i64, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", i64, ["batch", "total"]),
        helper.make_tensor_value_info("position_ids", i64, ["batch", "seq"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", 1, shape.vocab_size])]
    for n in range(shape.num_hidden_layers):
        for part in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_key_values.{n}.{part}", f32, ["batch", kv, "past", d]))
            outputs.append(helper.make_tensor_value_info(f"present.{n}.{part}", f32, ["batch", kv, "total", d]))
    graph = helper.make_graph(nodes, "qwen2_decoder", inputs, outputs, initializer=inits)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.microsoft", 1)] if blocks_of else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="memcube")
    model.ir_version = 8
    return model
