"""An archive's vectors, looked up by memory id without holding them all in memory.

``vectors.jsonl`` lists ``{"id", "vector"}`` (base64 float32 little-endian) apart from
the memories, in any order. A 100,000-memory archive carries 150 MB of float32 (twice
that as base64 text), so the import decodes each vector once into an unnamed temporary
file and keeps only the offset of each id; the chunk being written reads its own.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from collections.abc import Collection, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

UNIT_TOLERANCE = 1e-3  # the model's vectors are normalised in float32: their length is 1 within about 1e-6


class VectorSpool:
    """Decoded vectors by memory id, kept in a temporary file (removed on close)."""

    def __init__(self, folder: Path | None = None, *, ids: Collection[str] | None = None, dim: int | None = None) -> None:
        # In ``folder`` (the home) rather than /tmp, which is memory on many systems.
        self._file = tempfile.TemporaryFile(prefix="memcube-vectors-", dir=folder)  # noqa: SIM115 - closed by close()
        self._where: dict[str, tuple[int, int]] = {}
        self._end = 0
        self._ids = ids
        self._dim = dim

    @classmethod
    def of(
        cls,
        records: Iterable[dict[str, Any]],
        folder: Path | None = None,
        *,
        ids: Collection[str] | None = None,
        dim: int | None = None,
    ) -> VectorSpool:
        """Spool every well-formed ``{"id": str, "vector": base64}`` record; the last one for an id wins.

        Given ``ids`` (the archive's memories) and ``dim`` (this model's width), only vectors
        that can be used are kept, one per id: what the spool holds is then bounded by the
        archive's memories, not by how many vector lines a small zip unpacks to (R1: 1 MB ids
        by the hundred held in memory, and one id's vector repeated, each written to disk).
        """
        spool = cls(folder, ids=ids, dim=dim)
        try:
            for record in records:
                memory_id, encoded = record.get("id"), record.get("vector")
                if isinstance(memory_id, str) and isinstance(encoded, str):
                    spool.put(memory_id, encoded)
        except BaseException:
            spool.close()
            raise
        return spool

    def put(self, memory_id: str, encoded: str) -> None:
        if self._ids is not None and memory_id not in self._ids:
            return  # no memory of the archive has it: of no use
        if self._dim is not None and len(encoded) != 4 * ((4 * self._dim + 2) // 3):
            return  # not this model's width (checked before decoding)
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return  # an unreadable vector is no vector: the memory is embedded instead
        if not raw or len(raw) % 4:
            return
        held = self._where.get(memory_id)
        if held is not None and held[1] == len(raw):  # a later line for the same id: in its place
            self._file.flush()
            os.pwrite(self._file.fileno(), raw, held[0])
            return
        self._file.write(raw)
        self._where[memory_id] = (self._end, len(raw))
        self._end += len(raw)

    def get(self, memory_id: str, dim: int) -> np.ndarray | None:
        """The vector of ``memory_id`` when the archive has a usable one: ``dim`` finite float32s of length 1.

        The embedder's vectors are unit vectors, and search reads a dot product as a cosine.
        Any other length is not a vector this model made: a crafted archive could plant a
        huge one to top every search, or a zero one. Such a memory is embedded instead.
        """
        where = self._where.get(memory_id)
        if where is None or where[1] != 4 * dim:
            return None
        self._file.flush()
        raw = os.pread(self._file.fileno(), where[1], where[0])
        vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if vector.shape != (dim,) or not bool(np.isfinite(vector).all()):
            return None
        return vector if abs(float(np.linalg.norm(vector.astype(np.float64))) - 1.0) <= UNIT_TOLERANCE else None

    def __len__(self) -> int:
        return len(self._where)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> VectorSpool:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
