"""Who may read or write which cube, kept in the shared database: every server enforces the same rules.

The rules are ``memory.access_rules.AccessConfig`` (per principal and cube: none, read or
write, and a default), stored in ``access_rules`` and ``access_default`` (schema v3). The
role that migrates the database owns them: the admin's. ``grant_server_role`` gives the role
the servers connect as what serving needs (rows of cubes, memories and their logs) and only
``SELECT`` on the rules, so a server, or anyone holding its credentials, cannot widen the
rules it enforces. A server that connects as the owner can change them: run the servers as
a role of their own.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import errors, sql

from memory.access_rules import AccessConfig, Level
from memory.errors import Unavailable

ACCESS_TABLES = ("access_rules", "access_default")
# What a serving role reads and writes: everything but the rules and the schema's own record.
SERVED_TABLES = (
    "cubes",
    "cube_meta",
    "memories",
    "memory_context",
    "memory_versions",
    "memory_entities",
    "memory_relations",
    "memory_feedback",
    "access_denials",
    "memory_status_counts",
    "change_log",
    "change_cursors",
)


def load_access(conn: psycopg.Connection[Any]) -> AccessConfig:
    """The rules as stored; a database without any is open to every principal, as a config without ``[access]`` is."""
    default = conn.execute("SELECT level FROM access_default").fetchone()
    clients: dict[str, dict[str, Level]] = {}
    for principal, cube, level in conn.execute("SELECT principal, cube, level FROM access_rules ORDER BY principal, cube"):
        clients.setdefault(principal, {})[cube] = level
    return AccessConfig(default=default[0] if default else "write", clients=clients)


def save_access(conn: psycopg.Connection[Any], config: AccessConfig) -> None:
    """Replace the stored rules with ``config``, in one transaction; only the rules' owner may."""
    try:
        with conn.transaction():
            conn.execute("DELETE FROM access_rules")
            conn.execute(
                "INSERT INTO access_default (only_row, level) VALUES (true, %s) "
                "ON CONFLICT (only_row) DO UPDATE SET level = excluded.level",
                (config.default,),
            )
            rows = [(principal, cube, level) for principal, rules in config.clients.items() for cube, level in rules.items()]
            if rows:
                with conn.cursor() as cursor:
                    cursor.executemany("INSERT INTO access_rules (principal, cube, level) VALUES (%s, %s, %s)", rows)
    except errors.InsufficientPrivilege as error:
        raise Unavailable(
            f"the database role {conn.info.user!r} may not change the access rules (they belong to the role that "
            f"migrated the database); connect as that role to change them ({str(error).strip().splitlines()[0]})"
        ) from error


def grant_server_role(conn: psycopg.Connection[Any], role: str) -> None:
    """Give ``role`` (an existing role the servers log in as) the rights to serve, and only to read the rules.

    Run by the owner of the tables, once after each migration that adds a table.
    """
    name = sql.Identifier(role)
    with conn.transaction():
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name))
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                sql.SQL(", ").join(map(sql.Identifier, SERVED_TABLES)), name
            )
        )
        conn.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(name))
        tables = sql.SQL(", ").join(map(sql.Identifier, (*ACCESS_TABLES, "schema_version")))
        conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(tables, name))
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(tables, name))


def administer(url: str, *, push: AccessConfig | None = None, grant: str | None = None) -> AccessConfig:
    """``memcube access``: replace the store's rules with ``push`` and/or let the role ``grant`` serve;
    returns the rules the store holds then. A refusal of the database is one line (``Unavailable``)."""
    from memory.store.postgres.connect import connect, redacted
    from memory.store.postgres.schema import migrate

    with connect(url) as conn:
        try:
            migrate(conn)
            if push is not None:
                save_access(conn, push)
            if grant is not None:
                grant_server_role(conn, grant)
            return load_access(conn)
        except psycopg.Error as error:
            raise Unavailable(f"{redacted(url)}: {str(error).strip().splitlines()[0]}") from None
