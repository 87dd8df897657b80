"""Nearest-neighbour search over a cube's vectors.

The vectors live in SQLite, in the sqlite-vec table ``memory_vec`` (the durable copy,
written in the same transaction as the memory). Searching them there is a brute-force
scan that costs about 7 ms at 10,000 memories on a 2-core laptop, half the whole search
budget; a float32 matrix in RAM answers the same question in under 1 ms. So each
process keeps ``VectorMirror``, a matrix loaded from ``memory_vec`` and brought up to
date before every search from the cube's change sequence: every write stamps the rows
it touches with the next ``change_seq``, so catching up reads only what changed, even
when another process wrote it. ``sqlite_vec_knn`` runs the same query inside SQLite; the
tests hold the two to the same answers and the benchmark reports both.
"""

from __future__ import annotations

import sqlite3
import threading

import numpy as np


class VectorMirror:
    """Unit vectors of the live (active and archived) memories of one cube, in RAM."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = -1
        self._epoch: str | None = None
        self._row_ids = np.zeros(0, dtype=np.int64)
        self._active = np.zeros(0, dtype=bool)
        self._matrix: np.ndarray | None = None
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
        self._matrix = None
        self._position = {}
        self._apply_changes(conn, since=-1)

    def _apply_changes(self, conn: sqlite3.Connection, since: int) -> None:
        if not _has_vec_table(conn):
            return
        rows = conn.execute(
            "SELECT m.row_id, m.status, v.embedding FROM memories m "
            "LEFT JOIN memory_vec v ON v.rowid = m.row_id WHERE m.seq > ?",
            (since,),
        ).fetchall()
        if not rows:
            return
        removed: set[int] = set()
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
        if removed:
            keep = np.array([rid not in removed for rid in self._row_ids.tolist()], dtype=bool)
            self._row_ids = self._row_ids[keep]
            self._active = self._active[keep]
            if self._matrix is not None:
                self._matrix = self._matrix[keep]
        if fresh_ids:
            block = np.vstack(fresh_vecs).astype(np.float32)
            self._matrix = block if self._matrix is None or len(self._matrix) == 0 else np.vstack([self._matrix, block])
            self._row_ids = np.concatenate([self._row_ids, np.array(fresh_ids, dtype=np.int64)])
            self._active = np.concatenate([self._active, np.array(fresh_active, dtype=bool)])
        self._position = {int(rid): i for i, rid in enumerate(self._row_ids.tolist())}

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
        with self._lock:
            if self._matrix is None or len(self._row_ids) == 0:
                return []
            scores = self._matrix @ query.astype(np.float32)
            mask = np.ones(len(scores), dtype=bool) if include_archived else self._active.copy()
            if allowed is not None:
                mask &= np.isin(self._row_ids, allowed, assume_unique=True)
            candidates = np.flatnonzero(mask)
            if len(candidates) == 0:
                return []
            row_ids = self._row_ids[candidates]
        scores = scores[candidates]
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(row_ids[i]), float(scores[i])) for i in top]

    def all_scores(
        self, query: np.ndarray, *, include_archived: bool = False, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row ids and cosines of every searchable memory, unordered (for score statistics and top-k)."""
        with self._lock:
            if self._matrix is None or len(self._row_ids) == 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            scores = self._matrix @ query.astype(np.float32)
            mask = np.ones(len(scores), dtype=bool) if include_archived else self._active.copy()
            if allowed is not None:
                mask &= np.isin(self._row_ids, allowed, assume_unique=True)
            return self._row_ids[mask], scores[mask]

    def similarity(self, query: np.ndarray, row_ids: list[int]) -> dict[int, float]:
        """Cosine of ``query`` with each given memory that has a vector."""
        with self._lock:
            if self._matrix is None:
                return {}
            positions = [(rid, self._position[rid]) for rid in row_ids if rid in self._position]
            if not positions:
                return {}
            block = self._matrix[[p for _, p in positions]]
        scores = block @ query.astype(np.float32)
        return {rid: float(s) for (rid, _), s in zip(positions, scores, strict=True)}

    def __len__(self) -> int:
        return len(self._row_ids)


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
