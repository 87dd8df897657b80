"""Storage: the only code that runs SQL on a cube's ``memory.db``.

It owns the schema and its migrations, the connection (SQLite with sqlite-vec, through
``sqlean``), the memory rows and their version history, the FTS5 indexes and context
windows, the vectors and their in-RAM mirror, and the graph outbox's rows. Callers pass
and get plain data and the pydantic models of ``memory.models``; ``CubeStore``'s
connection and lock are private.

May import: the base vocabulary (``memory.models``, ``errors``, ``ids``, ``timeutil``,
``entities``, ``config``, ``defaults``). Nothing above it.
"""
