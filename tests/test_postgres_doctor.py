"""``memcube doctor --store URL`` on a real PostgreSQL 18 (issue 28, acceptance 6), and the store's connection errors.

The check reads a store as the folder's doctor reads a home: what it is (server, pgvector,
schema), whether its index and its status counts hold (the counts are recounted when not),
whether the role could change the rules it enforces, and how far each follower lags. An
unreachable server or a URL with a password on the command line is one line, no password shown.
"""

from __future__ import annotations

import socket

import psycopg
import pytest
from psycopg import conninfo, sql

from memory.errors import InvalidInput, Unavailable
from memory.store.postgres import SCHEMA_VERSION, migrate
from memory.store.postgres.access import grant_server_role
from memory.store.postgres.change_log import PostgresChangeLog
from memory.store.postgres.connect import connect, redacted, refuse_password_on_command_line
from memory.store.postgres.doctor import check_store
from server.cli import main

pytestmark = pytest.mark.postgres


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_empty_database_is_ready_for_its_first_server(postgres_database: str) -> None:
    report = check_store(postgres_database)
    assert report.healthy, report.render()
    text = report.render()
    assert "PostgreSQL 18" in text and "pgvector 0.8" in text
    assert f"the first server to start creates it (version {SCHEMA_VERSION})" in text


def test_a_served_store_reports_its_cubes_followers_and_repairs_drifted_counts(postgres_database: str) -> None:
    with psycopg.connect(postgres_database, autocommit=True) as owner:
        migrate(owner)
        cube = owner.execute("INSERT INTO cubes (name) VALUES ('team') RETURNING id").fetchone()[0]
        owner.execute(
            "INSERT INTO memories (cube, id, text, type, created_at, updated_at, content_hash, seq) "
            "VALUES (%s, 'm1', 'one', 'fact', 'x', 'x', 'h1', 1), (%s, 'm2', 'two', 'fact', 'x', 'x', 'h2', 1)",
            (cube, cube),
        )
        log = PostgresChangeLog(owner, cube, "graph@laptop")
        with owner.transaction():
            log.queue(owner, ["m1", "m2"])
        log.done(log.pending(1)[0].seq)
        owner.execute("UPDATE memory_status_counts SET n = 7 WHERE cube = %s", (cube,))  # drifted

    report = check_store(postgres_database)
    text = report.render()
    assert f"schema version {SCHEMA_VERSION} (current)" in text
    assert "vector index memories_embedding valid" in text
    assert "cube team: 2 active" in text
    assert "follower graph@laptop is 1 change(s) behind" in text
    assert "owns the access rules" in text  # the test's role is the owner: said, not a failure
    assert not report.healthy and "status counts" in report.findings[0]
    assert report.repairs == ["cube team: status counts recounted from its rows"]
    assert check_store(postgres_database).healthy  # repaired


def test_a_role_that_could_change_the_rules_is_a_problem(postgres_url: str, postgres_database: str) -> None:
    from postgres_support import login_role

    with (
        login_role(postgres_url, postgres_database, "memcube_wide") as url,
        psycopg.connect(postgres_database, autocommit=True) as owner,
    ):
        role = str(conninfo.conninfo_to_dict(url)["user"])
        migrate(owner)
        grant_server_role(owner, role)
        assert check_store(url).healthy, check_store(url).render()
        owner.execute(sql.SQL("GRANT UPDATE ON access_rules TO {}").format(sql.Identifier(role)))
        report = check_store(url)
        assert any("may change the access rules" in f for f in report.findings), report.render()
        assert str(conninfo.conninfo_to_dict(url)["password"]) not in report.render()


def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    url = f"postgresql://memcube:s3cret-pw@127.0.0.1:{_closed_port()}/team?connect_timeout=2"
    with pytest.raises(Unavailable) as refused:
        connect(url)
    message = str(refused.value)
    assert "\n" not in message and "s3cret-pw" not in message
    assert "127.0.0.1" in message and "connection refused" in message.lower() and "is the server running" in message.lower()
    report = check_store(url)
    assert not report.healthy and "s3cret-pw" not in report.render()
    assert "s3cret-pw" not in redacted(url) and "***" in redacted(url)


def test_a_password_on_the_command_line_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InvalidInput):
        refuse_password_on_command_line("postgresql://memcube:pw@db.example/team")
    refuse_password_on_command_line("postgresql://memcube@db.example/team?sslmode=require")  # no password: fine
    assert main(["doctor", "--store", "postgresql://memcube:pw@db.example/team"]) != 0
    err = capsys.readouterr().err
    assert "PGPASSWORD" in err and "pw@" not in err


def test_the_cli_checks_a_store(postgres_database: str, capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(postgres_database, autocommit=True) as owner:
        migrate(owner)
    assert main(["doctor", "--store", postgres_database]) == 0
    out = capsys.readouterr().out
    assert out.startswith("store ") and "schema version" in out
