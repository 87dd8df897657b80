"""The search's reads on PostgreSQL answer as SQLite's do (``memory.store.postgres.search_view``; issue 28).

One real cube (SQLite with sqlite-vec, the ONNX model, entities read from the texts) is copied
into a real PostgreSQL 18 (``memcube migrate``'s copy), and every read the ranking makes is
asked of both engines: filters, counts, exact text, entities and their links, the words no
memory holds, and BM25. Row ids differ between the engines, so answers are compared by memory id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from memory import MemoryHome, SearchQuery
from memory.retrieval.search import keyword_terms
from memory.store.postgres.cube_copy import copy_cube
from memory.store.postgres.search_view import PostgresSearchView

pytestmark = pytest.mark.postgres

TEXTS = [
    {"text": "Bob's daughter Carol studies medicine in Porto", "entities": ["Bob", "Carol"], "type": "fact"},
    {"text": "Carol: I passed the anatomy exam today", "session_id": "chat-1", "occurred_at": "2026-11-02T10:00:00Z"},
    {"text": "Bob: that is wonderful news, well done", "session_id": "chat-1", "occurred_at": "2026-11-02T10:01:00Z"},
    {"text": "Dana prefers green tea over coffee after lunch", "type": "preference"},
    {"text": "Renew the office lease before March", "type": "task", "state": "todo", "due_at": "2026-03-01"},
    {"text": "Book the dentist for Carol in January", "type": "task", "state": "done", "tags": ["health"]},
    {"text": "The team offsite is in Lisbon in the spring", "tags": ["work", "travel"]},
    {"text": "Marco cooks risotto with saffron on Sundays", "entities": ["Marco"]},
    {"text": "Our database migration moves every table to PostgreSQL", "tags": ["work"]},
    {"text": "Tea tea tea tea tea: a long note that repeats one word about tea many times over and over", "type": "note"},
    {"text": "Lena runs a marathon in Berlin in September", "occurred_at": "2026-09-27T08:00:00Z"},
    {"text": "Priya joins the team in January as a designer", "occurred_at": "2026-01-12T09:00:00Z"},
]
QUERIES = [
    "What does Carol study?",
    "tea or coffee",
    "office lease renewal",
    "risotto",
    "team offsite travel",
    "database migration PostgreSQL",
    "marathon Berlin",
    "zzyzx quuxly",
]


@pytest.fixture(scope="module")
def engines(
    tmp_path_factory, shared_embedder, postgres_url
) -> Iterator[tuple[Any, PostgresSearchView, dict[int, str], dict[int, str]]]:
    from postgres_support import fresh_database, migrated

    home = MemoryHome(tmp_path_factory.mktemp("search-view"), embedder=shared_embedder)
    cube = home.cube("team", create=True)
    added = cube.add(TEXTS, client="tests")
    cube.archive([added[6].id], client="tests")  # the offsite: archived
    cube.update(added[3].id, {"text": "Dana prefers jasmine tea over coffee after lunch"}, client="tests")
    with fresh_database(postgres_url) as url, migrated(url) as conn:
        copy_cube(cube.store, conn, "team")
        cube_id = conn.execute("SELECT id FROM cubes WHERE name = 'team'").fetchone()[0]
        with psycopg.connect(url, autocommit=True) as reads:
            pg_ids = dict(reads.execute("SELECT row_id, id FROM memories WHERE cube = %s", (cube_id,)).fetchall())
            sqlite_ids = {
                row_id: memory.id for memory in cube.get([o.id for o in added]) for row_id in cube.store.row_ids_of([memory.id])
            }
            with cube.store.search_view() as sqlite_view:
                yield sqlite_view, PostgresSearchView(reads, cube_id), sqlite_ids, pg_ids
    home.close()


def by_id(rows, ids: dict[int, str]) -> list[str]:
    return [ids[int(r)] for r in rows]


@pytest.mark.parametrize(
    "q",
    [
        SearchQuery(query="x"),
        SearchQuery(query="x", include_archived=True),
        SearchQuery(query="x", types=["task"]),
        SearchQuery(query="x", tags=["work"], include_archived=True),
        SearchQuery(query="x", since="2026-09-01", until="2026-12-31"),
        SearchQuery(query="x", due_before="2026-06-01"),
        SearchQuery(query="x", states=["done"]),
    ],
    ids=["none", "archived", "types", "tags", "window", "due", "states"],
)
def test_filters_and_counts_agree(engines, q: SearchQuery) -> None:
    sqlite_view, pg_view, sqlite_ids, pg_ids = engines
    mine, theirs = sqlite_view.filtered_row_ids(q), pg_view.filtered_row_ids(q)
    assert (mine is None) == (theirs is None)
    if mine is not None and theirs is not None:
        assert sorted(by_id(mine, sqlite_ids)) == sorted(by_id(theirs, pg_ids)) and len(theirs) > 0, q
    assert sqlite_view.searchable_count(q.include_archived) == pg_view.searchable_count(q.include_archived)


def test_exact_text_and_entities_agree(engines) -> None:
    sqlite_view, pg_view, sqlite_ids, pg_ids = engines
    exact = SearchQuery(query="Marco cooks risotto with saffron on Sundays")
    assert by_id(sqlite_view.exact_matches(exact), sqlite_ids) == by_id(pg_view.exact_matches(exact), pg_ids) != []
    keys = ["carol", "bob", "marco", "nobody", "dana"]
    transcript_lines = {
        memory_id
        for text in ("Carol: I passed the anatomy exam today", "Bob: that is wonderful news, well done")
        for memory_id in by_id(sqlite_view.exact_matches(SearchQuery(query=text)), sqlite_ids)
    }
    assert sorted(sqlite_view.known_entities(keys)) == sorted(pg_view.known_entities(keys))
    for q in (SearchQuery(query="x"), SearchQuery(query="x", types=["task"])):
        assert sqlite_view.entity_counts(q, keys) == pg_view.entity_counts(q, keys)
        mine = by_id(sqlite_view.entity_first_rows(q, keys, 50), sqlite_ids)
        theirs = by_id(pg_view.entity_first_rows(q, keys, 50), pg_ids)
        assert sorted(mine) == sorted(theirs) and mine
        sqlite_rows = [r for r in sqlite_ids if sqlite_ids[r] in mine]
        pg_rows = [r for r in pg_ids if pg_ids[r] in theirs]
        mine_links = sorted((sqlite_ids[r], k, s) for r, k, s in sqlite_view.links(q, keys, sqlite_rows))
        theirs_links = sorted((pg_ids[r], k, s) for r, k, s in pg_view.links(q, keys, pg_rows))
        assert mine_links == theirs_links and theirs_links
        if not q.types:  # "Carol: I passed ...": Carol said it, and Bob the line after
            assert {memory_id for memory_id, _, said in theirs_links if said} == transcript_lines


def test_the_words_no_memory_holds_agree(engines) -> None:
    sqlite_view, pg_view, _, _ = engines
    words = ["carol", "risotto", "zzyzx", "quuxly", "marathon", "saffron", "teapot"]
    assert sqlite_view.unheld_words(words) == pg_view.unheld_words(words) == ["zzyzx", "quuxly", "teapot"]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("table", ["memory_fts", "memory_context_fts"])
def test_bm25_finds_the_same_memories_and_the_same_best(engines, query: str, table: str) -> None:
    sqlite_view, pg_view, sqlite_ids, pg_ids = engines
    q = SearchQuery(query=query)
    terms = keyword_terms(query)
    assert terms is not None
    mine = sqlite_view.keyword_candidates(q, terms, 50, table=table)
    theirs = pg_view.keyword_candidates(q, terms, 50, table=table)
    assert sorted(by_id((r for r, _, _ in mine), sqlite_ids)) == sorted(by_id((r for r, _, _ in theirs), pg_ids)), query
    if mine:
        assert sqlite_ids[mine[0][0]] == pg_ids[theirs[0][0]], query
        assert [leans for _, _, leans in sorted(mine, key=lambda m: sqlite_ids[m[0]])] == [
            leans for _, _, leans in sorted(theirs, key=lambda t: pg_ids[t[0]])
        ]
        assert all(score > 0 for _, score, _ in theirs)


def test_a_search_ranked_on_postgres_finds_what_the_folder_finds(
    home: MemoryHome, postgres_conn: psycopg.Connection[Any], postgres_database: str
) -> None:
    """The whole search (time words, the relevance floor, the priors) with its ranking read from the store."""
    from memory.store.postgres.search_source import PostgresSearchSource, PostgresVectorScores

    cube = home.cube("team", create=True)
    cube.add(TEXTS, client="tests")
    asked = [*QUERIES, "what happened in September", "Who is Carol to Bob?"]
    expected = {query: [(h.id, h.confidence) for h in cube.search(SearchQuery(query=query, limit=5)).hits] for query in asked}
    copy_cube(cube.store, postgres_conn, "team")
    cube_id = postgres_conn.execute("SELECT id FROM cubes WHERE name = 'team'").fetchone()[0]
    source, vectors = PostgresSearchSource(postgres_database, cube_id), PostgresVectorScores(postgres_database, cube_id)
    try:
        cube.read_ranking_from(source, vectors)
        for query in asked:
            found = [(h.id, h.confidence) for h in cube.search(SearchQuery(query=query, limit=5)).hits]
            assert found[:1] == expected[query][:1], query  # the same best hit, as sure of it
            assert {i for i, _ in found} & {i for i, _ in expected[query]} or not expected[query], query
        assert expected["zzyzx quuxly"] == [] and cube.search(SearchQuery(query="zzyzx quuxly")).hits == []
    finally:
        source.close()
        vectors.close()
