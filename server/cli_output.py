"""What every ``memcube`` command shares: tables and text for people, JSON for scripts, errors, progress.

- ``emit``: ``--json`` prints the value as the MCP tool would return it; otherwise a renderer
  writes text for a person.
- ``table``: columns sized to the terminal (the last one, usually text, is cut to fit).
- ``run``: a command's errors become one line on stderr and an exit code (2: bad input or a
  refusal, 1: anything else), never a traceback unless ``--debug``; a closed pipe
  (``memcube list | head``) ends quietly.
- ``progress``: a spinner with the step and the elapsed time on stderr while long work runs,
  only when stderr is a terminal (silent when piped or redirected).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def plain(value: Any) -> Any:
    """Pydantic models (and lists/dicts of them) as JSON-ready values."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    print(json.dumps(plain(value), indent=2, ensure_ascii=False))


def emit(args: argparse.Namespace, value: Any, render: Callable[[Any], None]) -> None:
    if getattr(args, "json", False):
        print_json(value)
    else:
        render(value)


def width() -> int:
    return max(40, shutil.get_terminal_size((120, 24)).columns)


def cut(text: str, size: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= size else text[: max(1, size - 1)] + "…"


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """Aligned columns; the last column takes what is left of the terminal's width."""
    if not rows:
        return
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    sizes = [max(len(headers[i]), *(len(r[i]) for r in cells)) for i in range(len(headers) - 1)]
    left = width() - sum(sizes) - 2 * len(sizes)
    last = max(20, left)
    print("  ".join([*(h.ljust(s) for h, s in zip(headers, sizes, strict=False)), headers[-1]]).rstrip())
    for row in cells:
        print("  ".join([*(c.ljust(s) for c, s in zip(row, sizes, strict=False)), cut(row[-1], last)]).rstrip())


def fail(message: str) -> None:
    print(f"memcube: {message}", file=sys.stderr)


def describe(exc: BaseException) -> tuple[str, int]:
    """(one line for a person, exit code) for an error a command raised."""
    from pydantic import ValidationError

    from memory import MemCubeError

    if isinstance(exc, MemCubeError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, ValidationError):
        from tools.refusals import describe_refusal  # the same plain words as the MCP tools (issue 30)

        return describe_refusal(exc), EXIT_USAGE
    if isinstance(exc, ValueError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), EXIT_ERROR
    if isinstance(exc, ConnectionError | TimeoutError) or type(exc).__module__.startswith(
        ("requests", "urllib3", "httpx", "huggingface_hub")
    ):
        return f"{type(exc).__name__}: {cut(str(exc), 300)} (is the network reachable?)", EXIT_ERROR
    if isinstance(exc, OSError):
        return cut(str(exc), 300), EXIT_ERROR
    return f"unexpected {type(exc).__name__}: {cut(str(exc), 300)} (run with --debug for the traceback)", EXIT_ERROR


def _quiet_stdout() -> None:
    # Python flushes stdout again at exit; pointed at a closed pipe that would print another error.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one command: errors as one line and an exit code (tracebacks only with --debug)."""
    debug = getattr(args, "debug", False)
    try:
        code = command(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        fail("interrupted")
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except BaseException as exc:  # every error ends here: one line, an exit code
        if debug:
            traceback.print_exc()
        message, code = describe(exc)
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_stdout()
        fail(message)
        return code


@contextmanager
def progress(label: str, *, enabled: bool | None = None) -> Iterator[None]:
    """A spinner with ``label`` and the elapsed time on stderr while the block runs, on a terminal only."""
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        yield
        return
    done = threading.Event()
    started = time.monotonic()

    def spin() -> None:
        frames = "|/-\\"
        index = 0
        while not done.wait(0.2):
            sys.stderr.write(f"\r{frames[index % 4]} {label} {time.monotonic() - started:5.1f}s")
            sys.stderr.flush()
            index += 1

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        sys.stderr.write(f"\r{' ' * (len(label) + 12)}\r")
        sys.stderr.flush()
