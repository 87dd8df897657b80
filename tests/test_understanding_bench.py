"""The understanding dev set (bench/data/assistant_life.json) is well formed.

A data check, not a regression test: it guards the labels that bench/understanding.py
measures entities, relations, time questions and confidence against (issue 27).
"""

from __future__ import annotations

import importlib.util
import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data" / "assistant_life.json"
MEMORY_TYPES = {"fact", "preference", "event", "task", "note"}
TASK_STATES = {"todo", "in_progress", "blocked", "done"}
QUESTION_KINDS = {"time", "fact", "person", "task", "preference"}
CALENDAR_WORDS = re.compile(
    r"^(monday|tuesday|wednesday|thursday|friday|saturday|sunday|january|february|march|april|may|june|july|"
    r"august|september|october|november|december)$",
    re.IGNORECASE,
)


@cache
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("understanding_bench", ROOT / "bench" / "understanding.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def data() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
    return loaded


def moment(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, text
    return parsed


def test_the_set_is_big_enough_and_its_now_is_a_moment() -> None:
    d = data()
    moment(d["now"])
    assert len(d["memories"]) >= 250
    assert len(d["questions"]) >= 80
    assert sum(1 for q in d["questions"] if q["kind"] == "time") >= 30
    assert len(d["nonsense"]) >= 40
    assert len(set(d["nonsense"])) == len(d["nonsense"])


def test_memories_are_well_formed() -> None:
    memories = data()["memories"]
    ids = [m["id"] for m in memories]
    assert len(ids) == len(set(ids))
    for m in memories:
        assert m["text"].strip(), m["id"]
        assert m["type"] in MEMORY_TYPES, m["id"]
        for field in ("occurred_at", "due_at"):
            if m[field] is not None:
                moment(m[field])
        if m["type"] == "task":
            assert m["state"] in TASK_STATES, m["id"]
        else:
            assert m["state"] is None, m["id"]


def test_every_label_is_in_its_memory_text() -> None:
    kinds = set(bench().KINDS)
    for m in data()["memories"]:
        names = [e["text"] for e in m["entities"]]
        assert len(names) == len(set(names)), (m["id"], names)
        for entity in m["entities"]:
            assert entity["kind"] in kinds, (m["id"], entity)
            assert entity["text"] in m["text"], (m["id"], entity["text"])
            assert not CALENDAR_WORDS.match(entity["text"]), (m["id"], entity["text"])
        for relation in m["relations"]:
            assert relation["type"] in bench().RELATION_TYPES, (m["id"], relation)
            for end in (relation["source"], relation["target"]):
                assert end in m["text"], (m["id"], end)
                assert end in names, (m["id"], end, "a relation's ends are labelled entities")


def test_questions_point_at_memories_that_exist() -> None:
    d = data()
    by_id = {m["id"]: m for m in d["memories"]}
    assert len({q["q"] + q.get("now", "") for q in d["questions"]}) == len(d["questions"])
    for q in d["questions"]:
        assert q["kind"] in QUESTION_KINDS, q
        assert q["gold"], q
        assert len(q["gold"]) == len(set(q["gold"])), q
        assert all(g in by_id for g in q["gold"]), q
        now = moment(q.get("now", d["now"]))
        if q["kind"] == "time":
            # Time questions ask about the past: at least one answer happened before their "now".
            dated = [by_id[g]["occurred_at"] for g in q["gold"] if by_id[g]["occurred_at"]]
            assert dated and min(moment(t) for t in dated) < now, q


def test_the_bench_compares_titled_names_by_the_name() -> None:
    key = bench().name_key
    assert key("Dr. Adeyemi") == key("Adeyemi") == "adeyemi"
    assert key("Aunt Marisol") == key("marisol")
    assert key("Powell's Books") == "powell's books"
    relation_key = bench().relation_key
    assert relation_key("Raj", "cousin_of", "Dana") == relation_key("Dana", "cousin_of", "Raj")
    assert relation_key("Carmen", "mother_of", "Jonah") != relation_key("Jonah", "mother_of", "Carmen")
