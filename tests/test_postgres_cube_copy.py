"""Moving a cube into the PostgreSQL store (``memory.store.postgres.cube_copy``; issue 28, "Moving").

A real cube (SQLite with sqlite-vec, the ONNX model) with every kind of row a person makes:
memories in each status, an update's versions, entities and a relation read from the text,
a session's context windows, a task's feedback, a purge, a refused call. Copied into a real
PostgreSQL 18 with pgvector, every memory, vector and row that hangs on one arrives as it was;
run again after more writes, the copy carries exactly what changed, purges included; a copy
cut off between batches finishes on the next run with nothing written twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import psycopg
import pytest

from memory import MemoryHome
from memory.store.export import MEMORY_COLUMNS
from memory.store.postgres.cube_copy import copy_cube
from tests.support import raw_db

pytestmark = pytest.mark.postgres
CLIENT = "tests/copy"


def seeded(home: MemoryHome) -> dict[str, str]:
    cube = home.cube("team", create=True)
    added = cube.add(
        [
            {"text": "Bob's daughter Carol studies medicine in Porto", "entities": ["Bob", "Carol"]},
            {"text": "Dana prefers tea over coffee after lunch", "type": "preference"},
            {"text": "Renew the office lease before March", "type": "task", "state": "todo"},
            {"text": "Old wifi password is hunter2", "tags": ["secret"]},
            {"text": "Marco: we ship the beta on Friday", "session_id": "standup-1", "occurred_at": "2026-11-02T09:00:00Z"},
            {"text": "Lena: then QA starts Monday", "session_id": "standup-1", "occurred_at": "2026-11-02T09:01:00Z"},
            {"text": "The team offsite is in Lisbon", "metadata": {"source": "email"}},
        ],
        client=CLIENT,
    )
    ids = dict(zip(("carol", "tea", "task", "secret", "marco", "lena", "offsite"), (o.id for o in added), strict=True))
    cube.update(ids["tea"], {"text": "Dana prefers green tea over coffee after lunch"}, client=CLIENT)
    cube.progress(
        ids["task"], state="in_progress", feedback={"tried": "called the landlord", "result": "no answer"}, client=CLIENT
    )
    cube.archive([ids["offsite"]], client=CLIENT)
    cube.delete([ids["secret"]], purge=True, client=CLIENT)
    cube.store.record_denial(client="intruder/1.0", action="memory_search", need="read")
    return ids


def source_rows(home: MemoryHome, name: str) -> dict[str, dict[str, Any]]:
    batch = home.cube(name).store.export_changed_memories((0, 0), 10_000)
    with raw_db(home.cube(name)) as conn:
        windows = dict(conn.execute("SELECT rowid, text FROM memory_context_fts").fetchall())
    rows = {}
    for memory in batch.memories:
        row = {
            c: (json.loads(memory[c]) if c in ("tags", "entities", "relations", "metadata") else memory[c])
            for c in MEMORY_COLUMNS
        }
        row["vector"] = batch.vectors.get(memory["row_id"])
        row["context"] = windows.get(memory["row_id"])
        row["entity_rows"] = sorted((name, norm) for r, name, norm in batch.entities if r == memory["row_id"])
        row["relation_rows"] = sorted(
            (r["source_norm"], r["type"], r["target_norm"], bool(r["ended"]))
            for r in batch.relations
            if r["memory_rowid"] == memory["row_id"]
        )
        rows[memory["id"]] = row
    return rows


def store_rows(conn: psycopg.Connection[Any], name: str) -> dict[str, dict[str, Any]]:
    columns = [c for c in MEMORY_COLUMNS if c != "row_id"]
    found = conn.execute(
        f"SELECT m.row_id, {', '.join('m.' + c for c in columns)}, m.embedding::text, x.text FROM memories m "
        "JOIN cubes c ON c.id = m.cube LEFT JOIN memory_context x ON x.row_id = m.row_id WHERE c.name = %s",
        (name,),
    ).fetchall()
    rows = {}
    for row_id, *values, embedding, context in found:
        row = dict(zip(columns, values, strict=True))
        row["vector"] = None if embedding is None else np.array(json.loads(embedding), dtype=np.float32)
        row["context"] = context
        row["entity_rows"] = sorted(
            tuple(r) for r in conn.execute("SELECT name, norm FROM memory_entities WHERE memory_row_id = %s", (row_id,))
        )
        row["relation_rows"] = sorted(
            tuple(r)
            for r in conn.execute(
                "SELECT source_norm, type, target_norm, ended FROM memory_relations WHERE memory_row_id = %s", (row_id,)
            )
        )
        rows[row["id"]] = row
    return rows


def assert_same(source: dict[str, dict[str, Any]], copied: dict[str, dict[str, Any]]) -> None:
    assert sorted(copied) == sorted(source)
    for memory_id, expected in source.items():
        got = copied[memory_id]
        for column, value in expected.items():
            if column == "row_id":
                continue  # the store numbers its own rows
            if column == "vector":
                assert (value is None) == (got["vector"] is None), memory_id
                if value is not None:
                    assert np.array_equal(value, got["vector"]), memory_id  # float32 through text and back, exactly
                continue
            assert got[column] == value, (memory_id, column, value, got[column])


def history(conn: psycopg.Connection[Any], name: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT v.memory_id, v.version, v.op, v.at, v.client, v.changes FROM memory_versions v "
        "JOIN cubes c ON c.id = v.cube WHERE c.name = %s ORDER BY v.seq",
        (name,),
    ).fetchall()


def test_every_memory_vector_and_row_arrives_as_it_was(home: MemoryHome, postgres_conn: psycopg.Connection[Any]) -> None:
    ids = seeded(home)
    source = source_rows(home, "team")
    assert ids["secret"] not in source and source[ids["tea"]]["version"] == 2
    assert source[ids["carol"]]["relation_rows"], "the relation is read from the text"
    assert source[ids["marco"]]["context"], "the session's turns have context windows"
    seen: list[tuple[int, int]] = []

    report = copy_cube(
        home.cube("team").store, postgres_conn, "team", progress=lambda stage, done, total: seen.append((done, total))
    )

    assert_same(source, store_rows(postgres_conn, "team"))
    assert report.memories == len(source) and report.by_status == {"active": 5, "archived": 1}
    source_history = home.cube("team").store.export_log("memory_versions", 0, 10_000)
    assert [(h["memory_id"], h["version"], h["op"], h["at"], h["client"], json.loads(h["changes"])) for h in source_history] == [
        tuple(row) for row in history(postgres_conn, "team")
    ]
    feedback = postgres_conn.execute("SELECT memory_id, tried, result FROM memory_feedback").fetchall()
    assert feedback == [(ids["task"], "called the landlord", "no answer")]
    denials = postgres_conn.execute("SELECT client, action, need FROM access_denials").fetchall()
    assert denials == [("intruder/1.0", "memory_search", "read")]
    queued = {r[0] for r in postgres_conn.execute("SELECT memory_id FROM change_log")}
    assert queued == set(source)
    assert seen and seen[-1][0] == seen[-1][1], seen  # progress reaches its total
    assert "hunter2" not in json.dumps([list(map(str, r)) for r in postgres_conn.execute("SELECT * FROM memory_versions")])


def test_a_second_run_carries_what_changed_since_and_only_that(home: MemoryHome, postgres_conn: psycopg.Connection[Any]) -> None:
    ids = seeded(home)
    copy_cube(home.cube("team").store, postgres_conn, "team")
    cube = home.cube("team")
    cube.update(ids["carol"], {"text": "Bob's daughter Carol studies law in Porto"}, client=CLIENT)
    cube.restore([ids["offsite"]], client=CLIENT)
    cube.delete([ids["lena"]], purge=True, client=CLIENT)
    new = cube.add([{"text": "Priya joins the team in January"}], client=CLIENT)[0].id

    again = copy_cube(cube.store, postgres_conn, "team")

    assert again.memories == 3  # carol, offsite, the new one; nothing else is written again
    assert again.purged == 1
    copied = store_rows(postgres_conn, "team")
    assert_same(source_rows(home, "team"), copied)
    assert new in copied and ids["lena"] not in copied
    assert copied[ids["carol"]]["text"].endswith("law in Porto")
    assert again.by_status == {"active": 6}


def test_a_copy_cut_off_between_batches_finishes_on_the_next_run(
    home: MemoryHome, postgres_conn: psycopg.Connection[Any]
) -> None:
    seeded(home)

    def cut_off(stage: str, done: int, total: int | None) -> None:
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_cube(home.cube("team").store, postgres_conn, "team", batch=2, progress=cut_off)
    partial = store_rows(postgres_conn, "team")
    assert 0 < len(partial) < len(source_rows(home, "team"))

    copy_cube(home.cube("team").store, postgres_conn, "team", batch=2)

    assert_same(source_rows(home, "team"), store_rows(postgres_conn, "team"))
    versions = postgres_conn.execute("SELECT count(*) FROM memory_versions").fetchone()
    assert versions is not None and versions[0] == len(home.cube("team").store.export_log("memory_versions", 0, 10_000))


def test_two_cubes_share_the_store_without_mixing(tmp_path, shared_embedder, postgres_conn: psycopg.Connection[Any]) -> None:
    homes = [MemoryHome(tmp_path / name, embedder=shared_embedder) for name in ("laptop", "desktop")]
    try:
        for number, home in enumerate(homes):
            home.cube("default", create=True).add([{"text": f"Note {number}: the same row ids in both files"}], client=CLIENT)
            copy_cube(home.cube("default").store, postgres_conn, f"cube-{number}")
        for number, home in enumerate(homes):
            assert_same(source_rows(home, "default"), store_rows(postgres_conn, f"cube-{number}"))
    finally:
        for home in homes:
            home.close()


def memcube(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", *args], capture_output=True, text=True, timeout=120)


def test_memcube_migrate_copies_every_cube_and_a_second_run_only_catches_up(
    home: MemoryHome, postgres_conn: psycopg.Connection[Any], postgres_database: str
) -> None:
    ids = seeded(home)
    home.cube("notes", create=True).add([{"text": "A second cube's only memory"}], client=CLIENT)
    expected = {name: source_rows(home, name) for name in ("team", "notes")}
    home.close()

    first = memcube("migrate", "--to", postgres_database, "--home", str(home.root))

    assert first.returncode == 0, first.stderr
    assert "copied cube 'team'" in first.stdout and "copied cube 'notes'" in first.stdout, first.stdout
    for name, rows in expected.items():
        assert_same(rows, store_rows(postgres_conn, name))
    again = memcube("migrate", "--to", postgres_database, "--home", str(home.root), "--cube", "team")
    assert again.returncode == 0 and "'team'" in again.stdout and "0 memories written" in again.stdout, again
    assert ids["carol"] in store_rows(postgres_conn, "team")


def test_memcube_migrate_says_what_is_wrong_in_one_line(tmp_path, postgres_database: str) -> None:
    with_password = memcube("migrate", "--to", "postgresql://memcube:s3cret@db.example/team", "--home", str(tmp_path))
    assert with_password.returncode != 0 and "PGPASSWORD" in with_password.stderr
    assert "s3cret" not in with_password.stderr + with_password.stdout
    unknown = memcube("migrate", "--to", postgres_database, "--home", str(tmp_path), "--cube", "nope")
    assert unknown.returncode == 2 and "no cube named 'nope'" in unknown.stderr, unknown.stderr
    unreachable = memcube("migrate", "--to", "postgresql://memcube@127.0.0.1:1/team", "--home", str(tmp_path))
    assert unreachable.returncode != 0 and "cannot connect" in unreachable.stderr, unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1, unreachable.stderr


def test_a_role_that_does_not_own_the_tables_copies_all_the_same(
    home: MemoryHome, postgres_url: str, postgres_database: str, postgres_conn: psycopg.Connection[Any]
) -> None:
    """The copy ends with ANALYZE, which only a table's owner (or a maintainer) may run: PostgreSQL
    skips it for anyone else with a warning, and the copy is complete."""
    from postgres_support import login_role
    from psycopg import sql

    seeded(home)
    with login_role(postgres_url, postgres_database, "copier") as url:
        role = psycopg.conninfo.conninfo_to_dict(url)["user"]
        postgres_conn.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role))
        )
        with psycopg.connect(url, autocommit=True) as conn:
            report = copy_cube(home.cube("team").store, conn, "team")
    assert report.by_status == {"active": 5, "archived": 1}
    assert_same(source_rows(home, "team"), store_rows(postgres_conn, "team"))


def test_a_memory_moved_to_another_day_leaves_its_old_neighbours_windows_right(
    home: MemoryHome, postgres_conn: psycopg.Connection[Any]
) -> None:
    """A memory that leaves a thread changes its old neighbours' context windows without writing
    their rows: a second run rewrites the windows of the thread it left as well as of the one it joined."""
    cube = home.cube("team", create=True)
    day = [
        cube.add([{"text": text, "occurred_at": "2026-11-03T09:00:00Z"}], client=CLIENT)[0].id
        for text in ("Booked the venue for the launch", "Sent the invitations to the press", "Ordered the catering")
    ]
    copy_cube(cube.store, postgres_conn, "team")
    cube.update(day[1], {"occurred_at": "2026-11-20T09:00:00Z"}, client=CLIENT)

    copy_cube(cube.store, postgres_conn, "team")

    copied = store_rows(postgres_conn, "team")
    assert "invitations" not in (copied[day[0]]["context"] or ""), copied[day[0]]["context"]
    assert_same(source_rows(home, "team"), copied)
