"""Whose relative (issue 27): "Mom" in a question is the person's own mother, not "Omar's mom".

A memory that shares only the kinship word with the question, and uses it for someone else's
relative, loses its word match (``memory.retrieval.kin``); one that says more stays as it is.
Through the MCP tool ``memory_search`` (real SQLite, real ONNX model).
"""

from __future__ import annotations

import pytest

from memory.retrieval.kin import only_someone_elses, own_kin
from tests.support import ok


def test_a_kinship_word_is_the_speakers_own_as_a_name_or_after_my():
    assert own_kin("What did Mom say on the phone?") == {"mom"}
    assert own_kin("when is my sister's birthday") == {"sister"}
    assert own_kin("Dad called") == {"dad"}
    assert own_kin("What does Omar's mom do?") == set()
    assert own_kin("what did his dad say") == set()
    assert own_kin("what did mom say") == set()  # lower case and no "my": not read as a name


def test_a_memory_uses_it_for_someone_else_only_after_a_possessive():
    assert only_someone_elses("Omar's mom Leila drives the kids home", "mom")
    assert only_someone_elses("Met her dad at the game", "dad")
    assert not only_someone_elses("Call with Mom: she is selling the house", "mom")
    assert not only_someone_elses("Omar's mom and my mom are friends", "mom")
    assert not only_someone_elses("Nothing about that here", "mom")


FILLER = [
    ("Paid the electricity bill online", "2026-10-03T10:00:00Z"),
    ("Bought a new rain jacket at REI", "2026-10-14T12:00:00Z"),
    ("Car inspection passed, the brakes need work next year", "2026-10-08T09:00:00Z"),
    ("Planted tulip bulbs on the balcony", "2026-10-22T15:00:00Z"),
    ("Long run along the river, 12k, knees fine", "2026-10-25T08:00:00Z"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("ours", "theirs", "query"),
    [
        (
            "Phone call with Dad: he is finally retiring in the spring",
            "Priya's dad Ravi coaches the under-10 football team on Saturdays",
            "What did Dad say on the phone in October?",
        ),
        (
            "Call with Mom: she wants to repaint the kitchen before winter",
            "Jonas's mom Greta teaches piano and picks the kids up on Fridays",
            "What did Mom say on the phone back in October?",
        ),
        (
            "Talked to Mom, she is worried about the roof leaking again",
            "Sam's mom runs the bakery on Elm Street and drives Sam to school",
            "What did Mom tell me in October?",
        ),
    ],
)
async def test_the_persons_own_parent_comes_before_someone_elses(client, ours, theirs, query):
    ids = {}
    for text, when in [(ours, "2026-10-12T18:00:00Z"), (theirs, "2026-10-05T18:00:00Z"), *FILLER]:
        ids[text] = (await ok(client, "memory_add", text=text, type="event", occurred_at=when))["ids"][0]
    found = await ok(client, "memory_search", query=query, now="2026-11-15T12:00:00Z")
    order = [h["id"] for h in found["hits"]]
    assert order[0] == ids[ours], [h["text"] for h in found["hits"]]
    # Asked about Priya's dad, the same memory is found first: only the speaker's own relative is read so.
    owner = theirs.split("'s ")[0]
    found = await ok(client, "memory_search", query=f"What does {owner}'s {theirs.split()[1]} do?")
    assert found["hits"][0]["id"] == ids[theirs]
