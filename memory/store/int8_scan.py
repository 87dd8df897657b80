"""A first pass over the mirror in 8-bit integers, with a bound on how far it can be off.

At 100,000 memories the float32 product of a query with the mirror reads 153 MB and is
bound by memory bandwidth (about 14 ms on the 2-core benchmark machine, whether one thread
or two do it). The same rows as int8, one scale per row, are a quarter of that and run
on ONNX Runtime's integer product (``DynamicQuantizeMatMul``, VNNI or AVX2), which packs
them once when the scan is built: about 4 ms for the same query.

The integer scores are not the cosines, but each row's is within ``bounds(query)`` of its
cosine, a bound derived from the rounding of both sides (not measured, so it holds for
any data). ``VectorMirror`` keeps every row whose score plus its bound reaches the k-th
best score less its bound, and scores those exactly from the float rows, so the top k it
returns are those of the exact scan.

The codes use 7 bits (``CODE_MAX``), not 8. ONNX Runtime multiplies the query's uint8
values by the int8 codes; on x86 CPUs without VNNI (AVX2 alone, or AVX-512 without VNNI)
it does so with ``vpmaddubsw``, which adds each pair of products into a signed 16-bit
integer and saturates past 32,767. With 8-bit codes a pair reaches 2 * 255 * 127 = 64,770,
so on those CPUs a score could be off by far more than any rounding bound (seen on an AMD
EPYC with AVX2: 3x the bound). With codes in [-64, 64] a pair is at most 2 * 255 * 64 =
32,640, so no kernel can saturate, and the bound holds on every instruction set: VNNI and
ARM's dot products add into 32 bits anyway. The coarser codes double the rows' rounding;
per-row bounds (the stored residual of each row rather than the worst row's step) win the
lost tightness back.
"""

from __future__ import annotations

import numpy as np

CODE_MAX = 64  # 2 * 255 * CODE_MAX <= 32,767: a pair of uint8 x int8 products cannot saturate 16 bits
UINT8_LEVELS = 255  # ONNX Runtime quantises the query to uint8 over [min(q, 0), max(q, 0)]
FLOAT_SLACK = 1e-4  # the float rounding of the scaled integer sums, far above its real size


class Int8Scan:
    """Rows ``[0, rows)`` of a float32 matrix of unit vectors, as int8, packed for ONNX Runtime."""

    def __init__(self, matrix: np.ndarray) -> None:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        self.rows, dim = matrix.shape
        peak = np.abs(matrix).max(axis=1)
        scales = np.where(peak > 0, peak / CODE_MAX, 1.0).astype(np.float32)
        codes = np.clip(np.rint(matrix / scales[:, None]), -CODE_MAX, CODE_MAX).astype(np.int8)
        held = codes * scales[:, None]  # float32: the bound's slack covers its rounding
        # Per row: |v_i - c_i| <= scale / 2 for every component (an all-zero row, which an
        # imported vector can be, is held exactly), the residual's length, and ||c||_1.
        self._half_step = np.where(peak > 0, scales.astype(np.float64) / 2, 0.0)
        self._residual = np.linalg.norm(matrix - held, axis=1).astype(np.float64)
        self._code_l1 = np.abs(held).sum(axis=1, dtype=np.float64)
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
        """First-pass scores of ``query`` with every row, each within its ``bounds(query)`` of the true cosine."""
        out: np.ndarray = self._session.run(None, {"query": query.reshape(1, -1).astype(np.float32)})[0][0]
        return out

    def bounds(self, query: np.ndarray) -> np.ndarray:
        """How far each row's first-pass score can be from its float product with ``query``.

        With v the row, c its codes times its scale, q the query and p its uint8 rounding:
        |v.q - c.p| <= |(v - c).q| + |c.(q - p)|, where
        |(v - c).q| <= min((scale/2) * ||q||_1, ||v - c||_2 * ||q||_2) and |c.(q - p)| <= ||c||_1 * step.
        Rounding alone would put p within step/2 of q; a full step also covers the zero point's
        own rounding, which can push the largest value of the query against the end of the range.
        No saturation term: the codes are too small for any kernel to saturate (``CODE_MAX``).
        """
        query = query.astype(np.float64)
        step = (max(float(query.max()), 0.0) - min(float(query.min()), 0.0)) / UINT8_LEVELS
        rows_rounding = np.minimum(self._half_step * float(np.abs(query).sum()), self._residual * float(np.linalg.norm(query)))
        return rows_rounding + self._code_l1 * step + FLOAT_SLACK

    def bound(self, query: np.ndarray) -> float:
        """The largest of ``bounds(query)``: no first-pass score is further than this from its cosine."""
        return float(self.bounds(query).max())
