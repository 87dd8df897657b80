"""Entities read with the language pipeline (issue 27): names anywhere, titles, kinship words,
known names in lower case; no entity from a command verb, a time word, a number or a quotation's
fragments; mentions with spans and kinds; the client's entities win."""

from __future__ import annotations

import pytest

from memory import entities
from memory.entities import extract_entities, normalize


@pytest.fixture
def cube(home):
    return home.cube(create=True)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Marco prefers espresso after lunch", ["Marco"]),
        ("Elena moved from Lyon to Barcelona", ["Elena", "Lyon", "Barcelona"]),
        ("Dr. Okafor said the results look fine", ["Okafor"]),
        ("Mr. Petrov called about the lease", ["Petrov"]),
        ("Aunt Rosa is visiting in June", ["Rosa"]),
    ],
)
def test_names_are_found_in_any_position_and_after_titles_and_kinship_words(text, names):
    assert extract_entities(text) == names


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Send Marco the Q1 hiring plan", ["Marco"]),
        ("Add TLS to the staging server", []),
        ("Learn Spanish before the trip", ["Spanish"]),
        ("Trip to Lisbon in Spring, back by Q3", ["Lisbon"]),
        ("We fly to Lisbon on Thu and stay through Summer", ["Lisbon"]),
        ("Spent 20 Dollars on 3 KG of coffee in December", []),
        ("Listened to 'Born to Run' on Friday", ["Born to Run"]),
    ],
)
def test_no_entity_from_a_command_verb_a_time_word_a_number_or_a_quotation_fragment(text, names):
    assert extract_entities(text) == names


def test_mentions_have_spans_and_kinds():
    text = "Elena moved from Lyon to Barcelona"
    mentions = entities.extract_mentions(text)
    assert [(m.text, m.kind) for m in mentions] == [("Elena", "person"), ("Lyon", "place"), ("Barcelona", "place")]
    assert all(text[m.start : m.end] == m.text for m in mentions)
    [work] = entities.extract_mentions("Listened to 'Born to Run' on Friday")
    assert (work.text, work.kind) == ("Born to Run", "work")


def test_a_batch_reads_as_one_text_at_a_time():
    texts = ["Marco prefers espresso after lunch", "", "bea says hi", "Dr. Okafor called Zoe"]
    known = {"bea"}.__contains__
    assert entities.extract_entities_many(texts, known) == [extract_entities(t, known) for t in texts]
    assert entities.extract_entities_many(texts, known)[2] == ["bea"]


def test_a_title_does_not_split_a_person_in_the_graph(cube):
    [full] = cube.add([{"text": "Meeting with Dr. Amara Okafor about the scan"}])
    [short] = cube.add([{"text": "Dr. Okafor said the results look fine"}])
    assert cube.get([full.id])[0].entities == ["Amara Okafor"]
    assert cube.get([short.id])[0].entities == ["Okafor"]
    assert cube.aliases().canonical("okafor") == "amara okafor"
    view = cube.graph("Okafor")
    assert view.entity == "Amara Okafor"
    assert {m.id for m in view.memories} == {full.id, short.id}


def test_a_known_name_is_linked_in_lower_case(cube):
    [first] = cube.add([{"text": "Bea Santos moved to Porto"}])
    [chat] = cube.add([{"text": "bea says the flat is ready"}])
    assert "Bea Santos" in cube.get([first.id])[0].entities
    assert cube.get([chat.id])[0].entities == ["bea"]
    view = cube.graph("bea")
    assert {m.id for m in view.memories} == {first.id, chat.id}


def test_a_command_verb_makes_no_second_marco(cube):
    cube.add([{"text": "Marco Bianchi leads the hiring"}])
    [sent] = cube.add([{"text": "Send Marco the Q1 hiring plan"}])
    assert cube.get([sent.id])[0].entities == ["Marco"]
    assert "send marco" not in cube.store.entity_keys()
    assert cube.aliases().canonical("marco") == "marco bianchi"


def test_the_clients_entities_win(cube):
    [added] = cube.add([{"text": "Send Marco the plan", "entities": ["Marco Bianchi"]}])
    assert cube.get([added.id])[0].entities == ["Marco Bianchi"]
    [titled] = cube.add([{"text": "Dr. Okafor called back", "entities": ["Dr. Okafor"]}])
    assert cube.get([titled.id])[0].entities == ["Dr. Okafor"]
    assert normalize("Okafor") not in cube.store.entity_keys()
