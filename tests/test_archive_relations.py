"""An exported cube keeps the relations read from its texts: the archive carries them, import restores them.

Before, an import rebuilt entities, the full-text and context indexes and the graph from the
memories, but not the typed relations read from their texts: a cube moved to another machine
(or back from the PostgreSQL store) lost every "who is whose what" of ``memory_graph``.
"""

from __future__ import annotations

import json
import zipfile

import pytest

from memory import InvalidInput, MemoryHome
from memory.io.archive import export_cube, import_archive, read_manifest
from memory.io.archive_relations import MAX_PER_MEMORY, MEMBER

TEXTS = [
    {"text": "Bob's daughter Carol starts school in May.", "occurred_at": "2025-01-05T10:00:00Z"},
    {"text": "Grace is Maya's mentor at Stripe.", "occurred_at": "2025-01-06T10:00:00Z"},
    {"text": "Elena lives in Lyon.", "occurred_at": "2025-01-07T10:00:00Z"},
    {"text": "Elena moved from Lyon to Barcelona.", "occurred_at": "2025-03-01T10:00:00Z"},
    {
        "text": "Dana's brother Sam visits in June.",
        "relations": [{"subject": "Sam", "predicate": "sibling_of", "object": "Dana"}],  # the client's win
    },
    {"text": "Buy oat milk and bananas."},
]


@pytest.fixture
def home(engine_home):
    """Exported from either engine (the way back from the store is an export), imported into a data folder."""
    return engine_home


def _relations(cube) -> dict[str, list[tuple[str, str, str, bool]]]:
    ids = [m.id for m in cube.store.iter_all()]
    rows = cube.store.graph_rows(ids)
    return {i: sorted((r["source"], r["type"], r["target"], r["ended"]) for r in rows[i].extracted) for i in ids}


def _graph(cube, name: str) -> list[tuple[str, str, str, bool]]:
    return sorted((r.subject, r.predicate, r.object, r.current) for r in cube.graph(name).relations)


def test_an_import_restores_the_relations_read_from_the_texts(home, tmp_path, shared_embedder):
    source = home.cube("family", create=True)
    source.add(TEXTS)
    source.sync_graph()
    expected = _relations(source)
    assert any(expected.values())
    archive = tmp_path / "family.memcube"
    export_cube(source, archive)
    with zipfile.ZipFile(archive) as z:
        carried = [json.loads(line) for line in z.read(MEMBER).splitlines()]
    assert read_manifest(archive)["counts"]["relations_read"] == len(carried) == sum(len(v) for v in expected.values())
    assert {"source": "Elena", "type": "lives_in", "target": "Lyon", "ended": True} in [
        {k: c[k] for k in ("source", "type", "target", "ended")} for c in carried
    ]

    fresh = MemoryHome(tmp_path / "fresh", embedder=shared_embedder)
    try:
        import_archive(fresh, archive)
        target = fresh.cube("family")
        assert _relations(target) == expected
        # The graph answers as the source's did: who Carol is to Bob, where Elena lives now and did.
        assert [(r.predicate, r.origin) for r in target.graph("Carol", to="Bob").relations] == [("daughter_of", "extracted")]
        for name in ("Carol", "Grace", "Elena", "Sam"):
            assert _graph(target, name) == _graph(source, name), name
    finally:
        fresh.close()


def _without_member(archive, out) -> None:
    """The archive as an export written before ``relations_read.jsonl`` existed."""
    with zipfile.ZipFile(archive) as old, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            if info.filename != MEMBER:
                new.writestr(info, old.read(info))


def test_an_older_archive_has_its_relations_read_from_the_texts_on_import(folder_home, tmp_path, shared_embedder):
    source = folder_home.cube("family", create=True)
    source.add(TEXTS)
    archive, older = tmp_path / "family.memcube", tmp_path / "older.memcube"
    export_cube(source, archive)
    _without_member(archive, older)
    fresh = MemoryHome(tmp_path / "fresh", embedder=shared_embedder)
    try:
        import_archive(fresh, older)
        assert _relations(fresh.cube("family")) == _relations(source)
    finally:
        fresh.close()


def _with_lines(archive, out, lines: list[dict]) -> None:
    with zipfile.ZipFile(archive) as old, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename == MEMBER:
                data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
            new.writestr(info, data)


def test_a_crafted_relations_member_refuses_the_archive_before_anything_is_written(folder_home, tmp_path, shared_embedder):
    source = folder_home.cube("family", create=True)
    [carol, *_] = source.add(TEXTS)
    archive = tmp_path / "family.memcube"
    export_cube(source, archive)
    good = {"memory_id": carol.id, "source": "Carol", "type": "daughter_of", "target": "Bob", "ended": False}
    crafted = {
        "a type that is no relation type": [{**good, "type": "x'); DROP TABLE memories; --"}],
        "a name past the bound": [{**good, "target": "B" * 300}],
        "not a memory id": [{**good, "memory_id": "../../etc/passwd"}],
        "a field no relation has": [{**good, "weight": 5}],
        "a string for a flag": [{**good, "ended": "yes"}],
        "too many for one memory": [good] * (MAX_PER_MEMORY + 1),
    }
    for case, lines in crafted.items():
        bad = tmp_path / "bad.memcube"
        _with_lines(archive, bad, lines)
        fresh = MemoryHome(tmp_path / "fresh", embedder=shared_embedder)
        try:
            with pytest.raises(InvalidInput, match=MEMBER.replace(".", r"\.")):
                import_archive(fresh, bad)
            assert fresh.cube_names() == [] or fresh.cube("family").store.counts()["active"] == 0, case
        finally:
            fresh.close()


def test_relations_of_memories_the_archive_does_not_hold_are_left_out(folder_home, tmp_path, shared_embedder):
    source = folder_home.cube("family", create=True)
    [carol, *_] = source.add(TEXTS)
    archive, stray = tmp_path / "family.memcube", tmp_path / "stray.memcube"
    export_cube(source, archive)
    other = "mem_" + "0" * 26
    lines = [
        {"memory_id": carol.id, "source": "Carol", "type": "daughter_of", "target": "Bob", "ended": False},
        {"memory_id": other, "source": "Zed", "type": "friend_of", "target": "Ann", "ended": False},
    ]
    _with_lines(archive, stray, lines)
    fresh = MemoryHome(tmp_path / "fresh", embedder=shared_embedder)
    try:
        import_archive(fresh, stray)
        restored = _relations(fresh.cube("family"))
        assert restored[carol.id] == [("Carol", "daughter_of", "Bob", False)]
        assert all(("Zed", "friend_of", "Ann", False) not in rows for rows in restored.values())
    finally:
        fresh.close()
