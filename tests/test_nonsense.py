"""Noise (issue 27): made-up words and off-topic questions find nothing, through the MCP tool.

A month of a person's memories (tests/personal_month.py) plus a few that name foreign places and
foods (their names read as fragments to the embedding model, as made-up words do) and one task
about watering. Before, a query of made-up words reached a cosine over the floor against such a
memory (fragments match fragments), and an off-topic question passed on one shared everyday word
("water"). Now a word that neither the model reads as a word nor any memory holds carries no
evidence, and one shared word out of many is not the topic; a paraphrase in words no memory uses
still finds its memory, and so does a plain question about the foreign-named memories.
"""

from __future__ import annotations

import personal_month as pm
import pytest
from support import ok

from memory import MemoryHome

pytestmark = pytest.mark.anyio

EXTRA = [
    {"text": "Dinner at Txoko Zubieta in Getxo, the kokotxas were superb", "type": "event"},
    {"text": "Picked up pfeffernusse and zwieback at the Kaufhof", "type": "event"},
    {"text": "Lunch at Pho Xuyen with Quyen and Thuy", "type": "event"},
    {"text": "Water the balcony tomatoes every evening while it is hot", "type": "task"},
    {"text": "Chen practises the violin every evening before dinner", "type": "note"},
]
TXOKO, _, _, TOMATOES, VIOLIN = (item["text"] for item in EXTRA)

MADE_UP = ["kwazzle tzork quexin", "xoqtl zubrak pfengt"]
OFF_TOPIC = ["how much water does a camel drink in the desert", "how do desalination plants purify seawater into drinking water"]


def _month(home: MemoryHome) -> None:
    cube = home.cube(create=True)
    pm.load(cube)
    cube.add(EXTRA)


async def _nothing_unless_weak(client, query: str) -> None:
    found = await ok(client, "memory_search", query=query, now=pm.NOW)
    assert found["hits"] == [], (query, [(h["text"][:40], h["confidence"]) for h in found["hits"]])
    assert found["relevance"].startswith("nothing relevant found"), (query, found["relevance"])
    weak = await ok(client, "memory_search", query=query, now=pm.NOW, include_weak=True)
    assert weak["hits"] and {h["confidence"] for h in weak["hits"]} == {"low"}, query


async def test_made_up_words_find_nothing_while_a_paraphrase_and_a_plain_question_find_theirs(home, connect):
    _month(home)
    async with connect(home) as client:
        for query in MADE_UP:
            await _nothing_unless_weak(client, query)
        # Words no memory uses, but words the model reads: found by meaning alone, as before.
        found = await ok(client, "memory_search", query="a bowed instrument with four strings", now=pm.NOW)
        assert found["hits"] and found["hits"][0]["text"] == VIOLIN
        assert found["hits"][0]["confidence"] in ("medium", "high")
        found = await ok(client, "memory_search", query="where did I have dinner in Getxo", now=pm.NOW)
        assert found["hits"][0]["text"] == TXOKO and found["hits"][0]["confidence"] == "high"


async def test_an_off_topic_question_sharing_one_everyday_word_finds_nothing(home, connect):
    _month(home)
    async with connect(home) as client:
        for query in OFF_TOPIC:
            await _nothing_unless_weak(client, query)
        # The same word as the topic of the question: the memory, first and high.
        found = await ok(client, "memory_search", query="when do I water the tomatoes", now=pm.NOW)
        assert found["hits"][0]["text"] == TOMATOES and found["hits"][0]["confidence"] == "high"


def test_the_model_reads_words_and_stems_but_not_letters(shared_embedder):
    words = ["violin", "violinists", "cellists", "avalanches", "xylophone", "klingon", "asdkjh", "zygomorphic"]
    assert shared_embedder.reads_words(words) == [True, True, True, True, False, False, False, False]
