"""Connecting to the PostgreSQL store: one-line errors, and credentials never on a command line.

A store is named by a libpq URL (``postgresql://user@host:5432/db?sslmode=require``) or
key-value string. The password comes from the environment (``PGPASSWORD``) or a password file
(``~/.pgpass``, or ``passfile=`` in the URL; libpq reads it only when no one else can), as for
``psql``; a URL that holds a password is refused on a command line (other users of the
machine see a process's arguments) and never printed (``redacted``). TLS is libpq's:
``sslmode`` and the ``sslroot*`` settings in the URL or the ``PG*`` variables are honoured.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import conninfo

from memory.errors import InvalidInput, Unavailable

CONNECT_TIMEOUT_S = 5
_SECRET_KEYS = ("password", "sslpassword")


def parts(url: str) -> dict[str, Any]:
    """The URL's settings; a clear error for one libpq cannot read."""
    try:
        return conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as error:
        raise InvalidInput(
            f"not a PostgreSQL URL ({str(error).strip().splitlines()[0]}): use postgresql://user@host/db"
        ) from None


def redacted(url: str) -> str:
    """The URL to show a person: host, port, database and user, never a password."""
    try:
        found = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(a PostgreSQL URL that cannot be read)"
    shown = {k: ("***" if k in _SECRET_KEYS else v) for k, v in found.items()}
    return conninfo.make_conninfo("", **shown)


def refuse_password_on_command_line(url: str) -> None:
    if any(parts(url).get(key) for key in _SECRET_KEYS):
        raise InvalidInput(
            "the store URL holds a password, and a command line is visible to every user of this machine: "
            "put it in PGPASSWORD or in a password file (~/.pgpass, mode 0600) instead"
        )


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    """A connection to the store, or ``Unavailable`` in one line that says what to check."""
    settings = parts(url)
    settings.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
    settings.setdefault("application_name", "memcube")
    try:
        return psycopg.connect(conninfo.make_conninfo("", **settings), autocommit=autocommit)
    except psycopg.OperationalError as error:
        raise Unavailable(f"cannot connect to the PostgreSQL store {redacted(url)}: {_reason(error)}") from None


def _reason(error: psycopg.Error) -> str:
    """libpq's message, first line, with advice for the usual causes."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    # libpq: 'connection to server at "h" (ip), port p failed: <why>' and sometimes a hint line; keep the why and the hint.
    text = ". ".join(line.rstrip(".") for line in lines).rsplit(" failed: ", 1)[-1] if lines else type(error).__name__
    lowered = text.lower()
    if "is the server running" in lowered:
        return text
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return f"{text} (set PGPASSWORD, or a password file ~/.pgpass with mode 0600)"
    if "connection refused" in lowered or "no such file or directory" in lowered or "timeout" in lowered:
        return f"{text} (is the server running, and are the host and port right?)"
    if "does not exist" in lowered:
        return f"{text} (create it first: createdb, or CREATE DATABASE as its owner)"
    return text
