"""The PostgreSQL + pgvector engine (issue 28): many cubes in one database, shared by servers.

The embedded default (SQLite + sqlite-vec + FTS5 + Kuzu in the data folder) stays the
default; this engine is for a memory that several machines or a team share. It needs the
``postgres`` extra (``psycopg``) and a PostgreSQL server with the ``vector`` extension.

So far it holds the schema and its migrations (``schema``), the change log every server
follows (``change_log``, the first table object of ``memory.store.contract``) and the access
rules kept in the database (``access``); the other table objects come next.
"""

from memory.store.postgres.schema import CHANGES_CHANNEL, EMBEDDING_DIM, SCHEMA_VERSION, migrate

__all__ = ["CHANGES_CHANNEL", "EMBEDDING_DIM", "SCHEMA_VERSION", "migrate"]
