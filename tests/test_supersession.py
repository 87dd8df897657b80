"""Supersession only when a memory really replaces another (issue 18), through MCP and the library.

A new fact or preference replaces an older one when the client's subject key says so, or
when the text says that something changed and is about the same thing; it restates one
when it says the same in other words (the stored memory is confirmed, no copy is added);
otherwise both stay. Every replacement is reported with its reason and undone by restore.
"""

from __future__ import annotations

import pytest
from support import add, get, ok, read_json

from memory.doctor import check_cube
from memory.timeutil import now_stored

pytestmark = pytest.mark.anyio


@pytest.fixture
def home(engine_home):  # these tool tests run on both engines (the PostgreSQL one in the postgres tier)
    return engine_home


async def test_a_supersession_is_reported_with_the_memory_and_the_reason(client):
    old = await add(client, "Alice prefers tea over coffee", type="preference", entities=["Alice"])
    result = await ok(client, "memory_add", text="Alice now prefers coffee over tea", type="preference", entities=["Alice"])
    outcome = result["results"][0]
    assert outcome["created"] is True and outcome["restated"] is None
    assert [s["id"] for s in outcome["superseded"]] == [old]
    assert "'now'" in outcome["superseded"][0]["reason"]
    assert (await get(client, old))["status"] == "archived"

    keyed_old = await add(client, "Standup is at 9:00", type="fact", subject="standup time", role="work")
    keyed = (
        await ok(client, "memory_add", text="We meet at 9:30 for standup", type="fact", subject="Standup time", role="work")
    )["results"][0]
    assert keyed["superseded"] == [
        {"id": keyed_old, "reason": "same subject 'standup time' and role 'work', given by the client"}
    ]
    reason = (await ok(client, "memory_history", id=keyed_old))["versions"][-1]["changes"]["reason"]["new"]
    assert reason == keyed["superseded"][0]["reason"]


async def test_distinct_true_facts_about_the_same_person_all_stay(client):
    facts = [
        ("Melissa went to the book club on Tuesday.", "Melissa went to the book club again on Friday."),
        ("Melissa sketched the harbour at dawn.", "Melissa sketched the harbour at dusk."),
        ("Melissa got a job as a junior designer.", "Melissa was promoted to senior designer."),
    ]
    for first, second in facts:
        a = await add(client, first, type="fact", entities=["Melissa"])
        result = (await ok(client, "memory_add", text=second, type="fact", entities=["Melissa"]))["results"][0]
        assert result["created"] is True and result["superseded"] == [] and result["restated"] is None, second
        assert (await get(client, a))["status"] == "active"
        assert (await get(client, result["id"]))["status"] == "active"


async def test_restoring_the_older_memory_undoes_the_supersession(client, home):
    old = await add(client, "I prefer dark mode in my editor", type="preference", role="work")
    new = await add(client, "I now prefer light mode in the editor", type="preference", role="work")
    cube = home.cube("default")
    cube.sync_graph()
    assert (new, old) in cube.graph_store.supersedes()

    restored = (await ok(client, "memory_restore", ids=old))["memories"][0]
    assert restored["status"] == "active" and restored["superseded_by"] is None
    newer = await get(client, new)
    assert newer["status"] == "active" and newer["supersedes"] is None
    cube.sync_graph()
    assert (new, old) not in cube.graph_store.supersedes()
    assert (await ok(client, "memory_history", id=new))["versions"][-1]["op"] == "unlink"
    restore_row = (await ok(client, "memory_history", id=old))["versions"][-1]
    assert restore_row["op"] == "restore" and restore_row["changes"]["superseded_by"] == {"old": new, "new": None}


async def test_a_restatement_confirms_the_stored_fact_instead_of_adding_a_copy(client):
    first = await add(client, "Priya is training for a half marathon.", type="fact", entities=["Priya"], occurred_at="2026-03-01")
    result = await ok(
        client,
        "memory_add",
        text="Priya is in training for a half marathon.",
        type="fact",
        entities=["Priya"],
        occurred_at="2026-04-12",
    )
    outcome = result["results"][0]
    assert outcome == {"id": first, "created": False, "superseded": [], "restated": first}
    assert result["ids"] == [first]

    after = await get(client, first)
    assert after["status"] == "active" and after["text"] == "Priya is training for a half marathon."
    assert after["access_count"] == 1 and after["version"] == 2  # confirmed once; reading it counts only from now on
    row = (await ok(client, "memory_history", id=first))["versions"][-1]
    assert row["op"] == "restate"
    assert row["changes"]["restated"]["new"]["text"] == "Priya is in training for a half marathon."
    assert row["changes"]["restated"]["new"]["occurred_at"].startswith("2026-04-12")
    stats = await read_json(client, "memory://default/stats")
    assert (stats["active"], stats["archived"]) == (1, 0)


def _old_rule_supersede(cube, older: str, newer: str) -> None:
    """What the rule before issue 18 wrote when it archived ``older`` for ``newer``: the link on both
    and a 'supersede' version row without a reason."""
    store = cube.store
    with store._tables() as tables:
        seq = tables.next_seq()
        store._writer._supersede(tables, older, newer, now_stored(), "memcube-before-18", seq, None)
        tables.set_columns(newer, {"supersedes": older})


def test_doctor_restores_what_the_old_rule_hid_and_keeps_real_changes(folder_home, capsys):
    """A repair of a data folder's file (cubes of the PostgreSQL store never held the old rule's rows)."""
    home = folder_home
    cube = home.cube("default", create=True)
    visit1, visit2, tea, coffee, dark, light = (
        o.id
        for o in cube.add(
            [
                {"text": "Sam visited the science museum with his kids.", "type": "fact", "entities": ["Sam"]},
                {"text": "Sam visited the science museum with his colleagues.", "type": "fact", "entities": ["Sam"]},
                {"text": "Alice prefers tea over coffee", "type": "preference", "entities": ["Alice"]},
                {"text": "Alice now prefers coffee over tea", "type": "preference", "entities": ["Alice"]},
                {"text": "Editor theme: dark", "type": "preference", "subject": "editor theme"},
                {"text": "Editor theme: solarized light, bigger font", "type": "preference", "subject": "editor theme"},
            ]
        )
    )
    for older, newer in ((visit1, visit2), (tea, coffee), (dark, light)):
        _old_rule_supersede(cube, older, newer)
    cube.sync_graph()

    dry = check_cube(cube, dry_run=True)
    assert not dry.healthy
    listed = "\n".join(dry.findings)
    assert f"would restore {visit1}" in listed and f"stays archived {tea}" in listed
    assert dark not in listed  # the client's subject key decided that one
    assert cube.get([visit1])[0].status == "archived"

    report = check_cube(cube)
    assert report.healthy and "restored 1 memories the old supersession rule had hidden" in report.repairs
    first, second = cube.get([visit1, visit2])
    assert first.status == "active" and first.superseded_by is None and second.supersedes is None
    assert cube.get([tea])[0].status == "archived" and cube.get([dark])[0].status == "archived"
    assert set(cube.graph_store.supersedes()) == {(coffee, tea), (light, dark)}
    assert all(not f.startswith("supersession: would") for f in check_cube(cube, dry_run=True).findings)


def test_the_doctor_command_lists_with_dry_run_and_restores_without(tmp_path, capsys):
    from memory import MemoryHome
    from server.cli import main

    home = MemoryHome(tmp_path)
    cube = home.cube("default", create=True)
    older, newer = (
        o.id
        for o in cube.add(
            [
                {"text": "Lena sketched the old bridge in winter.", "type": "fact", "entities": ["Lena"]},
                {"text": "Lena sketched the old bridge again in spring.", "type": "fact", "entities": ["Lena"]},
            ]
        )
    )
    _old_rule_supersede(cube, older, newer)
    home.close()

    assert main(["--home", str(tmp_path), "doctor", "--dry-run"]) == 1
    assert f"would restore {older}" in capsys.readouterr().out
    assert main(["--home", str(tmp_path), "doctor"]) == 0
    assert "restored 1 memories" in capsys.readouterr().out
    home = MemoryHome(tmp_path)
    try:
        assert home.cube("default").get([older])[0].status == "active"
    finally:
        home.close()


# -- the decision itself (memory.supersession), on given cosines ------------------------------


def _fact(text: str, *entities: str, subject: str | None = None, type_: str = "fact", role: str | None = None):
    from memory.supersession import Candidate

    return Candidate(text=text, type=type_, role=role, subject=subject, entities=entities)


@pytest.mark.parametrize(
    ("old", "new", "cosine", "verdict"),
    [
        # a word of change about the same thing replaces a statement of how things are
        ("Sam lives in Oslo.", "Sam moved from Oslo to Bergen.", 0.83, "replace"),
        # ... but not a past occasion, which stays true
        ("Sam took a woodworking class last month.", "Sam now takes woodworking classes every week.", 0.92, "distinct"),
        # ... nor when the new memory adds to the old one
        ("Sam likes hiking.", "Sam now likes trail running as well.", 0.85, "distinct"),
        # ... nor when it is not close enough to be about the same thing
        ("Omar is married to Leila.", "Omar and Leila moved to a new house.", 0.78, "distinct"),
        # "now" alone replaces only the same words with one value changed
        ("Sam is a nurse.", "Sam is now studying for a master's degree in nursing.", 0.82, "distinct"),
        ("Sam's favourite colour is green.", "Sam's favourite colour is now blue.", 0.85, "replace"),
        # resemblance alone never replaces
        ("Sam ran a 10k race in April.", "Sam ran a 10k race in September.", 0.95, "distinct"),
        # other words for the same content restate; other numbers or swapped roles do not
        ("Lena has lived in Oslo for ten years.", "Lena has been living in Oslo for ten years.", 0.99, "restate"),
        ("Lena visited Paris in 2019.", "Lena visited Paris in 2022.", 0.97, "distinct"),
        ("Sam taught Omar to play chess.", "Omar taught Sam to play chess.", 0.97, "distinct"),
    ],
)
def test_the_local_rule_replaces_only_on_a_stated_change(old, new, cosine, verdict):
    from memory.supersession import decide

    assert decide(_fact(new, "Sam"), _fact(old, "Sam"), cosine).verdict == verdict


def test_the_subject_key_decides_whatever_the_words():
    from memory.supersession import decide

    old = _fact("Standup is at 9:00", subject="standup time", role="work")
    assert decide(_fact("We meet at 9:30", subject="standup time", role="work"), old, 0.3).verdict == "replace"
    assert decide(_fact("We meet at 9:30", subject="standup time", role="home"), old, 0.9).verdict == "distinct"
    assert decide(_fact("Retro is at 9:00", subject="retro time", role="work"), old, 0.9).verdict == "distinct"
    assert decide(_fact("Standup is at 9:00", subject="standup time", role="work", type_="note"), old, 1.0).verdict == "distinct"
