"""An archive imports into either engine: a data folder's cube, or a cube of the PostgreSQL store.

Before, ``memcube import`` on a home served from the store said it works on a data folder's cube
only: moving an archive into the store took an import into a folder and a ``memcube migrate``.
"""

from __future__ import annotations

import pytest

from memory import MemoryHome
from memory.io.archive import export_cube, import_archive
from memory.store.import_rows import UNFINISHED_KEY, ImportRow, ImportRun

NOTES = [
    {"text": "Priya prefers green tea over coffee", "type": "preference", "entities": ["Priya"], "tags": ["drinks"]},
    {"text": "Tomas repaired the rear wheel of his bicycle", "occurred_at": "2026-10-02"},
    {"text": "Bob's daughter Carol starts school in May.", "occurred_at": "2026-09-01"},
    {"text": "Wen is learning to play the cello", "session_id": "chat-1"},
    {"text": "Ana ran her first half marathon in Porto", "session_id": "chat-1"},
    {"text": "Renew the car insurance before March", "type": "task", "state": "todo", "due_at": "2027-03-01"},
]
QUERIES = ["hot drinks", "musical instruments", "running races", "bicycle repair", "Carol"]
VOLATILE = {"access_count", "last_access", "cube", "embedding_model"}


@pytest.fixture
def home(engine_home):
    return engine_home


def _filled(folder: MemoryHome) -> tuple[object, dict[str, str]]:
    source = folder.cube("moved", create=True)
    ids = {n["text"]: o.id for n, o in zip(NOTES, source.add(NOTES, client="tests"), strict=True)}
    source.update(ids[NOTES[1]["text"]], {"text": "Tomas repaired both wheels of his bicycle"}, client="tests")
    source.progress(ids[NOTES[5]["text"]], feedback={"tried": "called the broker", "result": "quote by Friday"}, client="tests")
    [gone] = source.add([{"text": "The old wifi password was hunter2"}], client="tests")
    source.delete([gone.id], client="tests")
    return source, ids


def _search(cube, query: str) -> list[str]:
    return [h.id for h in cube.search({"query": query, "limit": 5}).hits]


@pytest.fixture
def exported(tmp_path, shared_embedder):
    """(source cube, ids by text, archive): a data folder's cube exported with its vectors."""
    folder = MemoryHome(tmp_path / "source", embedder=shared_embedder)
    source, ids = _filled(folder)
    archive = tmp_path / "moved.memcube"
    export_cube(source, archive, with_vectors=True)
    yield source, ids, archive
    folder.close()


def test_an_archive_imports_into_the_homes_engine_whole(home, exported):
    source, ids, archive = exported
    expected = {q: _search(source, q) for q in QUERIES}
    report = import_archive(home, archive)
    assert (report.imported, report.vectors_reused, report.reembedded) == (len(NOTES), len(NOTES), 0)
    target = home.cube("moved")
    assert [m.model_dump(exclude=VOLATILE) for m in target.store.get_many(list(ids.values()))] == [
        m.model_dump(exclude=VOLATILE) for m in source.store.get_many(list(ids.values()))
    ]
    bike = ids[NOTES[1]["text"]]
    assert [h.op for h in target.history(bike)] == ["add", "update", "import"]
    assert target.get([ids[NOTES[5]["text"]]])[0].feedback[0].tried == "called the broker"
    assert {q: _search(target, q) for q in QUERIES} == expected
    assert [(r.predicate, r.object) for r in target.graph("Carol", to="Bob").relations] == [("daughter_of", "Bob")]
    assert target.store.unfinished_import() is None and target.store.meta(UNFINISHED_KEY) is None
    # Importing it again adds nothing.
    again = import_archive(home, archive)
    assert (again.imported, again.skipped_existing) == (0, len(NOTES))


def test_an_import_killed_part_way_is_finished_by_running_it_again(home, exported, shared_embedder):
    source, ids, archive = exported
    # The first chunk of a run that was then killed: written, and the import named as unfinished.
    target = home.cube("moved", create=True)
    target.ensure_vectors()  # as an import does first: the vector table sized for the home's model
    first = source.store.get_many([ids[NOTES[0]["text"]]])[0]
    row = first.model_dump(mode="json", exclude={"cube", "feedback", "content_hash", "embedding_model"})
    unfinished = {"source": "moved.memcube", "records": len(NOTES)}
    run = ImportRun(shared_embedder.model_id, "memcube-import", {}, first.created_at, unfinished)
    target.store.import_rows([ImportRow(row=row, versions=[], feedback=[])], run)
    report = import_archive(home, archive)
    assert report.resumed == {"source": "moved.memcube", "records": len(NOTES)}
    assert (report.imported, report.skipped_existing) == (len(NOTES) - 1, 1)
    assert target.store.unfinished_import() is None
    assert target.store.counts()["active"] == len(NOTES)
