"""How much an import may read, and the bounded readers that hold it to that (issue 26).

Every path that brings data in (archives, their manifest, records and vectors; the MCP
memory and Markdown importers; uploads through the web UI) reads through these bounds,
so a small file cannot make MemCube hold a huge line, a deep structure or an endless
list in memory: a 306 KB zip holding one 300 MB line used to cost 984 MB. Input is read
as a stream, one bounded line at a time, and refused with an error naming the limit.

The per-record bound follows from what a memory may hold: its text is at most
``MAX_TEXT_CHARS`` (32,000 characters, at most 128 KB of UTF-8), its metadata at most
``MAX_METADATA_BYTES``; the rest of an archive record is its history, which a heavily
edited memory makes long. 16 MiB leaves room for some 250 full-length edits.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from memory.errors import InvalidInput

MiB = 2**20
# One JSON line: an archive's memory record, a line of an MCP memory file.
MAX_RECORD_BYTES = 16 * MiB
MAX_VECTOR_RECORD_BYTES = 1 * MiB  # {"id", "vector"}: 4,096 float32s take 22 KB of base64
MAX_MANIFEST_BYTES = 1 * MiB
# Everything read from one archive, uncompressed: bounds the disk the checked records take.
MAX_ARCHIVE_BYTES = 16 * 2**30
MAX_ARCHIVE_RECORDS = 2_000_000  # memories (and, apart, vectors) in one archive
MAX_ARCHIVE_MEMBERS = 64  # an export writes five files
MAX_ZIP_DIRECTORY_BYTES = 1 * MiB  # the zip's central directory, read whole by ``zipfile``
# Levels of arrays and objects in one record. Nothing a client can store is deeper: an MCP
# message is refused past 64 levels (``server.wire.MAX_DEPTH``), and a record nests a value
# at most a few levels below the message's.
MAX_JSON_DEPTH = 100
# What the importers from other tools (Markdown notes, an MCP memory file) read in one import.
MAX_SOURCE_BYTES = 64 * MiB
MAX_SOURCE_FILES = 100_000
MAX_SOURCE_ITEMS = 100_000  # memories one such import makes (they are checked together first)
MAX_HEADING_CHARS = 200  # one Markdown heading (or note title) as it prefixes the memories of its section
MAX_UPLOAD_BYTES = 512 * MiB  # an archive uploaded through the web UI (written to disk as it comes)
ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what export writes; no LZMA dictionaries to allocate
READ_STEP = 1 * MiB


def size_text(count: int) -> str:
    """``count`` bytes for an error message: "16 MiB", "1 GiB", "300 bytes"."""
    for unit, size in (("GiB", 2**30), ("MiB", MiB), ("KiB", 1024)):
        if count >= size and count % size == 0:
            return f"{count // size} {unit}"
    return f"{count:,} bytes"


class Budget:
    """Bytes left to read from one source (an archive, a folder of notes); refuses past ``limit``."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self.used = 0

    def take(self, count: int, where: str) -> None:
        self.used += count
        if self.used > self.limit:
            raise InvalidInput(f"{where}: {self.what} holds more than {size_text(self.limit)}, the most one import reads")


def bounded_lines(stream: IO[bytes], *, where: str, limit: int, budget: Budget | None = None) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of ``stream`` without its line end, never holding more than ``limit`` bytes of one line.

    Raises ``InvalidInput`` naming ``where`` and the line when a line is longer than ``limit``
    or the ``budget`` runs out, and when the stream cannot be read (a damaged zip member).
    """
    number = 0
    pending = b""
    while True:
        try:
            chunk = stream.read(READ_STEP)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise InvalidInput(f"{where} cannot be read after line {number}: {exc}") from None
        if budget is not None:
            budget.take(len(chunk), where)
        if not chunk:
            break
        pending += chunk
        lines = pending.split(b"\n")
        pending = lines.pop()
        for line in lines:
            number += 1
            if len(line) > limit:
                raise _too_long(where, number, limit)
            yield number, line.rstrip(b"\r")
        if len(pending) > limit:
            raise _too_long(where, number + 1, limit)
    if pending:
        yield number + 1, pending.rstrip(b"\r")


def _too_long(where: str, number: int, limit: int) -> InvalidInput:
    return InvalidInput(f"{where} line {number} is longer than {size_text(limit)}, the most one record may be")


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether parsed JSON ``value`` nests arrays and objects more than ``limit`` levels (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return False


def parse_json_line(raw: bytes, where: str) -> Any:
    """One JSON value from one line (UTF-8, a byte-order mark allowed), at most ``MAX_JSON_DEPTH`` deep."""
    import json

    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        value = json.loads(raw)
    except RecursionError:
        raise nested_too_deeply(where) from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise InvalidInput(f"{where} is not valid JSON: {exc}") from None
    check_depth(value, raw, where)
    return value


def check_depth(value: Any, raw: bytes, where: str) -> None:
    """Refuse ``value`` (parsed from ``raw``) when it nests deeper than ``MAX_JSON_DEPTH``; a line with
    fewer brackets than that cannot, and is not walked."""
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and too_deep(value):
        raise nested_too_deeply(where)


def nested_too_deeply(where: str) -> InvalidInput:
    return InvalidInput(f"{where} is nested too deeply (more than {MAX_JSON_DEPTH} levels of arrays and objects)")


# -- zip archives ---------------------------------------------------------------------

_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"


def check_zip_directory(path: Path) -> None:
    """Refuse a zip whose central directory (which ``zipfile`` reads whole, into objects) is over the bound.

    Reads the end-of-central-directory record and, when there is one, the zip64 record
    whose sizes ``zipfile`` uses instead. A file with neither is left for ``zipfile`` to refuse.
    """
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            tail_size = min(size, 22 + 65_535)
            handle.seek(size - tail_size)
            tail = handle.read(tail_size)
            at = tail.rfind(_EOCD)
            if at < 0 or at + 22 > len(tail):
                return
            entries, directory = struct.unpack("<HI", tail[at + 10 : at + 16])
            if at >= 20 and tail[at - 20 : at - 16] == _ZIP64_LOCATOR:
                (offset,) = struct.unpack("<Q", tail[at - 12 : at - 4])
                handle.seek(offset)
                record = handle.read(56)
                if len(record) == 56 and record[:4] == _ZIP64_EOCD:
                    big_entries, big_directory = struct.unpack("<QQ", record[32:48])
                    entries, directory = max(entries, big_entries), max(directory, big_directory)
    except OSError:
        return  # the archive reader says what is wrong with the path
    if entries > MAX_ARCHIVE_MEMBERS or directory > MAX_ZIP_DIRECTORY_BYTES:
        raise InvalidInput(
            f"{path} lists {entries:,} files in {size_text(directory)} of zip directory; "
            f"a MemCube archive has at most {MAX_ARCHIVE_MEMBERS} files"
        )


def check_member(info: zipfile.ZipInfo, path: Path | str, limit: int) -> None:
    """Refuse a member MemCube will read that is encrypted, compressed in another way, or declares more than ``limit`` bytes."""
    if info.flag_bits & 0x1:
        raise InvalidInput(f"{path}: {info.filename} is encrypted; MemCube archives are not")
    if info.compress_type not in ZIP_METHODS:
        raise InvalidInput(
            f"{path}: {info.filename} is compressed with method {info.compress_type}; "
            "MemCube archives use deflate (make one with `memcube export`)"
        )
    if info.file_size > limit:
        raise InvalidInput(
            f"{path}: {info.filename} unpacks to {info.file_size:,} bytes, more than the {size_text(limit)} one import reads"
        )
