"""A name misspelt in a question still finds its person (issue 27: names linked wherever they appear).

"Which towns did Ines and Anna go to?" asked of a cube that knows Ana lost Ana's
memories: the entity stage matched names exactly. A capitalised word one edit from exactly one
known entity now stands for it (``memory.retrieval.name_spellings``); through the MCP tool
``memory_search`` on a real cube (SQLite, the ONNX model).
"""

from __future__ import annotations

import pytest

from memory.retrieval.name_spellings import misspelt_names, one_edit_away
from tests.support import ok


def test_one_edit_covers_a_dropped_an_added_a_changed_and_a_swapped_letter():
    variants = one_edit_away("anna")
    assert {"ana", "annas", "anne", "nana"} <= variants
    assert "anna" not in variants and "an" not in variants


def known_of(*names: str):
    held = set(names)
    return lambda keys: sorted(held.intersection(keys))


def test_only_an_inner_capitalised_unknown_name_with_one_known_spelling_is_linked():
    assert misspelt_names("What did Ines and Anna visit?", known_of("ana", "tomas")) == {"anna": "ana"}
    # Known as written: nothing to correct.
    assert misspelt_names("What did Ana visit?", known_of("ana", "anna")) == {}
    # Two known names one edit away: left alone rather than mixing two people up.
    assert misspelt_names("Where does Dena work?", known_of("dana", "dina")) == {}
    # Lower case, the first word of a sentence, or shorter than four letters: not read as a name.
    assert misspelt_names("what did anna visit?", known_of("ana")) == {}
    assert misspelt_names("Annas visited. Annas left.", known_of("anna")) == {}
    assert misspelt_names("Where did Ane go?", known_of("ana")) == {}


@pytest.mark.anyio
async def test_a_question_that_misspells_a_name_finds_that_persons_memories(client):
    texts = [
        ("Ana took the train to Porto for a long weekend", ["Ana"]),
        ("Ana is renting a room above the bakery for her cello lessons", ["Ana"]),
        ("Maria flew to Oslo for a conference on databases", ["Maria"]),
        ("Maria spent a weekend in Seville with her sister", ["Maria"]),
        ("The plumber fixes the kitchen tap on Thursday", []),
    ]
    ids = {}
    for text, entities in texts:
        ids[text] = (await ok(client, "memory_add", text=text, entities=entities))["ids"][0]
    found = await ok(client, "memory_search", query="Which city did Anna travel to?")
    hits = found["hits"]
    assert hits[0]["id"] == ids[texts[0][0]], [h["text"] for h in hits]
    assert "entity" in hits[0]["signals"], hits[0]
    # A name no known entity is one edit from links nothing: the same question about someone else
    # brings no entity signal to Ana's memories.
    other = await ok(client, "memory_search", query="Which city did Peter travel to?")
    assert all("entity" not in h["signals"] for h in other["hits"]), other["hits"]
