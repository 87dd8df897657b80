"""Export and import as background jobs the page polls, so a long one never blocks a request.

A job runs in a worker thread and reports its phase, how long it has run, and its result or
error. Export writes ``<home>/exports/<cube>-<time>.zip`` (the file can be downloaded from
the page); import reads an uploaded archive saved privately in ``<home>/exports/incoming``.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memory.errors import InvalidInput, MemCubeError, NotFound
from memory.io.limits import MAX_UPLOAD_BYTES
from memory.timeutil import now_stored

from .service import UiService

log = logging.getLogger(__name__)
MAX_UPLOAD = MAX_UPLOAD_BYTES
MAX_JOBS = 50


@dataclass
class Job:
    id: str
    kind: str  # export | import
    cube: str
    phase: str = "queued"
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    file: str | None = None

    def view(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round((self.finished or time.monotonic()) - self.started, 1)
        out["done"] = self.finished is not None
        out.pop("started")
        out.pop("finished")
        out["file"] = Path(self.file).name if self.file else None
        return out


class Upload:
    """An archive arriving through the page, written to a private file as it comes (issue 26: it
    was gathered in memory, twice: up to 1 GiB for one 512 MiB upload). The import job owns it then."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.path = path
        self.size = 0
        self.taken = False
        self._sink = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> bool:
        """Append ``chunk``; False (and nothing written) once the upload would pass ``MAX_UPLOAD``."""
        self.size += len(chunk)
        if self.size > MAX_UPLOAD:
            return False
        self._sink.write(chunk)
        return True

    def finish(self) -> Path:
        self._sink.close()
        return self.path

    def discard(self) -> None:
        """Remove the file, unless an import job has taken it."""
        if not self.taken:
            self._sink.close()
            self.path.unlink(missing_ok=True)


class Jobs:
    def __init__(self, service: UiService) -> None:
        self.service = service
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path:
        folder = self.service.home.root / "exports"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return folder

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r} (jobs are kept while this `memcube ui` runs)")
        return job

    def _start(self, job: Job, work: Any) -> Job:
        with self._lock:
            if len(self._jobs) >= MAX_JOBS:
                for old in [j for j in self._jobs.values() if j.finished is not None][: len(self._jobs) - MAX_JOBS + 1]:
                    del self._jobs[old.id]
            self._jobs[job.id] = job

        def run() -> None:
            try:
                job.result = work(job)
                job.phase = "done"
            except MemCubeError as exc:
                job.error, job.phase = str(exc), "failed"
            except Exception as exc:  # a job's failure is reported on the page, with the log for details
                log.exception("%s job %s failed", job.kind, job.id)
                job.error, job.phase = f"{type(exc).__name__}: {exc}", "failed"
            finally:
                job.finished = time.monotonic()

        threading.Thread(target=run, name=f"memcube-ui-{job.kind}", daemon=True).start()
        return job

    def export(self, cube: str) -> Job:
        from memory.io.archive import export_cube

        c = self.service.cube(cube, "read", action="export")
        stamp = now_stored().replace(":", "").replace("-", "")
        target = self.folder / f"{cube}-{stamp}-{secrets.token_hex(3)}.zip"

        def work(job: Job) -> dict[str, Any]:
            job.phase = "writing the archive"
            report = export_cube(c, target)
            os.chmod(target, 0o600)
            job.file = str(target)
            return asdict(report)

        return self._start(Job(id=secrets.token_hex(8), kind="export", cube=cube), work)

    def upload(self, cube: str) -> Upload:
        """A private file in ``exports/incoming`` for an archive to import into ``cube``, once the rules allow it."""
        self.service.cube(cube, "write", action="import")
        incoming = self.folder / "incoming"
        incoming.mkdir(mode=0o700, exist_ok=True)
        return Upload(incoming / f"upload-{secrets.token_hex(8)}.zip")

    def import_archive(self, cube: str, data: bytes | Upload) -> Job:
        """Import an uploaded archive (an ``Upload``, or its bytes) into ``cube`` in a job; the job removes the file."""
        from memory.io.archive import import_archive

        upload = data if isinstance(data, Upload) else self.upload(cube)
        if not isinstance(data, Upload) and not upload.write(data):
            upload.discard()
            raise InvalidInput(f"the archive is larger than {MAX_UPLOAD // 2**20} MiB")
        path = upload.finish()
        upload.taken = True

        def work(job: Job) -> dict[str, Any]:
            job.phase = "reading and adding memories"
            try:
                report = import_archive(self.service.home, path, cube=cube)
            finally:
                path.unlink(missing_ok=True)
            return asdict(report)

        return self._start(Job(id=secrets.token_hex(8), kind="import", cube=cube), work)
