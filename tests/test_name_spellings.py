"""A name misspelt in a question still finds its person (issue 27: names linked wherever they appear).

"Which city have both Jean and John visited?" asked of a cube that knows Jon lost Jon's
memories: the entity stage matched names exactly. A capitalised word one edit from exactly one
known entity now stands for it (``memory.retrieval.name_spellings``); through the MCP tool
``memory_search`` on a real cube (SQLite, the ONNX model).
"""

from __future__ import annotations

import pytest

from memory.retrieval.name_spellings import misspelt_names, one_edit_away
from tests.support import ok


def test_one_edit_covers_a_dropped_an_added_a_changed_and_a_swapped_letter():
    variants = one_edit_away("john")
    assert {"jon", "johns", "joan", "jhon"} <= variants
    assert "john" not in variants and "jo" not in variants


def known_of(*names: str):
    held = set(names)
    return lambda keys: sorted(held.intersection(keys))


def test_only_an_inner_capitalised_unknown_name_with_one_known_spelling_is_linked():
    assert misspelt_names("What did Jean and John visit?", known_of("jon", "gina")) == {"john": "jon"}
    # Known as written: nothing to correct.
    assert misspelt_names("What did Jon visit?", known_of("jon", "john")) == {}
    # Two known names one edit away: left alone rather than mixing two people up.
    assert misspelt_names("Where does Dena work?", known_of("dana", "dina")) == {}
    # Lower case, the first word of a sentence, or shorter than four letters: not read as a name.
    assert misspelt_names("what did john visit?", known_of("jon")) == {}
    assert misspelt_names("Johns visited. Johns left.", known_of("john")) == {}
    assert misspelt_names("Where did Jom go?", known_of("jon")) == {}


@pytest.mark.anyio
async def test_a_question_that_misspells_a_name_finds_that_persons_memories(client):
    texts = [
        ("Jon took a short trip to Porto to clear his mind", ["Jon"]),
        ("Jon is renting a studio for his dance classes", ["Jon"]),
        ("Maria flew to Oslo for a conference on databases", ["Maria"]),
        ("Maria spent a weekend in Seville with her sister", ["Maria"]),
        ("The plumber fixes the kitchen tap on Thursday", []),
    ]
    ids = {}
    for text, entities in texts:
        ids[text] = (await ok(client, "memory_add", text=text, entities=entities))["ids"][0]
    found = await ok(client, "memory_search", query="Which city did John travel to?")
    hits = found["hits"]
    assert hits[0]["id"] == ids[texts[0][0]], [h["text"] for h in hits]
    assert "entity" in hits[0]["signals"], hits[0]
    # A name no known entity is one edit from links nothing: the same question about someone else
    # brings no entity signal to Jon's memories.
    other = await ok(client, "memory_search", query="Which city did Peter travel to?")
    assert all("entity" not in h["signals"] for h in other["hits"]), other["hits"]
