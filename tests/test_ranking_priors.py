"""Two priors applied after the fused score: a memory that only asks gives way, and several named speakers take turns."""

from __future__ import annotations

import pytest

from memory import SearchQuery

FILLER = [
    "The monstera plant needs water every Tuesday",
    "Carol's flight to Lisbon leaves at 7am",
    "Dan is allergic to peanuts",
    "The dishwasher makes a grinding noise",
    "Ivy collects vintage film cameras",
    "The car insurance renewal is due in March",
    "Hugo's daughter starts school in September",
    "The router password is on a sticky note",
]


@pytest.fixture
def cube(home):
    cube = home.cube("priors", create=True)
    cube.add([{"text": t} for t in FILLER])  # so that words have a document frequency to rank by
    return cube


def _chat(cube, lines: list[str], session: str = "chat") -> list[str]:
    return [o.id for o in cube.add([{"text": t, "session_id": session, "occurred_at": "2024-04-02"} for t in lines])]


def test_a_memory_that_ends_with_a_question_gives_way_to_the_answer(cube):
    question, answer, _ = _chat(
        cube,
        [
            "Alice: Did you finish the marathon training plan?",
            "Bob: Yes, I finished the marathon training plan in March.",
            "Alice: Congratulations, that is a big achievement.",
        ],
    )
    hits = cube.search(SearchQuery(query="marathon training plan", limit=3)).hits
    ranked = [h.id for h in hits]
    assert ranked.index(answer) < ranked.index(question)
    asked = next(h for h in hits if h.id == question)
    told = next(h for h in hits if h.id == answer)
    assert asked.signals["asks"].score == pytest.approx(-0.2) and "asks" not in told.signals
    # Without the penalty the short question would have come first: the prior decided it.
    assert asked.score + 0.2 > told.score


def test_a_question_with_a_shared_photo_after_it_still_asks(cube):
    question, answer = _chat(
        cube,
        [
            "Alice: Is this the new cello you bought? [shares a photo: a cello in a case]",
            "Bob: Yes, the new cello arrived on Friday.",
        ],
    )
    hits = cube.search(SearchQuery(query="new cello", limit=2)).hits
    assert "asks" in next(h for h in hits if h.id == question).signals


def test_people_named_together_take_turns_in_the_results(cube):
    lines = [
        "Tomas: On weekends I love cycling, it is my whole life.",
        "Wen: My bakery opened in May, it sells rye bread.",
        "Tomas: On weekends I love teaching cycling to kids.",
        "Wen: The rent for the bakery is high this year.",
        "Tomas: On weekends I love the playlists we ride to in spin class.",
        "Wen: I hired a new assistant for the bakery.",
        "Tomas: On weekends I love cycling races on mountain roads.",
        "Wen: Sales were good in June.",
    ]
    ids = _chat(cube, lines)
    tomas = [i for i, t in zip(ids, lines, strict=True) if t.startswith("Tomas")]
    alone = cube.search(SearchQuery(query="What does Tomas love doing on weekends?", limit=3)).hits
    assert {h.id for h in alone} <= set(tomas)  # one person named: no turns taken
    hits = cube.search(SearchQuery(query="What do Tomas and Wen love doing on weekends?", limit=6)).hits
    by_score = sorted(hits, key=lambda h: -h.score)
    # By fused score Tomas's memories come first; taking turns puts Wen's best second.
    assert [h.text.split(":")[0] for h in by_score[:3]] == ["Tomas", "Tomas", "Tomas"]
    assert [h.text.split(":")[0] for h in hits[:4]] == ["Tomas", "Wen", "Tomas", "Wen"]
    tomas_hits = [h for h in hits if h.id in tomas]
    assert tomas_hits == sorted(tomas_hits, key=lambda h: -h.score)  # each speaker's memories keep their order
