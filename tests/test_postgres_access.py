"""Access rules in the shared database (issue 28, acceptance 5), on a real PostgreSQL 18.

The admin's role migrates the database and owns the rules; the servers' role, set up with
``grant_server_role``, reads the rules and serves cubes, and cannot change the rules by any
statement: every server on the database enforces the same ones, and none can widen them.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import conninfo, errors

from memory.access_rules import AccessConfig
from memory.errors import Unavailable
from memory.store.postgres import migrate
from memory.store.postgres.access import grant_server_role, load_access, save_access
from memory.store.postgres.change_log import PostgresChangeLog

pytestmark = pytest.mark.postgres

RULES = AccessConfig(default="none", clients={"laptop": {"team": "write", "*": "read"}, "guest": {"team": "none"}})


@pytest.fixture
def server_role(postgres_url: str, postgres_database: str) -> Iterator[str]:
    """The URL a server logs in with: a role of its own, given the serving rights by the admin."""
    from postgres_support import login_role

    with login_role(postgres_url, postgres_database, "memcube_server") as url:
        with psycopg.connect(postgres_database, autocommit=True) as owner:
            migrate(owner)
            grant_server_role(owner, str(conninfo.conninfo_to_dict(url)["user"]))
            save_access(owner, RULES)
        yield url


def test_rules_saved_by_the_admin_are_what_a_server_enforces(server_role: str) -> None:
    with psycopg.connect(server_role, autocommit=True) as server:
        rules = load_access(server)
    assert rules == RULES
    assert rules.allows("laptop", "team", "write")
    assert rules.allows("laptop", "other", "read") and not rules.allows("laptop", "other", "write")
    assert not rules.allows("guest", "team", "read")  # refused by name
    assert not rules.allows("someone", "team", "read")  # the default


HOSTILE_CHANGES = [
    "UPDATE access_rules SET level = 'write'",
    "INSERT INTO access_rules (principal, cube, level) VALUES ('guest', 'team', 'write')",
    "DELETE FROM access_rules",
    "UPDATE access_default SET level = 'write'",
    "TRUNCATE access_rules",
    "DROP TABLE access_rules",
    "ALTER TABLE access_rules DISABLE TRIGGER ALL",
]


@pytest.mark.parametrize("statement", HOSTILE_CHANGES)
def test_the_servers_role_cannot_change_the_rules(server_role: str, postgres_database: str, statement: str) -> None:
    with psycopg.connect(server_role, autocommit=True) as server:
        with pytest.raises((errors.InsufficientPrivilege, errors.UndefinedObject)):
            server.execute(statement)
    with psycopg.connect(postgres_database, autocommit=True) as owner:
        assert load_access(owner) == RULES  # intact


def test_the_servers_role_cannot_grant_itself_more(server_role: str, postgres_database: str) -> None:
    """PostgreSQL answers a GRANT without the right to grant with a warning, not an error: the grant is empty."""
    with psycopg.connect(server_role, autocommit=True) as server:
        server.execute("GRANT INSERT, UPDATE ON access_rules TO PUBLIC")
        with pytest.raises(errors.InsufficientPrivilege):
            server.execute("INSERT INTO access_rules (principal, cube, level) VALUES ('guest', 'team', 'write')")
    with psycopg.connect(postgres_database, autocommit=True) as owner:
        assert load_access(owner) == RULES


def test_saving_rules_as_the_server_is_a_one_line_error(server_role: str, postgres_database: str) -> None:
    with psycopg.connect(server_role, autocommit=True) as server:
        with pytest.raises(Unavailable) as refused:
            save_access(server, AccessConfig(default="write"))
    message = str(refused.value)
    assert "\n" not in message and "may not change the access rules" in message
    with psycopg.connect(postgres_database, autocommit=True) as owner:
        assert load_access(owner) == RULES


def test_the_servers_role_can_serve_a_cube(server_role: str) -> None:
    """The grants are enough to write memories' changes and follow the log (not only to be refused)."""
    with psycopg.connect(server_role, autocommit=True) as server:
        row = server.execute("INSERT INTO cubes (name) VALUES ('team') RETURNING id").fetchone()
        assert row is not None
        log = PostgresChangeLog(server, int(row[0]), "graph@server")
        with server.transaction():
            log.queue(server, ["m-1"])
        log.done(log.pending(10)[-1].seq)
        assert log.count() == 0 and log.high() > 0


def test_an_empty_database_is_open_as_a_config_without_rules(postgres_database: str) -> None:
    with psycopg.connect(postgres_database, autocommit=True) as owner:
        migrate(owner)
        assert load_access(owner) == AccessConfig()
