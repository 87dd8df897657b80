"""Run a weight-only int8 ONNX model's matrix products in integer arithmetic.

The default embedding model stores each linear layer's weights as int8 with one scale per
output column, and turns them back into float32 in the graph (``Cast`` then ``Mul``).
ONNX Runtime folds that into float32 weights at load, so every query streams the weights
as float32 through a float product, the largest part of a search's time.

``rewrite`` replaces each such ``MatMul`` with ONNX Runtime's ``MatMulNBits`` (8 bits,
``accuracy_level`` 4): the same int8 weights and scales, bit for bit, multiplied by the
activations quantised to int8 in blocks of ``BLOCK`` values (VNNI / AVX2 on x86, the dot
product instructions on ARM64). Only the activations' rounding differs from the float
path (``tests/test_int8_compute.py`` holds the cosines to their bounds). The embedder
records the integer path in its model id, so vectors from the two paths are never mixed
in a cube. ``BLOCK`` is the smallest block: larger ones are a little faster and a little
less exact. Figures: ``bench/RESULTS.md`` (int8 products).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

BLOCK = 32  # activations are quantised per block of this many values along the inner dimension
_MS_DOMAIN = "com.microsoft"


def rewrite(model: onnx.ModelProto) -> int:
    """Turn the model's ``MatMul(x, Cast(int8 W) * scale)`` into ``MatMulNBits``, in place; returns how many.

    A product whose weights are not int8 with one scale per output column (or whose inner
    size is not a multiple of ``BLOCK``) is left as it is.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    producer = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1

    def int8_weights(name: str) -> tuple[np.ndarray, np.ndarray, list[onnx.NodeProto]] | None:
        """(int8 [K, N], float scale [N], the Cast and Mul to drop) when ``name`` is a dequantised weight."""
        mul = producer.get(name)
        if mul is None or mul.op_type != "Mul" or len(mul.input) != 2:
            return None
        for cast_out, scale_name in (mul.input, mul.input[::-1]):
            cast = producer.get(cast_out)
            if cast is None or cast.op_type != "Cast" or scale_name not in initializers:
                continue
            to = next((helper.get_attribute_value(a) for a in cast.attribute if a.name == "to"), None)
            if cast.input[0] not in initializers or to != TensorProto.FLOAT:
                continue
            weights = numpy_helper.to_array(initializers[cast.input[0]])
            scale = numpy_helper.to_array(initializers[scale_name]).astype(np.float32)
            if weights.dtype != np.int8 or weights.ndim != 2 or weights.shape[0] % BLOCK:
                return None
            columns = weights.shape[1]
            if scale.size == 1:
                scale = np.full(columns, float(scale.reshape(-1)[0]), dtype=np.float32)
            elif scale.shape in ((1, columns), (columns,)):
                scale = scale.reshape(columns)
            else:
                return None
            # Only when nothing else reads the float weights can the Cast and Mul go.
            if consumers.get(name, 0) != 1 or consumers.get(cast_out, 0) != 1:
                return None
            return weights, scale, [cast, mul]
        return None

    rewritten = 0
    dropped: set[int] = set()
    new_initializers: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        found = int8_weights(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        if found is None:
            nodes.append(node)
            continue
        weights, scale, gone = found
        inner, columns = weights.shape
        blocks = inner // BLOCK
        # MatMulNBits stores unsigned values (zero point 128 by default for 8 bits), column-major, in blocks.
        packed = (weights.astype(np.int16) + 128).astype(np.uint8).T.reshape(columns, blocks, BLOCK)
        scales = np.repeat(scale[:, None], blocks, axis=1).reshape(-1)
        packed_name, scales_name = f"{node.input[1]}__int8", f"{node.input[1]}__scales"
        new_initializers += [
            numpy_helper.from_array(np.ascontiguousarray(packed), packed_name),
            numpy_helper.from_array(scales, scales_name),
        ]
        nodes.append(
            helper.make_node(
                "MatMulNBits",
                [node.input[0], packed_name, scales_name],
                list(node.output),
                name=f"{node.name}__int8",
                domain=_MS_DOMAIN,
                K=inner,
                N=columns,
                bits=8,
                block_size=BLOCK,
                accuracy_level=4,
            )
        )
        dropped.update(id(n) for n in gone)
        rewritten += 1
    if not rewritten:
        return 0
    kept = [node for node in nodes if id(node) not in dropped]
    del graph.node[:]
    graph.node.extend(kept)
    still_read = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    initializers_kept = [init for init in graph.initializer if init.name in still_read]
    del graph.initializer[:]
    graph.initializer.extend([*initializers_kept, *new_initializers])
    if not any(op.domain == _MS_DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(_MS_DOMAIN, 1))
    return rewritten
