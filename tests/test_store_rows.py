"""A memory's fields are written out once, in ``memory.models.Memory``; the store derives the rest.

Adding a field is an edit of ``Memory`` plus a migration that adds its column: the column
list, reads (``row_to_memory``), inserts and imports follow from the model.
"""

from __future__ import annotations

import pytest
from support import raw_db

from memory.models import Memory
from memory.store import rows
from memory.store.writer import NewMemory


def test_every_field_of_the_model_is_a_column_and_every_column_a_field(cube):
    with raw_db(cube) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(memories)")]
    assert set(columns) - {"row_id", "seq"} == set(rows.FIELDS)
    assert rows.MEMORY_COLUMNS.split(", ") == ["row_id", *(f for f in Memory.model_fields if f not in ("cube", "feedback"))]


def test_list_and_dict_fields_are_stored_as_json():
    assert {"tags", "entities", "relations", "metadata"} == set(rows.JSON_FIELDS)


def test_a_row_reads_back_as_the_memory_that_was_written(cube):
    [added] = cube.add(
        [
            {
                "text": "Ada reviews the budget every Friday",
                "type": "task",
                "state": "todo",
                "tags": ["work"],
                "entities": ["Ada"],
                "metadata": {"n": 1},
                "relations": [{"subject": "Ada", "predicate": "owns", "object": "budget"}],
                "due_at": "2026-12-04",
                "role": "work",
                "session_id": "s1",
                "importance": 0.7,
            }
        ]
    )
    memory = cube.get([added.id])[0]
    with raw_db(cube) as conn:
        row = conn.execute(f"SELECT {rows.MEMORY_COLUMNS} FROM memories WHERE id = ?", (added.id,)).fetchone()
    again = rows.row_to_memory(cube.name, row)
    assert again == memory.model_copy(update={"feedback": []})
    assert again.tags == ["work"] and again.metadata == {"n": 1} and again.relations[0].predicate == "owns"


def test_what_an_add_writes_is_named_as_the_model_names_it():
    """NewMemory's own fields that are also Memory fields go into the row under the same name."""
    given = set(NewMemory.__dataclass_fields__) & set(rows.FIELDS)
    assert {"text", "type", "tags", "entities", "relations", "occurred_at", "metadata", "role", "subject", "due_at"} <= given


def test_an_insert_of_a_column_the_model_does_not_know_is_refused():
    with pytest.raises(ValueError, match="not columns"):
        rows.insert_sql(["text", "no_such_field"])


def test_a_write_whose_commit_fails_is_rolled_back_and_the_store_stays_usable(cube):
    """COMMIT itself can fail (disk full, I/O error); the transaction must not stay open for the next write."""
    cube.add([{"text": "The first memory"}])
    store = cube.store
    with raw_db(cube) as conn:
        conn.execute("CREATE TABLE parent(id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TABLE child(pid INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    # A deferred foreign key is checked at COMMIT: the statement succeeds, the COMMIT fails.
    store._conn.execute("PRAGMA foreign_keys = ON")
    with pytest.raises(Exception, match="FOREIGN KEY constraint failed"), store.write() as conn:
        conn.execute("INSERT INTO child(pid) VALUES (42)")
    assert not store._conn.in_transaction
    store._conn.execute("PRAGMA foreign_keys = OFF")
    [added] = cube.add([{"text": "A memory after the failed commit"}])
    assert added.created
    with raw_db(cube) as conn:
        assert conn.execute("SELECT count(*) FROM child").fetchone()[0] == 0


@pytest.fixture
def cube(home):
    return home.cube()
