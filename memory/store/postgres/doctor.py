"""``memcube doctor --store URL``: the PostgreSQL store checked as a data folder is.

What it looks at, in order, each a line of the report: the server can be reached (one line
saying what to check when not); the server's version and pgvector's; the schema's version
against this MemCube's; the vector index is valid (a failed concurrent build leaves an
invalid one that searches skip); the role the check runs as, and whether it could change the
access rules it would enforce (it should not: servers get a role of their own,
``access.grant_server_role``); each cube's status counts against its rows, recounted when
they drifted; how far each follower of a cube's change log (a server's graph) is behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from memory.errors import Unavailable
from memory.store.postgres.connect import connect, redacted
from memory.store.postgres.schema import SCHEMA_VERSION

# pgvector's first version with iterative index scans, which a search filtered by cube needs.
PGVECTOR_AT_LEAST = (0, 8)


@dataclass
class StoreReport:
    url: str
    lines: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.findings

    def render(self) -> str:
        head = f"store {self.url}: {'ok' if self.healthy else 'PROBLEMS (repaired where listed)'}"
        return "\n".join(
            [head, *(f"  {line}" for line in self.lines)]
            + [f"  problem: {f}" for f in self.findings]
            + [f"  repaired: {r}" for r in self.repairs]
        )


def check_store(url: str) -> StoreReport:
    report = StoreReport(redacted(url))
    try:
        conn = connect(url)
    except Unavailable as error:
        report.findings.append(str(error))
        return report
    with conn:
        _server(conn, report)
        if _schema(conn, report):
            _index(conn, report)
            _role(conn, report)
            _cubes(conn, report)
    return report


def _one(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def _server(conn: psycopg.Connection[Any], report: StoreReport) -> None:
    report.lines.append(f"PostgreSQL {_one(conn, 'SHOW server_version')}, database {conn.info.dbname!r}")
    installed = _one(conn, "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    available = _one(conn, "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
    if installed is None and available is None:
        report.findings.append("the server has no pgvector: install it (Debian: postgresql-NN-pgvector) or use one that has it")
        return
    version = installed or available
    if _version_tuple(version) < PGVECTOR_AT_LEAST:
        report.findings.append(f"pgvector {version} is older than 0.8, which filtered vector search needs: upgrade it")
    report.lines.append(f"pgvector {version}" + ("" if installed else " (available; created with the schema)"))


def _schema(conn: psycopg.Connection[Any], report: StoreReport) -> bool:
    """Report the schema's version; True when it is this MemCube's (the other checks read its tables)."""
    if _one(conn, "SELECT to_regclass('schema_version')") is None:
        report.lines.append(f"no MemCube schema yet: the first server to start creates it (version {SCHEMA_VERSION})")
        return False
    found = int(_one(conn, "SELECT coalesce(max(version), 0) FROM schema_version"))
    if found > SCHEMA_VERSION:
        report.findings.append(
            f"the schema is version {found}, newer than this MemCube's {SCHEMA_VERSION}: upgrade memcube-mcp before serving"
        )
        return False
    if found < SCHEMA_VERSION:
        report.lines.append(f"schema version {found}: the next server to start migrates it to {SCHEMA_VERSION}")
        return False
    report.lines.append(f"schema version {found} (current)")
    return True


def _index(conn: psycopg.Connection[Any], report: StoreReport) -> None:
    valid = _one(
        conn,
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'memories_embedding'",
    )
    if valid is None:
        report.findings.append(
            "the vector index memories_embedding is missing: searches scan every vector; recreate it as the table's owner "
            "(CREATE INDEX memories_embedding ON memories USING hnsw (embedding vector_cosine_ops))"
        )
    elif not valid:
        report.findings.append(
            "the vector index memories_embedding is invalid (a build failed): REINDEX INDEX memories_embedding"
        )
    else:
        report.lines.append("vector index memories_embedding valid (HNSW)")


def _role(conn: psycopg.Connection[Any], report: StoreReport) -> None:
    role = _one(conn, "SELECT current_user")
    owner = _one(conn, "SELECT tableowner FROM pg_tables WHERE tablename = 'access_rules' AND schemaname = current_schema()")
    can_read = bool(_one(conn, "SELECT has_table_privilege('access_rules', 'SELECT')"))
    can_change = bool(_one(conn, "SELECT has_table_privilege('access_rules', 'INSERT, UPDATE, DELETE, TRUNCATE')"))
    if not can_read:
        report.findings.append(f"role {role!r} cannot read the access rules, so a server as it refuses every call")
    if role == owner:
        report.lines.append(
            f"role {role!r} owns the access rules: a server connecting as it could change them; "
            "give the servers a role of their own (grant_server_role)"
        )
    elif can_change:
        report.findings.append(f"role {role!r} may change the access rules it would enforce: REVOKE them, leave it SELECT")
    else:
        report.lines.append(f"role {role!r} reads the access rules and cannot change them")


def _cubes(conn: psycopg.Connection[Any], report: StoreReport) -> None:
    cubes = conn.execute("SELECT id, name FROM cubes ORDER BY name").fetchall()
    report.lines.append(f"{len(cubes)} cube(s)")
    for cube_id, name in cubes:
        real = dict(conn.execute("SELECT status, count(*) FROM memories WHERE cube = %s GROUP BY status", (cube_id,)).fetchall())
        kept = dict(conn.execute("SELECT status, n FROM memory_status_counts WHERE cube = %s AND n <> 0", (cube_id,)).fetchall())
        report.lines.append(f"cube {name}: " + (", ".join(f"{n} {status}" for status, n in sorted(real.items())) or "empty"))
        if real != kept:
            report.findings.append(f"cube {name}: the kept status counts {kept} differ from its rows {real}")
            try:
                with conn.transaction():
                    conn.execute("DELETE FROM memory_status_counts WHERE cube = %s", (cube_id,))
                    conn.execute(
                        "INSERT INTO memory_status_counts (cube, status, n) "
                        "SELECT cube, status, count(*) FROM memories WHERE cube = %s GROUP BY cube, status",
                        (cube_id,),
                    )
                report.repairs.append(f"cube {name}: status counts recounted from its rows")
            except psycopg.errors.InsufficientPrivilege:
                report.lines.append(f"cube {name}: role may not recount the status counts; run the doctor as the servers' role")
        high = int(_one(conn, "SELECT coalesce(max(seq), 0) FROM change_log WHERE cube = %s", (cube_id,)))
        for follower, seq in conn.execute(
            "SELECT follower, seq FROM change_cursors WHERE cube = %s ORDER BY follower", (cube_id,)
        ).fetchall():
            behind = int(_one(conn, "SELECT count(*) FROM change_log WHERE cube = %s AND seq > %s", (cube_id, seq)))
            report.lines.append(f"cube {name}: follower {follower} is {behind} change(s) behind (log at {high})")


def _version_tuple(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        numbers.append(int(digits) if digits else 0)
    return tuple(numbers)
