"""A first pass over the mirror in 8-bit integers, with a bound on how far it can be off.

At 100,000 memories the float32 product of a query with the mirror reads 153 MB and is
bound by memory bandwidth (about 14 ms on the 2-core benchmark machine, whether one thread
or two do it). The same rows as int8, one scale per row, are a quarter of that and run
on ONNX Runtime's integer product (``DynamicQuantizeMatMul``, VNNI or AVX2), which packs
them once when the scan is built: about 4 ms for the same query.

The integer scores are not the cosines, but each is within ``bound(query)`` of its
cosine, a bound derived from the rounding of both sides (not measured, so it holds for
any data). ``VectorMirror`` keeps every row whose first-pass score comes within twice
that bound of the k-th best and scores those exactly from the float rows, so the top k
it returns are those of the exact scan.
"""

from __future__ import annotations

import numpy as np

INT8_MAX = 127
UINT8_LEVELS = 255  # ONNX Runtime quantises the query to uint8 over [min(q, 0), max(q, 0)]
FLOAT_SLACK = 1e-4  # the float rounding of the scaled integer sums, far above its real size


class Int8Scan:
    """Rows ``[0, rows)`` of a float32 matrix of unit vectors, as int8, packed for ONNX Runtime."""

    def __init__(self, matrix: np.ndarray) -> None:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        self.rows, dim = matrix.shape
        peak = np.abs(matrix).max(axis=1)
        scales = np.where(peak > 0, peak / INT8_MAX, 1.0).astype(np.float32)
        codes = np.clip(np.rint(matrix / scales[:, None]), -INT8_MAX, INT8_MAX).astype(np.int8)
        # |v_i - code_i * scale| <= scale / 2 for every component of every row; an all-zero row
        # (an imported vector can be one) is held exactly whatever its scale, so it does not count.
        self._half_step = float(scales[peak > 0].max()) / 2 if (peak > 0).any() else 0.0
        self._code_l1 = float((np.abs(codes).sum(axis=1, dtype=np.float64) * scales).max())
        graph = helper.make_graph(
            [helper.make_node("DynamicQuantizeMatMul", ["query", "codes", "scales"], ["scores"], domain="com.microsoft")],
            "int8-scan",
            [helper.make_tensor_value_info("query", TensorProto.FLOAT, [1, dim])],
            [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, self.rows])],
            [numpy_helper.from_array(np.ascontiguousarray(codes.T), "codes"), numpy_helper.from_array(scales, "scales")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def scores(self, query: np.ndarray) -> np.ndarray:
        """First-pass scores of ``query`` with every row, each within ``bound(query)`` of the true cosine."""
        out: np.ndarray = self._session.run(None, {"query": query.reshape(1, -1).astype(np.float32)})[0][0]
        return out

    def bound(self, query: np.ndarray) -> float:
        """How far any first-pass score can be from the float product.

        With v the row, c its codes times its scale, q the query and p its uint8 rounding:
        |v.q - c.p| <= |v - c|.|q| + |c|.|q - p| <= (scale/2)*||q||_1 + ||c||_1*step.
        Rounding alone would put p within step/2 of q; a full step also covers the zero point's
        own rounding, which can push the largest value of the query against the end of the range.
        """
        query = query.astype(np.float64)
        step = (max(float(query.max()), 0.0) - min(float(query.min()), 0.0)) / UINT8_LEVELS
        return self._half_step * float(np.abs(query).sum()) + self._code_l1 * step + FLOAT_SLACK
