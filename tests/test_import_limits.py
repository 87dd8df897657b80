"""Imports are bounded, linear and stay inside what they were given (issue 26, items 7, 8, 9, 12).

Crafted zips and folders in ``tmp_path``, imported into a real home (SQLite, Kuzu, the ONNX
model): a small zip that unpacks to one huge line is refused after a bounded read, a hostile
Markdown heading parses in linear time, a note linked to a file outside the folder is not
read, a deep line or a byte-order mark gets a clear answer, and supersession links that lead
nowhere are dropped at import and cleared by the doctor.
"""

from __future__ import annotations

import http.client
import json
import os
import stat
import subprocess
import sys
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ui_support import running_ui

from memory.doctor import check_cube
from memory.entities import extract_entities
from memory.errors import InvalidInput
from memory.io.archive import export_cube, import_archive
from memory.io.importers import import_markdown, import_mcp_memory, read_markdown
from memory.retrieval.task_words import read as read_task_words
from memory.store.rows import MEMORY_COLUMNS

MiB = 2**20
HUGE = 128 * MiB  # one line, eight times the most one record may be; the zip holding it is ~0.6 MB
BOUND = 100 * MiB  # the most an import may allocate while refusing it (it used to take three times the line)


def _finishes(code: str, seconds: float = 30.0) -> Any:
    """Run Python ``code`` (which prints one JSON value) in a fresh process; fail unless it ends within ``seconds``.

    A process, not a thread: a backtracking regex holds the GIL, so a thread could not be
    timed out. The guard is generous; the work takes well under a second.
    """
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds, env=env, cwd=root, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {seconds} s: not linear")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _peak(work: Callable[[], Any]) -> tuple[int, BaseException | None]:
    """(peak bytes Python allocated while ``work`` ran, what it raised)."""
    tracemalloc.start()
    raised = None
    try:
        work()
    except Exception as exc:
        raised = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, raised


def _exported(home, tmp_path: Path, texts: list[str] | None = None) -> dict[str, bytes]:
    """The members of a real export of a small cube."""
    cube = home.cube("source", create=True)
    cube.add([{"text": t} for t in texts or ["Alice likes green tea", "Bob rides a red bicycle"]])
    path = tmp_path / "real.memcube"
    export_cube(cube, path, with_vectors=True)
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(path: Path, members: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _records(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


# -- item 7: bounded decompression and parsing ---------------------------------------


@pytest.mark.parametrize("member", ["memories.jsonl", "manifest.json", "vectors.jsonl"])
def test_a_small_zip_holding_one_huge_line_is_refused_after_a_bounded_read(home, tmp_path, member):
    members = _exported(home, tmp_path)
    first_id = _records(members["memories.jsonl"])[0]["id"]
    head, tail = {
        "memories.jsonl": (b'{"id": "' + first_id.encode() + b'", "text": "', b'"}\n'),
        "manifest.json": (members["manifest.json"].rstrip().rstrip(b"}") + b', "padding": "', b'"}'),
        "vectors.jsonl": (b'{"id": "' + first_id.encode() + b'", "vector": "', b'"}\n'),
    }[member]
    bomb = tmp_path / "bomb.memcube"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in members.items():
            if name != member:
                archive.writestr(name, data)
        with archive.open(member, "w", force_zip64=True) as sink:
            sink.write(head)
            block = b"A" * MiB
            for _ in range(HUGE // MiB):
                sink.write(block)
            sink.write(tail)
    assert bomb.stat().st_size < 2 * MiB

    peak, raised = _peak(lambda: import_archive(home, bomb, cube="target"))

    assert peak < BOUND, f"reading the archive allocated {peak / MiB:.0f} MiB ({raised or 'and imported it'})"
    assert isinstance(raised, InvalidInput), raised
    assert member in str(raised) and ("MiB" in str(raised) or "bytes" in str(raised)), str(raised)
    assert "target" not in home.cube_names()  # refused before anything was written


def test_an_archive_past_its_uncompressed_bound_is_refused_naming_the_bound(home, tmp_path, monkeypatch):
    from memory.io import limits

    members = _exported(home, tmp_path, [f"Note number {i} about the garden" for i in range(40)])
    archive = _zip(tmp_path / "big.memcube", members)
    monkeypatch.setattr(limits, "MAX_ARCHIVE_BYTES", 2_000)

    with pytest.raises(InvalidInput, match="more than (the )?2,000 bytes"):
        import_archive(home, archive, cube="target")


def test_a_zip_listing_thousands_of_files_or_packed_another_way_is_refused(home, tmp_path):
    members = _exported(home, tmp_path)
    crowded = tmp_path / "crowded.memcube"
    with zipfile.ZipFile(crowded, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for number in range(5_000):
            archive.writestr(f"junk/{number}", b"")
    with pytest.raises(InvalidInput, match="lists 5,00[0-9] files"):
        import_archive(home, crowded, cube="target")

    # LZMA lets the file choose the dictionary the reader allocates: only deflate (what export writes) is read.
    lzma = _zip(tmp_path / "lzma.memcube", members, method=zipfile.ZIP_LZMA)
    with pytest.raises(InvalidInput, match="compressed with method 14"):
        import_archive(home, lzma, cube="target")
    assert "target" not in home.cube_names()


def test_an_mcp_memory_file_with_one_huge_line_is_refused_after_a_bounded_read(home, tmp_path):
    path = tmp_path / "memory.json"
    with path.open("wb") as sink:
        sink.write(b'{"type": "entity", "name": "Alice", "entityType": "person", "observations": ["')
        block = b"A" * MiB
        for _ in range(80):
            sink.write(block)
        sink.write(b'"]}\n')
    cube = home.cube()

    peak, raised = _peak(lambda: import_mcp_memory(cube, path))

    assert peak < BOUND, f"reading the file allocated {peak / MiB:.0f} MiB ({raised})"
    assert isinstance(raised, InvalidInput), raised
    assert "line 1 is longer than 16 MiB" in str(raised)
    assert not list(cube.store.iter_all())


def test_markdown_and_mcp_imports_stop_at_their_bounds(home, tmp_path, monkeypatch):
    from memory.io import limits

    notes = tmp_path / "notes"
    notes.mkdir()
    for number in range(3):
        (notes / f"n{number}.md").write_text(f"# Note {number}\n\n" + "words " * 100)
    monkeypatch.setattr(limits, "MAX_SOURCE_BYTES", 1_000)
    with pytest.raises(InvalidInput, match="more than 1,000 bytes, the most one import reads"):
        read_markdown(notes)

    monkeypatch.setattr(limits, "MAX_SOURCE_BYTES", 64 * MiB)
    monkeypatch.setattr(limits, "MAX_SOURCE_ITEMS", 5)
    lines = [{"type": "entity", "name": f"E{i}", "entityType": "thing", "observations": ["a", "b"]} for i in range(4)]
    path = tmp_path / "memory.json"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    with pytest.raises(InvalidInput, match="more than 5 memories"):
        import_mcp_memory(home.cube(), path)


def test_the_page_refuses_an_upload_past_its_bound_before_reading_it(home):
    from server.ui.jobs import MAX_UPLOAD

    with running_ui(home) as ui:
        host, port = ui.base.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=15)
        connection.putrequest("POST", "/api/cubes/default/import")
        connection.putheader("X-MemCube-Token", ui.token)
        connection.putheader("Content-Type", "application/octet-stream")
        connection.putheader("Content-Length", str(MAX_UPLOAD + 1))
        connection.endheaders()
        connection.send(b"PK\x03\x04")  # the rest never comes: the answer must not wait for it
        response = connection.getresponse()
        assert response.status == 413
        assert "larger than 512 MiB" in json.loads(response.read())["error"]
        connection.close()
    incoming = home.root / "exports" / "incoming"
    assert not incoming.exists() or not any(incoming.iterdir())


def test_an_upload_without_a_length_is_written_as_it_comes_and_stopped_at_the_bound(home, monkeypatch):
    from server.ui import jobs

    monkeypatch.setattr(jobs, "MAX_UPLOAD", 1 * MiB)  # the bound the upload's file enforces as it grows
    with running_ui(home) as ui:
        host, port = ui.base.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=15)
        chunks = (b"PK\x03\x04" + b"\0" * (64 * 1024 - 4) for _ in range(24))  # 1.5 MiB, chunked
        headers = {"X-MemCube-Token": ui.token, "Content-Type": "application/octet-stream"}
        connection.request("POST", "/api/cubes/default/import", body=chunks, headers=headers, encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 413, response.read()
        connection.close()
    incoming = home.root / "exports" / "incoming"
    assert not incoming.exists() or not any(incoming.iterdir())


# -- item 8: linear-time parsing ------------------------------------------------------


def test_hostile_markdown_headings_parse_in_linear_time(tmp_path):
    note = tmp_path / "hostile.md"
    headings = ["# a" + " " * 100_000 + "b", "## " + "#" * 100_000 + " x", "### c" + " #" * 50_000 + " d", "#" + " " * 100_000]
    note.write_text("".join(f"{heading}\n\nbody {number}\n\n" for number, heading in enumerate(headings)))

    items = _finishes(
        f"import json; from memory.io.importers import read_markdown; print(json.dumps(read_markdown({str(note)!r})))"
    )

    assert [i["text"].rsplit(": ", 1)[1] for i in items] == ["body 0", "body 1", "body 2", "body 3"]
    first = items[0]["metadata"]["section"]
    assert first.startswith("a    ") and first.endswith("…")  # a heading that long is cut short
    assert items[1]["metadata"]["section"].startswith("a   ") and " › ###" in items[1]["metadata"]["section"]
    assert all(len(i["text"]) <= 32_000 for i in items)


def test_markdown_headings_close_as_in_commonmark(tmp_path):
    note = tmp_path / "n.md"
    note.write_text("# Title #\n\nintro\n\n## Part ##   \n\nbody\n\n####### not a heading\n\n### C#\n\nsharp\n")
    sections = [i["metadata"]["section"] for i in read_markdown(note)]
    assert sections == ["Title", "Title › Part", "Title › Part › C#"]


def test_entity_and_task_word_patterns_are_linear_on_hostile_text():
    # 10 s (e-mail addresses, on every add) and 3 s (goal names, on a 2,000-character query) before issue 26.
    found = _finishes(
        "import json; from memory.entities import extract_entities; "
        "from memory.retrieval.task_words import read; "
        "words = read('open tasks for the ' + ' ' * 1_950 + 'x'); "
        "print(json.dumps([extract_entities('1.' * 16_000), extract_entities('a-' * 16_000 + '@'), words.goal]))",
        seconds=20,
    )
    assert found == [[], [], None]
    assert extract_entities("Write to bob.smith@example.com.") == ["bob.smith@example.com"]
    assert extract_entities("Ask --jo@y.io or https://x.org/a") == ["jo@y.io", "https://x.org/a"]
    assert read_task_words("open tasks for the launch goal").goal == "launch"


# -- item 9: no link followed out of the folder ---------------------------------------


def test_markdown_import_follows_no_link_out_of_the_folder(home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0:secret password line\n")
    (outside / "private.md").write_text("# Private\n\nthe diary of someone else\n")
    notes = tmp_path / "notes"
    (notes / "real").mkdir(parents=True)
    (notes / "real" / "garden.md").write_text("# Garden\n\nTomatoes need sun\n")
    (notes / "passwd.md").symlink_to(outside / "passwd")
    (notes / "elsewhere").symlink_to(outside, target_is_directory=True)
    (notes / "loop").symlink_to(notes, target_is_directory=True)
    (notes / "alias.md").symlink_to(notes / "real" / "garden.md")
    (notes / "broken.md").symlink_to(tmp_path / "nothing.md")

    summary = import_markdown(home.cube(), notes)

    texts = [m.text for m in home.cube().store.iter_all()]
    assert not any("secret password" in t or "diary" in t for t in texts)
    assert sum("Tomatoes need sun" in t for t in texts) == 1
    skipped = "\n".join(summary.skipped)
    assert "passwd.md: a link to a file outside" in skipped
    assert "elsewhere: a link to a folder outside" in skipped
    assert "broken.md" in skipped


# -- item 12: deep lines, byte-order marks, private exports, supersession links --------


def test_a_deeply_nested_line_gets_a_clear_error_from_every_importer(home, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(InvalidInput, match="line 1 is nested too deeply"):
        import_mcp_memory(home.cube(), deep)

    members = _exported(home, tmp_path)
    record = _records(members["memories.jsonl"])[0]
    nested: Any = "leaf"
    for _ in range(150):
        nested = {"n": nested}
    record["metadata"] = {"deep": nested}
    members["memories.jsonl"] = _jsonl([record])
    with pytest.raises(InvalidInput, match="memories.jsonl line 1 is nested too deeply"):
        import_archive(home, _zip(tmp_path / "deep.memcube", members), cube="target")


def test_importers_accept_utf8_with_a_byte_order_mark(home, tmp_path):
    mcp = tmp_path / "memory.json"
    mcp.write_bytes(b"\xef\xbb\xbf" + json.dumps({"type": "entity", "name": "Alice", "observations": ["likes tea"]}).encode())
    assert import_mcp_memory(home.cube(), mcp).added == 1

    note = tmp_path / "note.md"
    note.write_bytes("\ufeff# Shopping\n\n- apples\n- pears\n".encode())
    items = read_markdown(note)
    assert [i["text"] for i in items] == ["Shopping: apples", "Shopping: pears"]


def test_export_cube_writes_a_private_file_whatever_the_umask(home, tmp_path):
    home.cube().add([{"text": "a private thought"}])
    previous = os.umask(0o022)
    try:
        path = tmp_path / "out.memcube"
        export_cube(home.cube(), path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _ids(home, cube: str) -> dict[str, Any]:
    return {m.id: m for m in home.cube(cube).store.iter_all()}


def test_imported_supersession_links_that_lead_nowhere_or_round_a_cycle_are_dropped(home, tmp_path):
    members = _exported(home, tmp_path, ["First note", "Second note", "Third note", "Fourth note"])
    records = _records(members["memories.jsonl"])
    a, b, c, d = (r["id"] for r in records)
    nowhere = "mem_" + "0" * 26
    records[0]["superseded_by"] = nowhere  # purged, or never there
    records[1]["superseded_by"], records[2]["superseded_by"] = c, b  # a cycle
    records[2]["supersedes"], records[3]["supersedes"] = b, d  # b <- c, and one pointing at itself
    members["memories.jsonl"] = _jsonl(records)

    report = import_archive(home, _zip(tmp_path / "links.memcube", members), cube="target")

    imported = _ids(home, "target")
    assert report.imported == 4
    assert imported[a].superseded_by is None
    assert imported[d].supersedes is None
    assert (imported[b].superseded_by, imported[c].superseded_by) in ((c, None), (None, b))
    assert imported[c].supersedes == b  # a true link stays
    assert report.links_dropped == 3
    with running_ui(home) as ui:
        for memory_id in (a, b, c, d):
            status, _ = ui.call("GET", f"/api/cubes/target/memories/{memory_id}")
            assert status == 200


def test_the_doctor_clears_links_to_purged_memories_and_the_page_opens(home):
    cube = home.cube()
    older = cube.add([{"text": "Standup is at 9:00", "type": "fact", "subject": "standup time", "role": "work"}])[0].id
    newer = cube.add([{"text": "Standup is at 9:30", "type": "fact", "subject": "standup time", "role": "work"}])[0].id
    assert cube.store.get_many([older])[0].superseded_by == newer
    cube.delete([newer], purge=True)  # leaves the older memory's link pointing at nothing
    x, y = (o.id for o in cube.add([{"text": "Cycle one"}, {"text": "Cycle two"}]))
    rows = {m.id: m for m in cube.store.iter_all()}
    # A cycle no API makes (an older import could): written through the store's repair method.
    cube.store.repair_rows(
        [(_row_id(cube, i), i, rows[i].version, {"superseded_by": j}, {}) for i, j in ((x, y), (y, x))], client="test"
    )

    with running_ui(home) as ui:
        status, page = ui.call("GET", f"/api/cubes/default/memories/{older}")
        assert status == 200, page
        assert page["memory"]["superseded_by"] == newer

    report = check_cube(cube)

    assert any("supersession links: 2 memories" in f for f in report.findings), report.render()
    after = {m.id: m for m in cube.store.iter_all()}
    assert after[older].superseded_by is None
    assert [after[x].superseded_by, after[y].superseded_by].count(None) == 1
    assert check_cube(cube).healthy
    with running_ui(home) as ui:
        status, _ = ui.call("POST", f"/api/cubes/default/memories/{older}/purge", body={})
        assert status == 200


def _row_id(cube, memory_id: str) -> int:
    names = [c.strip() for c in MEMORY_COLUMNS.split(",")]
    for row in cube.store.raw_memory_rows():
        record = dict(zip(names, row, strict=True))
        if record["id"] == memory_id:
            return record["row_id"]
    raise KeyError(memory_id)
