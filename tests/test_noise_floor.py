"""Noise (issue 27): a relevance floor that holds for any query, no padding, long texts diluted, an honest confidence.

A month of a person's memories (tests/personal_month.py) plus a pasted 30 KB note that repeats
the month's names and topics. Queries that ask for nothing (stop words alone, gibberish, a rare
word no memory holds, an off-topic question) find nothing unless the caller asks for weak hits;
a precise question gets its answer, not the answer padded to the limit; the stuffed note never
outranks the precise memory nor reads as high; "high" marks the answer, not every memory that
shares a name with the question.
"""

from __future__ import annotations

import math

import personal_month as pm
import pytest
from support import ok

from memory import MemoryHome, SearchQuery
from memory.retrieval.relevance import FLOOR, HIGH, strength

pytestmark = pytest.mark.anyio


@pytest.fixture
def home(engine_home):  # these tool tests run on both engines (the PostgreSQL one in the postgres tier)
    return engine_home


# Names and topics of the month, repeated: what a pasted, keyword-stuffed note looks like.
_CHUNK = (
    "Marco Bianchi code reviews morning preference. Priya Raman design review icons. Dentist appointment booking. "
    "Tax return filing. Tea coffee afternoon drink. Aurora launch app store listing. Half marathon running shoes. "
)
STUFFED = "Pasted notes: " + _CHUNK * (30_000 // len(_CHUNK))

NOTHING_TO_FIND = [
    "the of and",  # stop words alone
    "what is it",
    "asdkjh qwe zzxv plorf",  # gibberish
    "zygomorphic",  # one rare word no memory holds
    "how do volcanoes form?",  # off topic
]

# question -> the text of the one memory that answers it
PRECISE = {
    "what does Marco prefer for code reviews": "Marco prefers code reviews in the morning",
    "what drink do I prefer in the afternoon": "I prefer tea to coffee in the afternoon",
    "when is the dentist appointment": "Book a dentist appointment",
    "tax return": "File the tax return",
}


@pytest.fixture(scope="module")
def month(tmp_path_factory, shared_embedder):
    """One cube with the month and the stuffed note, shared by the library tests (they only read)."""
    home = MemoryHome(tmp_path_factory.mktemp("noise"), embedder=shared_embedder)
    cube = home.cube(create=True)
    pm.load(cube)
    stuffed = cube.add([{"text": STUFFED, "type": "note"}])[0].id
    yield cube, stuffed
    home.close()


def test_a_query_that_asks_for_nothing_finds_nothing_unless_weak_hits_are_asked_for(month):
    cube, _ = month
    for query in NOTHING_TO_FIND:
        result = cube.search(SearchQuery(query=query, limit=10), now=pm.NOW)
        assert result.hits == [], (query, [(h.text[:40], h.confidence) for h in result.hits])
        assert result.below_floor > 0 and result.relevance.startswith("nothing relevant found"), query
        weak = cube.search(SearchQuery(query=query, limit=10, include_weak=True), now=pm.NOW)
        assert weak.hits and {h.confidence for h in weak.hits} == {"low"}, query


def test_a_precise_question_is_not_padded_to_the_limit(month):
    cube, _ = month
    result = cube.search(SearchQuery(query="when is the dentist appointment", limit=10), now=pm.NOW)
    assert [h.text for h in result.hits] == ["Book a dentist appointment"]
    assert result.below_floor == 9 and "weak matches left out" in result.relevance
    # The hits left out are found by meaning alone and far weaker than the answer.
    weak = cube.search(SearchQuery(query="when is the dentist appointment", limit=10, include_weak=True), now=pm.NOW)
    best = strength(weak.hits[0])
    assert best is not None and all((strength(h) or 0) < 0.7 * best for h in weak.hits[1:])


def test_a_long_stuffed_note_cannot_outrank_a_precise_memory(month):
    cube, stuffed = month
    for question, answer in PRECISE.items():
        hits = cube.search(SearchQuery(query=question, limit=10, include_weak=True), now=pm.NOW).hits
        ids = [h.id for h in hits]
        assert hits[0].text == answer, (question, [h.text[:40] for h in hits[:3]])
        if stuffed in ids:
            note = hits[ids.index(stuffed)]
            assert note.confidence == "low" and (strength(note) or 0) < FLOOR, (question, note.signals)
            # Its match signals were scaled by its length: sqrt(1000 / 30 KB), about 0.18.
            assert note.signals["length"].score == pytest.approx(math.sqrt(1000 / len(STUFFED)), abs=1e-5)


def test_high_marks_the_answer_not_every_memory_that_names_the_same_person(month):
    cube, _ = month
    hits = cube.search(SearchQuery(query="what does Marco prefer for code reviews", limit=10), now=pm.NOW).hits
    high = [h.text for h in hits if h.confidence == "high"]
    assert high == ["Marco prefers code reviews in the morning"]
    assert (strength(hits[0]) or 0) >= HIGH


async def test_through_mcp_nothing_for_stop_words_and_the_precise_memory_before_the_stuffed_note(home, connect):
    cube = home.cube(create=True)
    pm.load(cube)
    stuffed = cube.add([{"text": STUFFED, "type": "note"}])[0].id
    async with connect(home) as client:
        empty = await ok(client, "memory_search", query="what is it", now=pm.NOW)
        assert empty["hits"] == [] and empty["relevance"].startswith("nothing relevant found")
        weak = await ok(client, "memory_search", query="what is it", now=pm.NOW, include_weak=True)
        assert weak["hits"] and {h["confidence"] for h in weak["hits"]} == {"low"}
        found = await ok(client, "memory_search", query="what does Marco prefer for code reviews", now=pm.NOW)
        assert found["hits"][0]["text"] == "Marco prefers code reviews in the morning"
        assert found["hits"][0]["confidence"] == "high"
        assert all(h["confidence"] != "high" for h in found["hits"][1:])
        assert all(h["id"] != stuffed or h["confidence"] == "low" for h in found["hits"])
