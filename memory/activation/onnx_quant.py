"""Block-quantized weights for ONNX Runtime's ``MatMulNBits`` (com.microsoft domain).

A matrix [N, K] (Hugging Face layout: output rows, input columns) is cut into blocks of 32
along K; each block keeps 4- or 8-bit codes c, a scale and an offset, and stands for
``scale * c + offset``: the affine blocks MLX quantizes to and llama.cpp's Q4_0, Q4_1 and
Q8_0 blocks are (``mx.load`` returns those as they are, so they arrive here exactly).

``MatMulNBits`` multiplies by ``scale * (c - zero)`` with an integer zero point; an offset
that is not a whole number of steps (Q4_1's minimum) does not fit it. So the product is
taken in two parts: ``MatMulNBits`` with the default zero point (2^(bits-1)), plus the sum of
each block of the input times the block's remainder ``offset + zero * scale``, a product 32
times smaller. Stored: the codes [N, K / 32, 32 * bits / 8] bytes (two 4-bit codes a byte,
the lower column in the low nibble, as MLX packs them), scales [N * K / 32] and remainders
[K / 32, N], float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK_SIZE = 32


@dataclass(frozen=True)
class BlockQuantized:
    codes: np.ndarray  # uint8 [N, K / BLOCK_SIZE, BLOCK_SIZE * bits / 8]
    scales: np.ndarray  # float32 [N, K / BLOCK_SIZE]
    offsets: np.ndarray  # float32 [N, K / BLOCK_SIZE]
    bits: int

    @property
    def shape(self) -> tuple[int, int]:
        rows, blocks = self.scales.shape
        return rows, blocks * BLOCK_SIZE

    @property
    def remainders(self) -> np.ndarray:
        """What ``MatMulNBits`` (default zero point) leaves out of each block: offset + zero * scale."""
        return (self.offsets + 2 ** (self.bits - 1) * self.scales).astype(np.float32)

    def dequantize(self) -> np.ndarray:
        """The float32 matrix [N, K] these blocks stand for."""
        codes = unpack(self.codes, self.bits).astype(np.float32)
        return (codes * self.scales[..., None] + self.offsets[..., None]).reshape(self.shape)


def can_quantize(matrix: np.ndarray) -> bool:
    return matrix.ndim == 2 and matrix.shape[1] % BLOCK_SIZE == 0


def from_mlx(packed: np.ndarray, scales: np.ndarray, biases: np.ndarray) -> BlockQuantized:
    """An MLX quantized triple (group size 32: uint32 words of codes, scales, biases) as these blocks."""
    rows, words = packed.shape
    blocks = scales.shape[1]
    bits = words * 32 // (blocks * BLOCK_SIZE)
    codes = np.ascontiguousarray(packed).view(np.uint8).reshape(rows, blocks, BLOCK_SIZE * bits // 8)
    return BlockQuantized(codes=codes, scales=scales.astype(np.float32), offsets=biases.astype(np.float32), bits=bits)


def quantize_blockwise(matrix: np.ndarray, bits: int) -> BlockQuantized:
    """``matrix`` [N, K] (K a multiple of 32) as ``bits``-bit blocks (4 or 8) spanning each block's range."""
    if bits not in (4, 8):
        raise ValueError(f"MatMulNBits blocks of {bits} bits are not written here (4 or 8)")
    rows, columns = matrix.shape
    blocks = matrix.astype(np.float32).reshape(rows, columns // BLOCK_SIZE, BLOCK_SIZE)
    low, high = blocks.min(-1), blocks.max(-1)
    scales = (high - low) / (2**bits - 1)
    scales[scales == 0] = 1.0
    codes = np.clip(np.round((blocks - low[..., None]) / scales[..., None]), 0, 2**bits - 1).astype(np.uint8)
    return BlockQuantized(codes=pack(codes, bits), scales=scales.astype(np.float32), offsets=low.astype(np.float32), bits=bits)


def pack(values: np.ndarray, bits: int) -> np.ndarray:
    """Codes along the last axis, two to a byte for 4 bits (the even position in the low nibble)."""
    if bits == 8:
        return values
    return (values[..., 0::2] | (values[..., 1::2] << 4)).astype(np.uint8)


def unpack(packed: np.ndarray, bits: int) -> np.ndarray:
    if bits == 8:
        return packed
    return np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(*packed.shape[:-1], packed.shape[-1] * 2)
