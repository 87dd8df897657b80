"""Checked archive records, kept on disk between the check and the write of an import.

An import checks every record of ``memories.jsonl`` before it writes any (a bad one
refuses the archive whole), then writes them in chunks. Keeping the checked records in
memory would cost memory in proportion to the archive; reading the archive again would
check every record a second time and trust the file not to have changed in between. So
the check writes each record, as the row it will become, into an unnamed temporary file
(one JSON line each), and the write reads exactly those back.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from memory.io.archive_records import CheckedRecord
from memory.store.import_rows import ImportRow


class CheckedSpool:
    """Checked records, in archive order, as ``ImportRow`` (without vectors); the file goes on close."""

    def __init__(self, folder: Path | None = None) -> None:
        # In ``folder`` (the home) rather than /tmp, which is memory on many systems.
        self._file = tempfile.TemporaryFile(prefix="memcube-import-", dir=folder)  # noqa: SIM115 - closed by close()
        self.count = 0

    def add(self, record: CheckedRecord) -> None:
        entry = {
            "row": record.row,
            "versions": [
                {"version": e.version, "op": e.op, "at": e.at, "client": e.client, "changes": e.changes} for e in record.versions
            ],
            "feedback": [{"at": e.at, "tried": e.tried, "result": e.result, "client": e.client} for e in record.feedback],
        }
        self._file.write(json.dumps(entry, separators=(",", ":")).encode("utf-8", "surrogatepass") + b"\n")
        self.count += 1

    def __iter__(self) -> Iterator[ImportRow]:
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            entry = json.loads(line.decode("utf-8", "surrogatepass"))
            yield ImportRow(row=entry["row"], versions=entry["versions"], feedback=entry["feedback"])

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CheckedSpool:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
