"""The reads a search makes, in one snapshot of the cube: filters, BM25, entity links, exact text.

``CubeStore.search_view()`` opens a read transaction and hands out a ``SearchView``; the
retrieval layer ranks and fuses what these methods return and never writes SQL itself.
Every statement binds its values; only fixed fragments (status, table names from a closed
set) are formatted into the text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

import numpy as np

from memory.models import SearchQuery
from memory.store.contract import FtsTable
from memory.store.filter_sql import time_range
from memory.store.rows import content_hash
from memory.store.threads import STANDALONE_TYPES
from memory.store.vector_mirror import VectorMirror

# Whether a match's context window stands in for its own text (see ``keyword_candidates``);
# binds the STANDALONE_TYPES, in order.
_LEANS = f"m.thread IS NOT NULL AND m.type NOT IN ({', '.join('?' * len(STANDALONE_TYPES))})"


# Past this many keys at one level (a query naming many known entities), one read for all of
# them: each key's read repeats the query's parameters.
ONE_READ_PER_KEY_UP_TO = 16


def _filter_sql(q: SearchQuery) -> tuple[list[str], list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if q.types:
        clauses.append(f"m.type IN ({','.join('?' * len(q.types))})")
        params.extend(t.strip().lower() for t in q.types)
    if q.tags:
        clauses.append(f"EXISTS (SELECT 1 FROM json_each(m.tags) WHERE value IN ({','.join('?' * len(q.tags))}))")
        params.extend(q.tags)
    # A time window matches when a memory happened in it, or (tasks) falls due in it.
    for fragments, values in (
        time_range("coalesce(m.occurred_at, m.due_at)", q.since, q.until, names=("since", "until")),
        time_range("m.due_at", q.due_after, q.due_before, names=("due_after", "due_before")),
    ):
        clauses.extend(fragments)
        params.extend(values)
    if q.states:
        clauses.append(f"m.state IN ({','.join('?' * len(q.states))})")
        params.extend(q.states)
    if q.parents:
        clauses.append(f"m.parent_id IN ({','.join('?' * len(q.parents))})")
        params.extend(q.parents)
    return clauses, params


def _status_sql(q: SearchQuery) -> str:
    return "m.status IN ('active', 'archived')" if q.include_archived else "m.status = 'active'"


def _searchable_sql(q: SearchQuery) -> tuple[str, list[object]]:
    """The condition on ``memories m`` that makes a memory searchable for ``q`` (status and filters), and its values."""
    clauses, params = _filter_sql(q)
    return " AND ".join([_status_sql(q), *clauses]), params


def fts5_any(terms: Sequence[str]) -> str:
    """An FTS5 query matching any of ``terms``, each quoted (so no FTS syntax gets through)."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def _bm25(table: FtsTable) -> str:
    """FTS5's BM25 of ``table``; on the memories' own index the tags and entity names weigh half the text."""
    return "bm25(memory_fts, 1.0, 0.5, 0.5)" if table == "memory_fts" else f"bm25({table})"


class SearchView:
    """Named reads over one consistent snapshot of a cube, for one search."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def filtered_row_ids(self, q: SearchQuery) -> np.ndarray | None:
        """Row ids passing the query's filters, or None when there are no filters."""
        clauses, params = _filter_sql(q)
        if not clauses:
            return None
        rows = self._conn.execute(f"SELECT row_id FROM memories m WHERE {' AND '.join(clauses)}", params).fetchall()
        return np.array(sorted(r[0] for r in rows), dtype=np.int64)

    def keyword_candidates(
        self, q: SearchQuery, terms: Sequence[str], k: int, *, table: FtsTable = "memory_fts", few: bool = False
    ) -> list[tuple[int, float, bool]]:
        """BM25 matches of any of ``terms`` in ``memory_fts`` (own text) or ``memory_context_fts`` (windows).

        Each match is ``(row_id, score, leans)``, best first, the score higher-is-better;
        ``leans``: the memory leans on its thread, so its context window stands in for its own
        text in the context signal (it is in a thread, and its type does not stand alone:
        ``threads.STANDALONE_TYPES``).
        ``few``: the query's filters keep few memories (a time window of a large cube), so the
        best matches of the whole index would mostly fail them: rank only those that pass.
        """
        if table not in ("memory_fts", "memory_context_fts"):
            raise ValueError(f"not a full-text table: {table!r}")
        match = fts5_any(terms)
        if few:
            return self._filtered_keyword_candidates(q, match, k, table=table)
        where, params = _searchable_sql(q)
        # Ranking the index alone and then checking status and filters on the best few is twice
        # as fast as joining ``memories`` for every match of a common word. The rows come back
        # as one JSON array: a single step, not one (and a GIL hand-over) per row.
        fetch = k * 2
        total, found = self._conn.execute(
            f"SELECT count(*), json_group_array(json_array(f.rowid, f.score, {_LEANS})) "
            "FILTER (WHERE m.row_id IS NOT NULL) "
            f"FROM (SELECT rowid, {_bm25(table)} AS score FROM {table} WHERE {table} MATCH ? ORDER BY score LIMIT ?) f "
            f"LEFT JOIN memories m ON m.row_id = f.rowid AND {where}",
            [*STANDALONE_TYPES, match, fetch, *params],
        ).fetchone()
        rows = sorted(json.loads(found), key=lambda row: (row[1], row[0]))
        if len(rows) < k and total == fetch:
            # Filters dropped too many of the best: rank only the memories that pass them.
            return self._filtered_keyword_candidates(q, match, k, table=table)
        # FTS5's bm25() is "lower is better" (negative); flip it so every signal reads higher-is-better.
        return [(rid, -score, bool(leans)) for rid, score, leans in rows[:k]]

    def _filtered_keyword_candidates(
        self, q: SearchQuery, match: str, k: int, *, table: FtsTable
    ) -> list[tuple[int, float, bool]]:
        """Rank only the memories that pass the query's status and filters (a join for every match)."""
        where, params = _searchable_sql(q)
        rows = self._conn.execute(
            f"SELECT f.rowid, {_bm25(table)} AS score, {_LEANS} FROM {table} f "
            f"JOIN memories m ON m.row_id = f.rowid WHERE {table} MATCH ? AND {where} ORDER BY score, f.rowid LIMIT ?",
            [*STANDALONE_TYPES, match, *params, k],
        ).fetchall()
        return [(rid, -score, bool(leans)) for rid, score, leans in rows]

    def entity_counts(self, q: SearchQuery, keys: Sequence[str]) -> tuple[dict[str, int], int]:
        """How many searchable memories each of these entity keys links to (keys with none left out), and how many are searchable."""
        counts = self._unfiltered_entity_counts(q, keys) if not _filter_sql(q)[0] else None
        if counts is None:
            where, params = _searchable_sql(q)
            # CROSS JOIN keeps SQLite on the entity index (a few rows) instead of scanning every live memory.
            rows = self._conn.execute(
                "SELECT e.norm, count(*) FROM memory_entities e CROSS JOIN memories m ON m.row_id = e.memory_rowid "
                f"WHERE e.norm IN ({','.join('?' * len(keys))}) AND {where} GROUP BY e.norm",
                [*keys, *params],
            ).fetchall()
            counts = {norm: int(count) for norm, count in rows}
        if not counts:
            return {}, 0
        return counts, self.searchable_count(q.include_archived)

    def _unfiltered_entity_counts(self, q: SearchQuery, keys: Sequence[str]) -> dict[str, int] | None:
        """The same counts from the entity index alone, when that is cheaper; None when it is not.

        Only live memories have entity rows (see ``CubeStore.entity_keys``), so the rows of
        a key count its active and archived memories without reading one, much cheaper than
        joining each memory for its status (measured by ``bench/foundation.py --memories 100000``,
        bench/RESULTS.md, "A cube of 100,000 memories"). A search
        of active memories then takes the archived ones' rows off, which costs a look at each
        archived memory: done when there are fewer of them than rows to count.
        """
        marks = ",".join("?" * len(keys))
        linked = dict(
            self._conn.execute(
                f"SELECT norm, count(*) FROM memory_entities WHERE norm IN ({marks}) GROUP BY norm", list(keys)
            ).fetchall()
        )
        if q.include_archived or not linked:
            return linked
        rows = sum(linked.values())
        archived = self._kept_count(("archived",))
        if archived > rows:
            return None
        if archived:
            for norm, count in self._conn.execute(
                "SELECT e.norm, count(*) FROM memories m CROSS JOIN memory_entities e ON e.memory_rowid = m.row_id "
                f"WHERE m.status = 'archived' AND e.norm IN ({marks}) GROUP BY e.norm",
                list(keys),
            ).fetchall():
                linked[norm] -= count
        return {norm: count for norm, count in linked.items() if count > 0}

    def entity_first_rows(self, q: SearchQuery, keys: Sequence[str], k: int, *, exclude: Sequence[int] = ()) -> list[int]:
        """The ``k`` searchable memories with the lowest row ids linked to any of these entity keys, less ``exclude``."""
        if k <= 0 or not keys:
            return []
        where, params = _searchable_sql(q)
        left_out = f"AND e.memory_rowid NOT IN ({','.join('?' * len(exclude))}) " if exclude else ""
        join = "FROM memory_entities e CROSS JOIN memories m ON m.row_id = e.memory_rowid"
        if len(keys) > ONE_READ_PER_KEY_UP_TO:
            rows = self._conn.execute(
                f"SELECT DISTINCT e.memory_rowid {join} "
                f"WHERE e.norm IN ({','.join('?' * len(keys))}) {left_out}AND {where} ORDER BY e.memory_rowid LIMIT ?",
                [*keys, *exclude, *params, k],
            ).fetchall()
            return [r[0] for r in rows]
        # The index gives each key's memories in row order, so each read stops after the first k
        # that pass; the first k of all keys are among those, without collecting and sorting every
        # one of them (measured by bench/foundation.py --memories 100000, bench/RESULTS.md).
        one_key = (
            f"SELECT * FROM (SELECT e.memory_rowid AS row_id {join} "
            f"WHERE e.norm = ? {left_out}AND {where} ORDER BY e.memory_rowid LIMIT ?)"
        )
        rows = self._conn.execute(
            " UNION ".join([one_key] * len(keys)) + " ORDER BY row_id LIMIT ?",
            [*(arg for key in keys for arg in (key, *exclude, *params, k)), k],
        ).fetchall()
        return [r[0] for r in rows]

    def links(self, q: SearchQuery, keys: Sequence[str], row_ids: Sequence[int]) -> list[tuple[int, str, bool]]:
        """``(row_id, key, said)`` for each link between these memories and these entity keys;
        ``said``: the entity said it (the text opens with its name and a colon)."""
        if not keys or not row_ids:
            return []
        where, params = _searchable_sql(q)
        found: list[tuple[int, str, bool]] = []
        for start in range(0, len(row_ids), 500):
            chunk = list(row_ids[start : start + 500])
            found += [
                (row_id, key, bool(said))
                for row_id, key, said in self._conn.execute(
                    "SELECT e.memory_rowid, e.norm, substr(m.text, 1, length(e.name) + 1) = e.name || ':' "
                    "FROM memory_entities e CROSS JOIN memories m ON m.row_id = e.memory_rowid "
                    f"WHERE e.norm IN ({','.join('?' * len(keys))}) AND e.memory_rowid IN ({','.join('?' * len(chunk))}) "
                    f"AND {where}",
                    [*keys, *chunk, *params],
                )
            ]
        return sorted(found, key=lambda row: (row[1], row[0]))

    def searchable_count(self, include_archived: bool) -> int:
        """How many memories a search can return (active, or live)."""
        return self._kept_count(("active", "archived") if include_archived else ("active",))

    def _kept_count(self, statuses: tuple[str, ...]) -> int:
        """How many memories have one of these statuses, from the counts triggers keep (schema v10)."""
        return int(
            self._conn.execute(
                f"SELECT coalesce(sum(n), 0) FROM memory_status_counts WHERE status IN ({','.join('?' * len(statuses))})",
                statuses,
            ).fetchone()[0]
        )

    def exact_matches(self, q: SearchQuery) -> list[int]:
        """Searchable memories whose text is exactly the query."""
        clauses, params = _filter_sql(q)
        # "status != 'deleted'" lets SQLite use the partial unique index on live content hashes.
        where = " AND ".join(["m.status != 'deleted'", _status_sql(q), "m.content_hash = ?", *clauses])
        return [
            r[0] for r in self._conn.execute(f"SELECT m.row_id FROM memories m WHERE {where}", [content_hash(q.query), *params])
        ]

    def unheld_words(self, words: Sequence[str]) -> list[str]:
        """Which of ``words`` no memory of the cube holds in its text, tags or entity names (each word
        matched as the keyword signals match it, one FTS5 term; the first match ends each read)."""
        return [
            word
            for word in words
            if self._conn.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM memory_fts WHERE memory_fts MATCH ?)", [fts5_any([word])]
            ).fetchone()[0]
        ]

    def known_entities(self, keys: list[str]) -> list[str]:
        """Which of these normalised entity keys some memory of the cube names."""
        if not keys:
            return []
        placeholders = ",".join("?" * len(keys))
        return [
            r[0] for r in self._conn.execute(f"SELECT DISTINCT norm FROM memory_entities WHERE norm IN ({placeholders})", keys)
        ]

    def sync(self, mirror: VectorMirror) -> None:
        """Bring the in-RAM vectors up to this snapshot."""
        mirror.sync(self._conn)
