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

Past ``SEGMENT_ROWS`` rows the float scan is bound by memory bandwidth, so every full
segment of rows also gets an int8 copy (``memory.store.int8_scan``) that scores a query a
quarter of the bytes at a time; the rows whose first-pass score could be in the top k are
rescored from the float rows, and the mean and spread of the cosines come from sums kept
over the rows (``Moments``), so a search's answer is the float scan's. A removed memory's
row stays, dead, until a quarter of the rows are, so that deletions do not move the
segments' rows.
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
from memory.store.int8_scan import Int8Scan


@dataclass(frozen=True)
class Cosines:
    """A query's cosines with the mirror's vectors, as they were when computed.

    Below ``SEGMENT_ROWS`` rows every score is the exact cosine. Above, most scores come
    from the int8 first pass (``memory.store.int8_scan``) and each is within its ``errors``
    of the cosine; ``top`` and ``of`` then answer with exact cosines all the same.
    """

    row_ids: np.ndarray  # the searchable memories (status and filters applied)
    scores: np.ndarray  # their scores, aligned with row_ids: cosines, or first-pass scores within ``errors``
    _positions: np.ndarray  # each searchable memory's row in the matrix, aligned with row_ids
    _matrix: np.ndarray  # the float rows as they were; later appends are past its end
    _query: np.ndarray
    _position: dict[int, int]  # row id -> row in the matrix
    mean: float = 0.0  # the exact mean and standard deviation of the searchable memories' cosines
    std: float = 0.0
    errors: np.ndarray | None = None  # how far each score may be from its cosine, aligned with row_ids; None: exact

    def top(self, k: int) -> list[tuple[int, float]]:
        """The ``k`` most similar searchable memories as ``(row_id, cosine)``, best first."""
        k = min(k, len(self.scores))
        if k <= 0:
            return []
        if self.errors is not None:
            # At least k cosines reach the k-th best of the scores less their errors, so a row
            # whose score plus its error falls short of that is not in the top k: rescore the
            # others exactly, then rank.
            lowest = self.scores - self.errors
            kth = np.partition(lowest, len(lowest) - k)[len(lowest) - k]
            candidates = np.flatnonzero(self.scores + self.errors >= kth)
            exact = self._matrix[self._positions[candidates]] @ self._query
            best = np.argpartition(-exact, k - 1)[:k] if k < len(exact) else np.arange(len(exact))
            best = best[np.argsort(-exact[best], kind="stable")]
            return [(int(self.row_ids[candidates[i]]), float(exact[i])) for i in best]
        top = np.argpartition(-self.scores, k - 1)[:k] if k < len(self.scores) else np.arange(len(self.scores))
        top = top[np.argsort(-self.scores[top], kind="stable")]
        return [(int(self.row_ids[i]), float(self.scores[i])) for i in top]

    def of(self, row_ids: Iterable[int]) -> dict[int, float]:
        """Exact cosine of each given memory that had a vector when these cosines were computed."""
        wanted = [(row_id, self._position.get(row_id)) for row_id in row_ids]
        found = [(row_id, position) for row_id, position in wanted if position is not None and position < len(self._matrix)]
        if not found:
            return {}
        exact = self._matrix[[position for _, position in found]] @ self._query
        return {row_id: float(score) for (row_id, _), score in zip(found, exact.tolist(), strict=True)}


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
        self._live = np.zeros(0, dtype=bool)  # False for a removed memory's row, until the matrix is compacted
        self._matrix: np.ndarray | None = None  # the first len(_row_ids) rows of _buffer
        self._buffer: np.ndarray | None = None
        self._position: dict[int, int] = {}
        self._segments: list[Int8Scan] = []  # int8 first pass over rows [0, len(_segments) * SEGMENT_ROWS)
        self._rewritten: set[int] = set()  # rows of those segments whose vector changed since: scored exactly
        self._moments: Moments | None = None  # sums over the live rows, kept while there are segments

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
        self._live = np.zeros(0, dtype=bool)
        self._matrix = self._buffer = None
        self._position = {}
        self._segments, self._rewritten, self._moments = [], set(), None
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
                    if position < len(self._segments) * SEGMENT_ROWS and not np.array_equal(self._matrix[position], vector):
                        self._rewritten.add(position)
                    if self._moments is not None:
                        self._moments.add(self._matrix[position : position + 1], self._active[position : position + 1], sign=-1)
                        self._moments.add(vector[None, :], np.array([status == "active"]))
                    self._matrix[position] = vector
                    self._active[position] = status == "active"
                else:
                    fresh_ids.append(row_id)
                    fresh_vecs.append(vector)
                    fresh_active.append(status == "active")
            if fresh_ids:
                self._append(fresh_ids, np.vstack(fresh_vecs).astype(np.float32), fresh_active)
        if removed:
            self._remove(removed)

    def _remove(self, removed: set[int]) -> None:
        """Take removed memories out of the searchable rows; compact the matrix once enough are gone.

        Compacting moves rows, which invalidates the int8 segments (rebuilt one per search
        after), so rows are only marked dead until a quarter of the matrix is.
        """
        for row_id in removed:
            position = self._position.pop(row_id, None)
            if position is not None:
                if self._moments is not None and self._matrix is not None:
                    self._moments.add(self._matrix[position : position + 1], self._active[position : position + 1], sign=-1)
                self._live[position] = self._active[position] = False
        dead = len(self._live) - int(self._live.sum())
        if dead and (not self._segments or dead > len(self._live) // 4):
            keep = self._live
            self._row_ids = self._row_ids[keep]
            self._active = self._active[keep]
            self._live = self._live[keep]
            if self._matrix is not None:
                self._matrix = self._buffer = self._matrix[keep]
            self._position = {int(rid): i for i, rid in enumerate(self._row_ids.tolist())}
            self._segments, self._rewritten, self._moments = [], set(), None

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
        if self._moments is not None:
            self._moments.add(block, np.array(active, dtype=bool))
        self._matrix = self._buffer[: used + len(block)]
        self._row_ids = np.concatenate([self._row_ids, np.array(row_ids, dtype=np.int64)])
        self._active = np.concatenate([self._active, np.array(active, dtype=bool)])
        self._live = np.concatenate([self._live, np.ones(len(row_ids), dtype=bool)])
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
        """Scores of ``query`` with every searchable memory (for score statistics), and its exact top k."""
        query = query.astype(np.float32)
        with self._lock:
            if self._matrix is None or not len(self._row_ids):
                nothing = np.zeros(0, dtype=np.int64)
                return Cosines(nothing, np.zeros(0, dtype=np.float32), nothing, np.zeros((0, len(query)), np.float32), query, {})
            searchable = self._live if include_archived else self._active
            mask = searchable.copy()
            if allowed is not None:
                mask &= np.isin(self._row_ids, allowed, assume_unique=True)
            positions = np.flatnonzero(mask)
            self._seal_a_segment()
            if not self._segments or allowed is not None:
                # Exact scan: a small cube, or a filtered search, which scores its own rows alone
                # when they are few (a time window of a large cube).
                few = allowed is not None and len(positions) * FEW_ROWS_FRACTION < len(self._matrix)
                every = None if few else _times(self._matrix, query)
                scores = self._matrix[positions] @ query if every is None else every[positions]
                mean, std = self._population_spread(
                    query, scores, searchable, every, include_archived, filtered=allowed is not None
                )
                return Cosines(self._row_ids[positions], scores, positions, self._matrix, query, self._position, mean, std)
            first_pass, errors = self._first_pass(query)
            mean, std = self._moments_now().spread(query, include_archived=include_archived)
            return Cosines(
                self._row_ids[positions],
                first_pass[positions],
                positions,
                self._matrix,
                query,
                self._position,
                mean,
                std,
                errors[positions],
            )

    def _population_spread(
        self,
        query: np.ndarray,
        scores: np.ndarray,
        searchable: np.ndarray,
        every: np.ndarray | None,
        include_archived: bool,
        *,
        filtered: bool,
    ) -> tuple[float, float]:
        """The mean and standard deviation of the query's cosines over every searchable memory.

        A filter only narrows which memories may come back: the scale stays the whole cube's.
        Over the few rows of a narrow filter (a day's time window holds two memories) a z-score
        would make a 0.01 cosine difference two standard deviations.
        """
        if not filtered:
            return (float(scores.mean()), float(scores.std())) if len(scores) else (0.0, 0.0)
        if self._segments:
            return self._moments_now().spread(query, include_archived=include_archived)
        assert self._matrix is not None
        population = (every if every is not None else _times(self._matrix, query))[np.flatnonzero(searchable)]
        return (float(population.mean()), float(population.std())) if len(population) else (0.0, 0.0)

    def _moments_now(self) -> Moments:
        if self._moments is None:
            assert self._matrix is not None
            self._moments = Moments(self._matrix.shape[1])
            for start in range(0, len(self._matrix), MIRROR_READ_ROWS):  # slices: no second copy of the matrix
                live = self._live[start : start + MIRROR_READ_ROWS]
                self._moments.add(
                    self._matrix[start : start + MIRROR_READ_ROWS][live], self._active[start : start + MIRROR_READ_ROWS][live]
                )
        return self._moments

    def _first_pass(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every row's score, through the int8 segments, and how far each may be from its cosine."""
        assert self._matrix is not None
        sealed = len(self._segments) * SEGMENT_ROWS
        scores = np.empty(len(self._matrix), dtype=np.float32)
        errors = np.zeros(len(self._matrix), dtype=np.float64)  # rows past the segments are scored exactly
        for i, segment in enumerate(self._segments):
            scores[i * SEGMENT_ROWS : (i + 1) * SEGMENT_ROWS] = segment.scores(query)
            errors[i * SEGMENT_ROWS : (i + 1) * SEGMENT_ROWS] = segment.bounds(query)
        scores[sealed:] = self._matrix[sealed:] @ query
        if self._rewritten:
            rewritten = np.fromiter(self._rewritten, dtype=np.int64)
            scores[rewritten] = self._matrix[rewritten] @ query
            errors[rewritten] = 0.0
        return scores, errors

    def _seal_a_segment(self) -> None:
        """Give the next ``SEGMENT_ROWS`` rows an int8 first pass once they are all there.

        One segment per call (about 0.3 s for 16,384 rows): a cube opened at 100,000
        memories spreads the work over its first searches, which scan the rest in float.
        """
        assert self._matrix is not None
        sealed = len(self._segments) * SEGMENT_ROWS
        if len(self._matrix) - sealed >= SEGMENT_ROWS:
            self._segments.append(Int8Scan(self._matrix[sealed : sealed + SEGMENT_ROWS]))

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
        """How many memories have a vector here."""
        return len(self._position)


class Moments:
    """Sums over the live rows, by status, from which a query's mean and spread of cosines follow exactly.

    The int8 first pass shifts every score of a query alike (its rounding of the query is
    shared by all rows), so statistics of the first-pass scores would not be those of the
    cosines. With s the sum of the rows and G the sum of their outer products, the mean
    cosine is s.q / n and the mean square q.G.q / n: no pass over the rows.
    """

    def __init__(self, dim: int) -> None:
        self.count = {True: 0, False: 0}  # keyed by "active"; False holds the archived rows
        self.sum = {True: np.zeros(dim), False: np.zeros(dim)}
        self.gram = {True: np.zeros((dim, dim)), False: np.zeros((dim, dim))}

    def add(self, rows: np.ndarray, active: np.ndarray, *, sign: int = 1) -> None:
        """Count ``rows`` in (``sign=-1``: out). Callers pass at most ``MIRROR_READ_ROWS`` rows at a time."""
        for status in (True, False):
            chosen = rows[active == status]
            self.count[status] += sign * len(chosen)
            self.sum[status] += sign * chosen.sum(axis=0, dtype=np.float64)
            self.gram[status] += sign * (chosen.T @ chosen).astype(np.float64)

    def spread(self, query: np.ndarray, *, include_archived: bool) -> tuple[float, float]:
        statuses = (True, False) if include_archived else (True,)
        count = sum(self.count[s] for s in statuses)
        if not count:
            return 0.0, 0.0
        q = query.astype(np.float64)
        mean = sum(float(self.sum[s] @ q) for s in statuses) / count
        square = sum(float(q @ self.gram[s] @ q) for s in statuses) / count
        return mean, max(square - mean * mean, 0.0) ** 0.5


SPLIT_ROWS = 4096
FEW_ROWS_FRACTION = 8  # a filter keeping under 1/8 of the rows: gathering them beats the whole scan
SEGMENT_ROWS = 16_384  # rows per int8 segment; a cube smaller than this is scanned in float alone
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
