"""The reads a search makes, on PostgreSQL: the same named reads as ``memory.store.search_reads.SearchView``.

The retrieval layer ranks and fuses what these methods return and never writes SQL; the two
engines answer each read alike, so one ranking serves both (tests/test_postgres_search_view.py
holds them side by side on one cube).

The keyword signal is BM25, as FTS5 computes it (k1 = 1.2, b = 0.75, idf
``log((N - df + 0.5) / (df + 0.5))``), over the memories' ``tsvector`` (the ``english``
configuration, a Snowball stemmer where FTS5 uses Porter's): PostgreSQL's own ``ts_rank`` is
not BM25 and ranks a long note that repeats a word above a short one that means it. A word's
document frequency comes from the GIN index (or, for the column's most common words,
PostgreSQL's own statistics) and is kept ``DF_TTL_S`` seconds per cube; the memories scored
are those holding a rare word, and a bounded number of those holding common ones
(``PostgresSearchView._candidates``), in one statement.

Every value is bound; only fixed fragments (column lists, the status condition) are formatted.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import numpy as np
import psycopg

from memory.models import SearchQuery
from memory.store.contract import FtsTable
from memory.store.postgres.change_log import newest_change
from memory.store.postgres.vectors import searchable_statuses
from memory.store.rows import content_hash
from memory.store.threads import STANDALONE_TYPES

KeyT = TypeVar("KeyT")
ValueT = TypeVar("ValueT")
K1 = 1.2
B = 0.75
DF_TTL_S = 60.0  # a word's count of memories moves slowly: recounting it each search costs more than it tells
MIN_IDF = 1e-6  # FTS5's floor for a word most memories hold
CANDIDATES_PER_WORD = 400  # see PostgresSearchView._candidates
STATISTICS_TTL_S = 600.0  # PostgreSQL's column statistics change at ANALYZE (autovacuum), not per write
PAIRS = 10  # pairs of common words looked for together, commonest last
COMMON_PER_RESULT = 4  # memories of common words scored per result asked for
MAX_KEPT_TERMS = 100_000
# A word's lexemes under the english configuration, which no write changes: asked once per process.
_LEXEMES: dict[str, tuple[str, ...]] = {}


class _Kept(Generic[KeyT, ValueT]):
    """Values counted now and then, each good for ``DF_TTL_S`` seconds; shared by every view of
    the process (the counts are the database's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[KeyT, tuple[float, ValueT]] = {}  # key -> (counted at, value)

    def get(self, key: KeyT) -> ValueT | None:
        with self._lock:
            found = self._values.get(key)
        return found[1] if found is not None and time.monotonic() - found[0] < DF_TTL_S else None

    def keep(self, key: KeyT, value: ValueT) -> None:
        with self._lock:
            self._values[key] = (time.monotonic(), value)


# (cube, table, lexeme) -> (the cube's newest change when counted, memories holding it)
DOCUMENT_FREQUENCIES: _Kept[tuple[int, str, str], tuple[int, int]] = _Kept()
AVERAGE_LENGTHS: _Kept[tuple[int, str], float] = _Kept()  # (cube, table) -> mean distinct words
CONTEXT_DOCUMENTS: _Kept[int, int] = _Kept()  # cube -> memories with a context window


class _CommonWords:
    """PostgreSQL's statistics of a full-text column: its most common lexemes and the share of rows holding each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shares: dict[str, tuple[float, dict[str, float]]] = {}  # table -> (read at, lexeme -> share)

    def share(self, conn: psycopg.Connection[Any], table: str, lexeme: str) -> float | None:
        with self._lock:
            found = self._shares.get(table)
        if found is None or time.monotonic() - found[0] >= STATISTICS_TTL_S:
            row = conn.execute(
                "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
                "WHERE schemaname = current_schema() AND tablename = %s AND attname = 'search'",
                (table,),
            ).fetchone()
            # most_common_elem_freqs has three more entries than there are elements (min, max, nulls).
            shares = dict(zip(row[0], row[1], strict=False)) if row and row[0] else {}
            found = (time.monotonic(), {str(k): float(v) for k, v in shares.items()})
            with self._lock:
                self._shares[table] = found
        return found[1].get(lexeme)


COMMON_WORDS = _CommonWords()


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


class PostgresSearchView:
    """Named reads over one cube of the store, for one search (``conn``: autocommit, this view's alone)."""

    def __init__(self, conn: psycopg.Connection[Any], cube_id: int) -> None:
        self._conn = conn
        self.cube_id = cube_id
        self._high: int | None = None  # the cube's change log as this view first read it
        self._live: int | None = None  # the cube's memories that are not deleted, as this view first counted them

    def _log_high(self) -> int:
        if self._high is None:
            self._high = newest_change(self._conn, self.cube_id)
        return self._high

    def _searchable(self, q: SearchQuery) -> tuple[str, list[object]]:
        clauses, params = _filter_sql(q)
        return " AND ".join(["m.cube = %s", "m.status = ANY(%s)", *clauses]), [
            self.cube_id,
            searchable_statuses(q.include_archived),
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
            (self.cube_id, searchable_statuses(include_archived)),
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
        """The stemmed lexemes of ``terms`` (the ``english`` configuration; its stop words give none), sorted."""
        unknown = [t for t in dict.fromkeys(terms) if t not in _LEXEMES]
        if unknown:
            found: dict[str, list[str]] = {t: [] for t in unknown}
            for term, lexeme in self._conn.execute(
                "SELECT t.term, v.lexeme FROM unnest(%s::text[]) AS t(term), "
                "LATERAL unnest(to_tsvector('english'::regconfig, t.term)) AS v(lexeme, positions, weights)",
                (unknown,),
            ).fetchall():
                found[str(term)].append(str(lexeme))
            if len(_LEXEMES) > MAX_KEPT_TERMS:
                _LEXEMES.clear()
            _LEXEMES.update((term, tuple(lexemes)) for term, lexemes in found.items())
        return sorted({lexeme for term in terms for lexeme in _LEXEMES[term]})

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
        df: dict[str, int] = {}
        idf = self._idf(table, lexemes, df)
        avg = self._average_length(table)
        source = "m.search" if table == "memory_fts" else "x.search"
        join = "" if table == "memory_fts" else "JOIN memory_context x ON x.row_id = m.row_id "
        candidates, candidate_params = self._candidates(source, join, where, params, lexemes, df, k)
        leans = "m.thread IS NOT NULL AND NOT (m.type = ANY(%s))"
        rows = self._conn.execute(
            # Each candidate's tf per query lexeme and its length in tokens, from its tsvector, in
            # one pass over it (a scalar subquery per row: no join and grouping of every candidate).
            f"SELECT m.row_id, {leans}, (SELECT sum((%s::float8[])[array_position(%s::text[], v.lexeme)] * v.tf * %s "
            f"/ (v.tf + %s * (1 - %s + %s * d.len / %s))) "
            f"FROM (SELECT lexeme, coalesce(cardinality(positions), 1) AS tf FROM unnest({source}) WHERE lexeme = ANY(%s)) v) AS score "
            f"FROM memories m {join}"
            f"CROSS JOIN LATERAL (SELECT length({source}) AS len) d "
            f"WHERE m.cube = %s AND m.row_id IN ({candidates}) "
            "ORDER BY score DESC, m.row_id LIMIT %s",
            [
                list(STANDALONE_TYPES),
                [idf[x] for x in lexemes],
                lexemes,
                K1 + 1,
                K1,
                B,
                B,
                avg,
                lexemes,
                self.cube_id,
                *candidate_params,
                k,
            ],
        ).fetchall()
        return [(int(row_id), float(score), bool(leaning)) for row_id, leaning, score in rows]

    def _candidates(
        self, source: str, join: str, where: str, params: list[object], lexemes: list[str], df: dict[str, int], k: int
    ) -> tuple[str, list[object]]:
        """The statement that picks the memories BM25 scores, and its values.

        Every memory holding a word that at most ``CANDIDATES_PER_WORD`` memories hold; of the
        commoner words, up to ``COMMON_PER_RESULT * k`` memories holding all of them, as many
        holding two, and (when no word of the query is rare) as many holding the rarest. A word
        that a tenth of a large cube holds would otherwise have BM25 score every one of those
        memories for a top ``k`` that its rarer words, or its pairs, decide (the idea of MaxScore
        pruning, kept simple). A cube of a few thousand memories never reaches the bounds, and
        there every memory holding any word is scored, as FTS5 does.
        """
        rare = [x for x in lexemes if df[x] <= CANDIDATES_PER_WORD]
        common = sorted((x for x in lexemes if df[x] > CANDIDATES_PER_WORD), key=lambda x: df[x])
        base = f"SELECT m.row_id FROM memories m {join}WHERE {where} AND {source} @@ %s::tsquery"
        parts: list[str] = []
        values: list[object] = []
        bound = COMMON_PER_RESULT * k

        def add(query: str, limit: int | None) -> None:
            parts.append(base if limit is None else f"({base} LIMIT %s)")
            values.extend([*params, query] + ([] if limit is None else [limit]))

        if rare:
            add(" | ".join(_quoted_lexeme(x) for x in rare), None)
        if len(common) > 2:
            add(" & ".join(_quoted_lexeme(x) for x in common), bound)
        pairs = [(a, b) for i, a in enumerate(common) for b in common[i + 1 :]][:PAIRS]
        if pairs:
            add(" | ".join(f"({_quoted_lexeme(a)} & {_quoted_lexeme(b)})" for a, b in pairs), bound)
        if common and not rare:
            add(_quoted_lexeme(common[0]), bound)
        return " UNION ".join(parts), values

    def _idf(self, table: FtsTable, lexemes: Sequence[str], counted: dict[str, int]) -> dict[str, float]:
        """FTS5's idf of each lexeme over the cube's memories (deleted ones hold no tsvector); ``counted`` gets each df."""
        total = self._document_count(table)
        found: dict[str, float] = {}
        for lexeme in lexemes:
            df = counted[lexeme] = self._frequency(table, lexeme, total)
            # The two counts are kept for a while each (``_Kept``): memories added since one was
            # counted (by any server) can make a word seem to be in more memories than there are.
            documents = max(total, df)
            found[lexeme] = max(MIN_IDF, math.log((documents - df + 0.5) / (df + 0.5)))
        return found

    def _frequency(self, table: FtsTable, lexeme: str, total: int) -> int:
        """How many of the cube's documents hold ``lexeme``: kept ``DF_TTL_S`` seconds once counted.

        A word among the table's most common (PostgreSQL's own statistics of the column) is
        estimated from its share there, which costs nothing: counting the memories of a word
        that a tenth of a million-memory cube holds takes tens of milliseconds, and for such a
        word the idf barely moves with the exact figure. Rarer words are counted, through the index.
        """
        key = (self.cube_id, table, lexeme)
        kept = DOCUMENT_FREQUENCIES.get(key)
        # A count of none holds only until the cube changes: a word just written is held at once
        # (the relevance floor reads that).
        if kept is not None and (kept[1] > 0 or kept[0] == self._log_high()):
            return kept[1]
        share = COMMON_WORDS.share(self._conn, "memories" if table == "memory_fts" else "memory_context", lexeme)
        estimate = round(share * total) if share is not None else 0
        df = estimate if estimate > CANDIDATES_PER_WORD else self._count(table, lexeme)
        DOCUMENT_FREQUENCIES.keep(key, (self._log_high(), df))
        return df

    def _count(self, table: FtsTable, lexeme: str) -> int:
        if table == "memory_fts":
            statement = "SELECT count(*) FROM memories WHERE cube = %s AND search @@ %s::tsquery"
        else:
            statement = "SELECT count(*) FROM memory_context WHERE cube = %s AND search @@ %s::tsquery"
        with self._conn.transaction():
            # A word's memories come from the GIN index. The planner reads a parameter's tsquery
            # without statistics for it and may scan every row instead: 120 ms at 100,000
            # memories for a word none holds, against 1 ms through the index.
            self._conn.execute("SET LOCAL enable_seqscan = off")
            row = self._conn.execute(statement, (self.cube_id, _quoted_lexeme(lexeme))).fetchone()
        return int(row[0]) if row else 0

    def document_frequency(self, lexeme: str) -> int:
        """How many of the cube's memories hold this lexeme."""
        return self._frequency("memory_fts", lexeme, self._document_count("memory_fts"))

    def _document_count(self, table: FtsTable) -> int:
        if table == "memory_fts":  # every memory that is not deleted (active or archived) has a tsvector
            if self._live is None:
                self._live = max(1, self.searchable_count(include_archived=True))
            return self._live
        found = CONTEXT_DOCUMENTS.get(self.cube_id)
        if found is None:
            row = self._conn.execute("SELECT count(*) FROM memory_context WHERE cube = %s", (self.cube_id,)).fetchone()
            found = max(1, int(row[0]) if row else 0)
            CONTEXT_DOCUMENTS.keep(self.cube_id, found)
        return found

    def _average_length(self, table: FtsTable) -> float:
        key = (self.cube_id, table)
        found = AVERAGE_LENGTHS.get(key)
        if found is not None:
            return found
        # The mean over up to 10,000 documents: a sample tells the mean as well as a count of millions.
        source = "memories WHERE cube = %s AND search IS NOT NULL" if table == "memory_fts" else "memory_context WHERE cube = %s"
        row = self._conn.execute(
            f"SELECT avg(length(search)) AS len FROM (SELECT search FROM {source} LIMIT 10000) s",
            (self.cube_id,),
        ).fetchone()
        value = float(row[0]) if row and row[0] else 1.0
        AVERAGE_LENGTHS.keep(key, value)
        return value

    def unheld_words(self, words: Sequence[str]) -> list[str]:
        """Which of ``words`` no memory of the cube holds in its text, tags or entity names.

        From the document frequencies the keyword stage counts anyway (kept ``DF_TTL_S`` seconds).
        """
        unheld = []
        for word in words:
            lexemes = self.lexemes([word])
            # A stop word of the english configuration has no lexeme: no memory "holds" it here.
            if not any(self.document_frequency(lexeme) for lexeme in lexemes):
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
