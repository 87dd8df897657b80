"""Block-quantized weights for ONNX Runtime's ``MatMulNBits`` (com.microsoft domain).

A matrix [N, K] (Hugging Face layout: output rows, input columns) is cut into blocks of 32
along K; each block keeps 4- or 8-bit codes q, a float32 scale and an integer zero point, and
stands for (q - zero_point) * scale. This is the layout ``MatMulNBits`` multiplies with
directly: the codes in [N, K / 32, 32 * bits / 8] bytes (two 4-bit codes a byte, the lower
column in the low nibble), the scales [N * K / 32], the zero points packed like the codes.
The asymmetric min-max grid reproduces a llama.cpp Q4_1 or Q8_0 block nearly exactly, since
those are affine grids over the same 32 columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK_SIZE = 32


@dataclass(frozen=True)
class BlockQuantized:
    codes: np.ndarray  # uint8 [N, K / BLOCK_SIZE, BLOCK_SIZE * bits / 8]
    scales: np.ndarray  # float32 [N, K / BLOCK_SIZE]
    zero_points: np.ndarray  # uint8 [N, K / BLOCK_SIZE] (8 bits) or [N, ceil(K / BLOCK_SIZE / 2)] (4 bits, packed)
    bits: int

    @property
    def shape(self) -> tuple[int, int]:
        rows, blocks = self.scales.shape
        return rows, blocks * BLOCK_SIZE

    def dequantize(self) -> np.ndarray:
        """The float32 matrix [N, K] these blocks stand for (what ``MatMulNBits`` multiplies by)."""
        codes = _unpack(self.codes, self.bits).astype(np.float32)
        zero = _unpack(self.zero_points, self.bits)[:, : self.scales.shape[1]].astype(np.float32)
        return ((codes - zero[..., None]) * self.scales[..., None]).reshape(self.shape)


def can_quantize(matrix: np.ndarray) -> bool:
    return matrix.ndim == 2 and matrix.shape[1] % BLOCK_SIZE == 0


def quantize_blockwise(matrix: np.ndarray, bits: int) -> BlockQuantized:
    """``matrix`` [N, K] (K a multiple of 32) as ``bits``-bit blocks (4 or 8) with min-max scales."""
    if bits not in (4, 8):
        raise ValueError(f"MatMulNBits blocks of {bits} bits are not written here (4 or 8)")
    rows, columns = matrix.shape
    blocks = matrix.astype(np.float32).reshape(rows, columns // BLOCK_SIZE, BLOCK_SIZE)
    # The grid spans each block's range and includes 0, so a block of zeros stays zeros.
    low, high = np.minimum(blocks.min(-1), 0.0), np.maximum(blocks.max(-1), 0.0)
    top = 2**bits - 1
    scales = (high - low) / top
    scales[scales == 0] = 1.0
    zero = np.clip(np.round(-low / scales), 0, top)
    codes = np.clip(np.round(blocks / scales[..., None]) + zero[..., None], 0, top).astype(np.uint8)
    return BlockQuantized(
        codes=_pack(codes, bits),
        scales=scales.astype(np.float32),
        zero_points=_pack(zero.astype(np.uint8), bits),
        bits=bits,
    )


def _pack(values: np.ndarray, bits: int) -> np.ndarray:
    """Codes along the last axis, two to a byte for 4 bits (the even position in the low nibble)."""
    if bits == 8:
        return values
    if values.shape[-1] % 2:
        values = np.concatenate([values, np.zeros((*values.shape[:-1], 1), np.uint8)], axis=-1)
    return (values[..., 0::2] | (values[..., 1::2] << 4)).astype(np.uint8)


def _unpack(packed: np.ndarray, bits: int) -> np.ndarray:
    if bits == 8:
        return packed
    return np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(*packed.shape[:-1], packed.shape[-1] * 2)
