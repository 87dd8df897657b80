"""Nearest-neighbour search over a cube's vectors.

The vectors live in SQLite, in the sqlite-vec table ``memory_vec`` (the durable copy,
written in the same transaction as the memory). Searching them there is a brute-force
scan several times slower than a float32 matrix in RAM (``bench/foundation.py`` times
both; figures in ``bench/RESULTS.md``). So each
process keeps ``VectorMirror``, a matrix loaded from ``memory_vec`` and brought up to
date before every search from the cube's change sequence: every write stamps the rows
it touches with the next ``change_seq``, so catching up reads only what changed, even
when another process wrote it. ``sqlite_vec_knn`` runs the same query inside SQLite; the
tests hold the two to the same answers and the benchmark reports both.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from memory import fork_join as parallel


@dataclass(frozen=True)
class Cosines:
    """A query's cosines with the mirror's vectors, as they were when computed."""

    row_ids: np.ndarray  # the searchable memories (status and filters applied)
    scores: np.ndarray  # their cosines, aligned with row_ids
    _every: np.ndarray  # cosines of every row of the mirror, by position
    _position: dict[int, int]  # row id -> position; later appends only add keys past len(_every)

    def top(self, k: int) -> list[tuple[int, float]]:
        """The ``k`` most similar searchable memories as ``(row_id, cosine)``, best first."""
        k = min(k, len(self.scores))
        if k <= 0:
            return []
        top = np.argpartition(-self.scores, k - 1)[:k] if k < len(self.scores) else np.arange(len(self.scores))
        top = top[np.argsort(-self.scores[top], kind="stable")]
        return [(int(self.row_ids[i]), float(self.scores[i])) for i in top]

    def of(self, row_ids: Iterable[int]) -> dict[int, float]:
        """Cosine of each given memory that had a vector (no second pass over the vectors)."""
        found = {}
        for row_id in row_ids:
            position = self._position.get(row_id)
            if position is not None and position < len(self._every):
                found[row_id] = float(self._every[position])
        return found


_blas_limited = False


def one_blas_thread() -> None:
    """Run numpy's BLAS on one thread in this process, unless OPENBLAS_NUM_THREADS says otherwise.

    OpenBLAS starts a thread per core whose idle spinning starves the other half of a
    search (SQLite and the vector scan run side by side); a matrix-vector product over the
    mirror needs no second BLAS thread, and the scan splits itself over two threads
    (``_times``). Done once, when the first mirror is made, not at import.
    """
    global _blas_limited
    if _blas_limited or "OPENBLAS_NUM_THREADS" in os.environ:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    _blas_limited = True


class VectorMirror:
    """Unit vectors of the live (active and archived) memories of one cube, in RAM."""

    def __init__(self) -> None:
        one_blas_thread()
        self._lock = threading.Lock()
        self._seq = -1
        self._epoch: str | None = None
        self._row_ids = np.zeros(0, dtype=np.int64)
        self._active = np.zeros(0, dtype=bool)
        self._matrix: np.ndarray | None = None  # the first len(_row_ids) rows of _buffer
        self._buffer: np.ndarray | None = None
        self._position: dict[int, int] = {}

    def sync(self, conn: sqlite3.Connection) -> None:
        """Catch up with every committed change, from this process or another."""
        meta = dict(conn.execute("SELECT key, value FROM cube_meta WHERE key IN ('change_seq', 'vector_epoch')").fetchall())
        seq, epoch = int(meta["change_seq"]), meta["vector_epoch"]
        with self._lock:
            if epoch != self._epoch:
                self._reload(conn)
            elif seq != self._seq:
                self._apply_changes(conn, since=self._seq)
            self._seq, self._epoch = seq, epoch

    def _reload(self, conn: sqlite3.Connection) -> None:
        self._row_ids = np.zeros(0, dtype=np.int64)
        self._active = np.zeros(0, dtype=bool)
        self._matrix = self._buffer = None
        self._position = {}
        if _has_vec_table(conn):
            # Sized once: growing by half again while 100,000 rows arrive would hold two copies at a time.
            self._reserve(int(conn.execute("SELECT count(*) FROM memory_vec").fetchone()[0]), conn)
        self._apply_changes(conn, since=-1)

    def _reserve(self, rows: int, conn: sqlite3.Connection) -> None:
        blob = conn.execute("SELECT embedding FROM memory_vec LIMIT 1").fetchone()
        if blob is None or rows <= 0:
            return
        self._buffer = np.empty((rows, len(blob[0]) // 4), dtype=np.float32)
        self._matrix = self._buffer[:0]

    def _apply_changes(self, conn: sqlite3.Connection, since: int) -> None:
        if not _has_vec_table(conn):
            return
        cursor = conn.execute(
            "SELECT m.row_id, m.status, v.embedding FROM memories m LEFT JOIN memory_vec v ON v.rowid = m.row_id WHERE m.seq > ?",
            (since,),
        )
        removed: set[int] = set()
        # Read in slices: a whole cube's vectors as Python bytes would be a second copy of the matrix.
        while rows := cursor.fetchmany(MIRROR_READ_ROWS):
            fresh_ids: list[int] = []
            fresh_vecs: list[np.ndarray] = []
            fresh_active: list[bool] = []
            for row_id, status, blob in rows:
                if status == "deleted" or blob is None:
                    removed.add(row_id)
                    continue
                vector = np.frombuffer(blob, dtype=np.float32)
                position = self._position.get(row_id)
                if position is not None and self._matrix is not None and self._matrix.shape[1] == vector.shape[0]:
                    self._matrix[position] = vector
                    self._active[position] = status == "active"
                else:
                    fresh_ids.append(row_id)
                    fresh_vecs.append(vector)
                    fresh_active.append(status == "active")
            if fresh_ids:
                self._append(fresh_ids, np.vstack(fresh_vecs).astype(np.float32), fresh_active)
        if removed:
            keep = np.array([rid not in removed for rid in self._row_ids.tolist()], dtype=bool)
            self._row_ids = self._row_ids[keep]
            self._active = self._active[keep]
            if self._matrix is not None:
                self._matrix = self._buffer = self._matrix[keep]
            self._position = {int(rid): i for i, rid in enumerate(self._row_ids.tolist())}

    def _append(self, row_ids: list[int], block: np.ndarray, active: list[bool]) -> None:
        # Rows go into spare capacity: one add copies one row, not the whole matrix.
        used = len(self._row_ids)
        if used and self._matrix is not None and self._matrix.shape[1] != block.shape[1]:
            raise ValueError(f"vectors of {block.shape[1]} dimensions cannot join a cube of {self._matrix.shape[1]}")
        if self._buffer is None or self._buffer.shape[1] != block.shape[1] or used + len(block) > len(self._buffer):
            grown = np.empty((max(used + len(block), used * 3 // 2, 64), block.shape[1]), dtype=np.float32)
            if used and self._matrix is not None:
                grown[:used] = self._matrix
            self._buffer = grown
        self._buffer[used : used + len(block)] = block
        self._matrix = self._buffer[: used + len(block)]
        self._row_ids = np.concatenate([self._row_ids, np.array(row_ids, dtype=np.int64)])
        self._active = np.concatenate([self._active, np.array(active, dtype=bool)])
        self._position.update((rid, used + i) for i, rid in enumerate(row_ids))

    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        include_archived: bool = False,
        allowed: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` most similar memories as ``(row_id, cosine)``, best first.

        ``allowed`` (sorted row ids) restricts the search to rows passing other filters.
        """
        return self.cosines(query, include_archived=include_archived, allowed=allowed).top(k)

    def cosines(self, query: np.ndarray, *, include_archived: bool = False, allowed: np.ndarray | None = None) -> Cosines:
        """Cosines of ``query`` with every searchable memory (for score statistics and top-k)."""
        with self._lock:
            if self._matrix is None or len(self._row_ids) == 0:
                return Cosines(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32), {})
            scores = _times(self._matrix, query.astype(np.float32))
            mask = np.ones(len(scores), dtype=bool) if include_archived else self._active.copy()
            if allowed is not None:
                mask &= np.isin(self._row_ids, allowed, assume_unique=True)
            return Cosines(self._row_ids[mask], scores[mask], scores, self._position)

    def close_active(self, queries: np.ndarray, threshold: float) -> list[dict[int, float]]:
        """For each row of ``queries``, the active memories with a cosine of at least ``threshold``: ``{row_id: cosine}``.

        One matrix product for the whole batch, in blocks of rows (bounded scratch memory, and
        the blocks split over two threads like a search's scan).
        """
        found: list[dict[int, float]] = [{} for _ in range(len(queries))]
        with self._lock:
            if self._matrix is None or not len(self._row_ids):
                return found
            matrix, active, row_ids = self._matrix, self._active, self._row_ids
            block_rows = max(SPLIT_ROWS, len(matrix) // 2 + 1)
            starts = list(range(0, len(matrix), block_rows))
            targets = np.ascontiguousarray(queries.astype(np.float32).T)

            def close_in(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                scores = matrix[start : start + block_rows] @ targets
                rows, columns = np.nonzero((scores >= threshold) & active[start : start + block_rows, None])
                return rows + start, columns, scores[rows, columns]

            later = [parallel.soon(functools.partial(close_in, start)) for start in starts[1:]]
            parts = [close_in(starts[0]), *(f.result() for f in later)]
        for positions, columns, scores in parts:
            for position, column, score in zip(positions.tolist(), columns.tolist(), scores.tolist(), strict=True):
                found[column][int(row_ids[position])] = float(score)
        return found

    def __len__(self) -> int:
        return len(self._row_ids)


SPLIT_ROWS = 4096
MIRROR_READ_ROWS = 4096  # rows read from SQLite at a time when the mirror catches up


def _times(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``matrix @ vector``, its two halves on two threads once the matrix is big enough to pay for the hand-over.

    The product is bound by memory bandwidth, and numpy's BLAS is kept to one thread
    (``one_blas_thread``), so two threads on two halves is what makes it use both cores.
    """
    if len(matrix) < SPLIT_ROWS:
        return matrix @ vector
    half = len(matrix) // 2
    upper = parallel.soon(lambda: matrix[half:] @ vector)
    out = np.empty(len(matrix), dtype=np.float32)
    np.matmul(matrix[:half], vector, out=out[:half])
    out[half:] = upper.result()
    return out


def _has_vec_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'memory_vec'").fetchone() is not None


def sqlite_vec_knn(
    conn: sqlite3.Connection, query: np.ndarray, k: int, *, include_archived: bool = False
) -> list[tuple[int, float]]:
    """The same search as ``VectorMirror.search``, answered by sqlite-vec inside SQLite."""
    if not _has_vec_table(conn):
        return []
    statuses = ("active", "archived") if include_archived else ("active",)
    # KNN over every stored vector, then drop rows of other statuses: ask for more than k.
    fetch = k * 4 + 16
    rows = conn.execute(
        "SELECT v.rowid, v.distance, m.status FROM memory_vec v JOIN memories m ON m.row_id = v.rowid "
        "WHERE v.embedding MATCH ? AND v.k = ? ORDER BY v.distance",
        (query.astype(np.float32).tobytes(), fetch),
    ).fetchall()
    return [(int(rid), 1.0 - float(dist)) for rid, dist, status in rows if status in statuses][:k]
