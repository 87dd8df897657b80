"""The reads a search makes, on PostgreSQL: the same named reads as ``memory.store.search_reads.SearchView``.

The retrieval layer ranks and fuses what these methods return and never writes SQL; the two
engines answer each read alike, so one ranking serves both (tests/test_postgres_search_view.py
holds them side by side on one cube).

The keyword signal is BM25, as FTS5 computes it (k1 = 1.2, b = 0.75, idf
``log((N - df + 0.5) / (df + 0.5))``), over the memories' ``tsvector`` (the ``english``
configuration, a Snowball stemmer where FTS5 uses Porter's): PostgreSQL's own ``ts_rank`` is
not BM25 and ranks a long note that repeats a word above a short one that means it. A word's
document frequency comes from the GIN index, counted once and kept for ``DF_TTL_S`` seconds
per cube; the candidates are the memories holding any of the words, scored in one statement.

Every value is bound; only fixed fragments (column lists, the status condition) are formatted.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg

from memory.models import SearchQuery
from memory.store.contract import FtsTable
from memory.store.rows import content_hash
from memory.store.threads import STANDALONE_TYPES

K1 = 1.2
B = 0.75
DF_TTL_S = 60.0  # a word's count of memories moves slowly: recounting it each search costs more than it tells
MIN_IDF = 1e-6  # FTS5's floor for a word most memories hold


class _Frequencies:
    """Per cube: each lexeme's document frequency and the mean document length, counted now and then."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._df: dict[tuple[int, str, str], tuple[float, int]] = {}  # (cube, table, lexeme) -> (counted at, df)
        self._avg: dict[tuple[int, str], tuple[float, float]] = {}

    def df(self, key: tuple[int, str, str]) -> int | None:
        with self._lock:
            found = self._df.get(key)
        return found[1] if found and time.monotonic() - found[0] < DF_TTL_S else None

    def keep_df(self, key: tuple[int, str, str], value: int) -> None:
        with self._lock:
            self._df[key] = (time.monotonic(), value)

    def avg(self, key: tuple[int, str]) -> float | None:
        with self._lock:
            found = self._avg.get(key)
        return found[1] if found and time.monotonic() - found[0] < DF_TTL_S else None

    def keep_avg(self, key: tuple[int, str], value: float) -> None:
        with self._lock:
            self._avg[key] = (time.monotonic(), value)


FREQUENCIES = _Frequencies()  # shared by every view of the process: the counts are the database's


def _filter_sql(q: SearchQuery) -> tuple[list[str], list[object]]:
    from memory.store.filter_sql import time_range

    clauses: list[str] = []
    params: list[object] = []
    if q.types:
        clauses.append("m.type = ANY(%s)")
        params.append([t.strip().lower() for t in q.types])
    if q.tags:
        clauses.append("m.tags ?| %s")
        params.append(list(q.tags))
    for fragments, values in (
        time_range("coalesce(m.occurred_at, m.due_at)", q.since, q.until, names=("since", "until")),
        time_range("m.due_at", q.due_after, q.due_before, names=("due_after", "due_before")),
    ):
        clauses.extend(fragment.replace("?", "%s") for fragment in fragments)
        params.extend(values)
    if q.states:
        clauses.append("m.state = ANY(%s)")
        params.append(list(q.states))
    if q.parents:
        clauses.append("m.parent_id = ANY(%s)")
        params.append(list(q.parents))
    return clauses, params


def _statuses(include_archived: bool) -> list[str]:
    return ["active", "archived"] if include_archived else ["active"]


class PostgresSearchView:
    """Named reads over one cube of the store, for one search (``conn``: autocommit, this view's alone)."""

    def __init__(self, conn: psycopg.Connection[Any], cube_id: int) -> None:
        self._conn = conn
        self.cube_id = cube_id

    def _searchable(self, q: SearchQuery) -> tuple[str, list[object]]:
        clauses, params = _filter_sql(q)
        return " AND ".join(["m.cube = %s", "m.status = ANY(%s)", *clauses]), [
            self.cube_id,
            _statuses(q.include_archived),
            *params,
        ]

    def filtered_row_ids(self, q: SearchQuery) -> np.ndarray | None:
        """Row ids passing the query's filters, or None when there are no filters."""
        clauses, params = _filter_sql(q)
        if not clauses:
            return None
        rows = self._conn.execute(
            f"SELECT m.row_id FROM memories m WHERE m.cube = %s AND {' AND '.join(clauses)}", [self.cube_id, *params]
        ).fetchall()
        return np.array(sorted(r[0] for r in rows), dtype=np.int64)

    def searchable_count(self, include_archived: bool) -> int:
        row = self._conn.execute(
            "SELECT coalesce(sum(n), 0) FROM memory_status_counts WHERE cube = %s AND status = ANY(%s)",
            (self.cube_id, _statuses(include_archived)),
        ).fetchone()
        return int(row[0]) if row else 0

    def exact_matches(self, q: SearchQuery) -> list[int]:
        """Searchable memories whose text is exactly the query."""
        where, params = self._searchable(q)
        rows = self._conn.execute(
            f"SELECT m.row_id FROM memories m WHERE m.status <> 'deleted' AND m.content_hash = %s AND {where}",
            [content_hash(q.query), *params],
        ).fetchall()
        return [int(r[0]) for r in rows]

    def sync(self, vectors: object) -> None:
        """Nothing to bring up to date: the database's vector index is the one every server reads."""

    # -- the keyword signals ---------------------------------------------------------------

    def lexemes(self, terms: Sequence[str]) -> list[str]:
        """The stemmed lexemes of ``terms`` (the ``english`` configuration; its stop words give none)."""
        if not terms:
            return []
        rows = self._conn.execute(
            "SELECT DISTINCT lexeme FROM unnest(%s::text[]) AS t(term), "
            "LATERAL unnest(to_tsvector('english'::regconfig, t.term)) AS v(lexeme, positions, weights) ORDER BY lexeme",
            (list(terms),),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def keyword_candidates(
        self, q: SearchQuery, terms: Sequence[str], k: int, *, table: FtsTable = "memory_fts", few: bool = False
    ) -> list[tuple[int, float, bool]]:
        """BM25 matches of any of ``terms``: ``(row_id, score, leans)``, best first (as ``SearchView``'s).

        ``table``: "memory_fts" ranks the memories' own text, tags and entity names;
        "memory_context_fts" their context windows. ``few`` changes nothing here: the
        statement already ranks only the memories that pass the filters.
        """
        if table not in ("memory_fts", "memory_context_fts"):
            raise ValueError(f"not a full-text table: {table!r}")
        lexemes = self.lexemes(terms)
        if not lexemes:
            return []
        where, params = self._searchable(q)
        idf = self._idf(table, lexemes)
        avg = self._average_length(table)
        source = "m.search" if table == "memory_fts" else "x.search"
        join = "" if table == "memory_fts" else "JOIN memory_context x ON x.row_id = m.row_id "
        leans = "m.thread IS NOT NULL AND NOT (m.type = ANY(%s))"
        rows = self._conn.execute(
            # Each candidate's tf per query lexeme and its length in tokens, from its tsvector.
            f"SELECT m.row_id, {leans}, sum(w.idf * v.tf * %s / (v.tf + %s * (1 - %s + %s * d.len / %s))) AS score "
            f"FROM memories m {join}"
            f"CROSS JOIN LATERAL (SELECT sum(coalesce(array_length(positions, 1), 1)) AS len FROM unnest({source})) d "
            f"CROSS JOIN LATERAL (SELECT lexeme, coalesce(array_length(positions, 1), 1) AS tf FROM unnest({source})) v "
            "JOIN unnest(%s::text[], %s::float8[]) AS w(lexeme, idf) ON w.lexeme = v.lexeme "
            f"WHERE {source} @@ %s::tsquery AND {where} "
            "GROUP BY m.row_id, m.thread, m.type ORDER BY score DESC, m.row_id LIMIT %s",
            [
                list(STANDALONE_TYPES),
                K1 + 1,
                K1,
                B,
                B,
                avg,
                lexemes,
                [idf[x] for x in lexemes],
                " | ".join(_quoted_lexeme(x) for x in lexemes),
                *params,
                k,
            ],
        ).fetchall()
        return [(int(row_id), float(score), bool(leaning)) for row_id, leaning, score in rows]

    def _idf(self, table: FtsTable, lexemes: Sequence[str]) -> dict[str, float]:
        """FTS5's idf of each lexeme over the cube's memories (deleted ones hold no tsvector)."""
        total = self._document_count(table)
        found: dict[str, float] = {}
        for lexeme in lexemes:
            key = (self.cube_id, table, lexeme)
            df = FREQUENCIES.df(key)
            if df is None:
                df = self._df(table, lexeme)
                FREQUENCIES.keep_df(key, df)
            found[lexeme] = max(MIN_IDF, math.log((total - df + 0.5) / (df + 0.5)))
        return found

    def _df(self, table: FtsTable, lexeme: str) -> int:
        if table == "memory_fts":
            statement = "SELECT count(*) FROM memories WHERE cube = %s AND search @@ %s::tsquery"
        else:
            statement = "SELECT count(*) FROM memory_context WHERE cube = %s AND search @@ %s::tsquery"
        row = self._conn.execute(statement, (self.cube_id, _quoted_lexeme(lexeme))).fetchone()
        return int(row[0]) if row else 0

    def _document_count(self, table: FtsTable) -> int:
        if table == "memory_fts":  # every memory that is not deleted has a tsvector
            row = self._conn.execute(
                "SELECT coalesce(sum(n), 0) FROM memory_status_counts WHERE cube = %s AND status <> 'deleted'", (self.cube_id,)
            ).fetchone()
        else:
            row = self._conn.execute("SELECT count(*) FROM memory_context WHERE cube = %s", (self.cube_id,)).fetchone()
        return max(1, int(row[0]) if row else 0)

    def _average_length(self, table: FtsTable) -> float:
        key = (self.cube_id, table)
        found = FREQUENCIES.avg(key)
        if found is not None:
            return found
        # The mean over up to 10,000 documents: a sample tells the mean as well as a count of millions.
        source = "memories WHERE cube = %s AND search IS NOT NULL" if table == "memory_fts" else "memory_context WHERE cube = %s"
        row = self._conn.execute(
            "SELECT avg(len) FROM (SELECT (SELECT sum(coalesce(array_length(positions, 1), 1)) FROM unnest(search)) AS len "
            f"FROM {source} LIMIT 10000) s",
            (self.cube_id,),
        ).fetchone()
        value = float(row[0]) if row and row[0] else 1.0
        FREQUENCIES.keep_avg(key, value)
        return value

    def unheld_words(self, words: Sequence[str]) -> list[str]:
        """Which of ``words`` no memory of the cube holds in its text, tags or entity names."""
        unheld = []
        for word in words:
            lexemes = self.lexemes([word])
            if not lexemes:
                unheld.append(word)  # a stop word of the english configuration: no memory "holds" it here
                continue
            row = self._conn.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM memories WHERE cube = %s AND search @@ %s::tsquery)",
                (self.cube_id, " | ".join(_quoted_lexeme(x) for x in lexemes)),
            ).fetchone()
            if row and row[0]:
                unheld.append(word)
        return unheld

    # -- the entity signal -------------------------------------------------------------------

    def known_entities(self, keys: list[str]) -> list[str]:
        """Which of these normalised entity keys some memory of the cube names."""
        if not keys:
            return []
        rows = self._conn.execute(
            "SELECT DISTINCT norm FROM memory_entities WHERE cube = %s AND norm = ANY(%s)", (self.cube_id, list(keys))
        ).fetchall()
        return [str(r[0]) for r in rows]

    def entity_counts(self, q: SearchQuery, keys: Sequence[str]) -> tuple[dict[str, int], int]:
        """How many searchable memories each of these entity keys links to (keys with none left out), and how many are searchable."""
        if not keys:
            return {}, 0
        where, params = self._searchable(q)
        rows = self._conn.execute(
            "SELECT e.norm, count(*) FROM memory_entities e JOIN memories m ON m.row_id = e.memory_row_id "
            f"WHERE e.cube = %s AND e.norm = ANY(%s) AND {where} GROUP BY e.norm",
            [self.cube_id, list(keys), *params],
        ).fetchall()
        counts = {str(norm): int(n) for norm, n in rows}
        if not counts:
            return {}, 0
        return counts, self.searchable_count(q.include_archived)

    def entity_first_rows(self, q: SearchQuery, keys: Sequence[str], k: int, *, exclude: Sequence[int] = ()) -> list[int]:
        """The ``k`` searchable memories with the lowest row ids linked to any of these entity keys, less ``exclude``."""
        if k <= 0 or not keys:
            return []
        where, params = self._searchable(q)
        rows = self._conn.execute(
            "SELECT DISTINCT e.memory_row_id FROM memory_entities e JOIN memories m ON m.row_id = e.memory_row_id "
            f"WHERE e.cube = %s AND e.norm = ANY(%s) AND NOT (e.memory_row_id = ANY(%s)) AND {where} "
            "ORDER BY e.memory_row_id LIMIT %s",
            [self.cube_id, list(keys), list(exclude), *params, k],
        ).fetchall()
        return [int(r[0]) for r in rows]

    def links(self, q: SearchQuery, keys: Sequence[str], row_ids: Sequence[int]) -> list[tuple[int, str, bool]]:
        """``(row_id, key, said)`` for each link between these memories and these entity keys;
        ``said``: the entity said it (the text opens with its name and a colon)."""
        if not keys or not row_ids:
            return []
        where, params = self._searchable(q)
        rows = self._conn.execute(
            "SELECT e.memory_row_id, e.norm, left(m.text, length(e.name) + 1) = e.name || ':' "
            "FROM memory_entities e JOIN memories m ON m.row_id = e.memory_row_id "
            f"WHERE e.cube = %s AND e.norm = ANY(%s) AND e.memory_row_id = ANY(%s) AND {where}",
            [self.cube_id, list(keys), list(row_ids), *params],
        ).fetchall()
        return sorted(((int(r), str(n), bool(s)) for r, n, s in rows), key=lambda row: (row[1], row[0]))


def _quoted_lexeme(lexeme: str) -> str:
    """A lexeme as a ``to_tsquery`` operand: quoted, so no operator in it is read as one."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"
