"""A progress bar on stderr for long ``memcube`` work, fed by ``memory.io``'s progress calls.

``memory.io`` reports ``(stage, done, total)`` (see ``memory.io.progress``); ``ProgressBar``
is such a callback. On a terminal it redraws one line in place, at most ten times a
second::

    importing work.memcube  [#########...........]  48,000/100,000  48%  2,310/s  0:22 left

Elsewhere (a pipe, a log file) it writes a plain line every ``PLAIN_EVERY`` seconds and,
for a stage that got one, another when it ends: a log shows long work moving without
filling up, and a short import writes nothing there. The rate is taken over the last ``WINDOW`` seconds of the stage, so the time left
follows the work's present pace (a resumed import skips its first records quickly).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

REDRAW_EVERY = 0.1  # seconds between two redraws on a terminal
PLAIN_EVERY = 10.0  # seconds between two plain lines
WINDOW = 15.0  # seconds of samples the rate is measured over


def clock_text(seconds: float) -> str:
    """``1:02:03`` or ``2:03``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar:
    """A ``memory.io.progress.Progress`` callback that draws ``label``'s progress on ``stream``."""

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        terminal: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.clock = clock
        self.stage: str | None = None
        self.done = 0
        self.total: int | None = None
        self._samples: deque[tuple[float, int]] = deque()
        self._drawn = 0.0
        self._width = 0  # characters of the bar now on the terminal line
        self._printed = False  # a plain line went out for this stage
        self._broken = False  # the stream could not be written to
        self._last = ""  # the last plain line written

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = self.clock()
        if stage != self.stage:
            self._end_stage()
            self.stage = stage
            self._samples.clear()
            self._drawn = 0.0 if self.terminal else now  # a plain line only once the stage has run a while
            self._printed = False
        self.done, self.total = done, total
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > WINDOW:
            self._samples.popleft()
        finished = total is not None and done >= total
        if self.terminal:
            if finished or now - self._drawn >= REDRAW_EVERY:
                self._draw(self.line())
                self._drawn = now
        elif not finished and now - self._drawn >= PLAIN_EVERY:
            self._plain()
            self._drawn = now

    def rate(self) -> float | None:
        """Items per second over the last ``WINDOW`` seconds of this stage (None before two samples)."""
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else None

    def line(self) -> str:
        """The bar as it is drawn now, fitted to the terminal's width."""
        rate = self.rate()
        parts = [f"{self.done:,}" + (f"/{self.total:,}" if self.total is not None else "")]
        if self.total:
            parts.append(f"{min(100, 100 * self.done // self.total)}%")
        if rate:
            parts.append(f"{rate:,.0f}/s")
            if self.total is not None and self.total > self.done:
                parts.append(f"{clock_text((self.total - self.done) / rate)} left")
        head, tail = f"{self.stage} {self.label}", "  ".join(parts)
        room = shutil.get_terminal_size((100, 24)).columns - len(head) - len(tail) - 8
        if self.total and room >= 10:
            size = min(40, room)
            filled = size * min(self.done, self.total) // self.total
            return f"{head}  [{'#' * filled}{'.' * (size - filled)}]  {tail}"
        return f"{head}  {tail}"

    def close(self) -> None:
        """End the last stage's output (on a terminal: keep its final state on its own line)."""
        self._end_stage()
        self.stage = None

    def _end_stage(self) -> None:
        if self.stage is None:
            return
        if self.terminal:
            if self._width:
                self._write("\n")
                self._width = 0
        elif self._printed:
            self._plain()

    def _draw(self, text: str) -> None:
        pad = " " * max(0, self._width - len(text))
        self._write(f"\r{text}{pad}")
        self._width = len(text)

    def _plain(self) -> None:
        text = f"memcube: {self.line()}\n"
        if text != self._last:
            self._write(text)
            self._last = text
        self._printed = True

    def _write(self, text: str) -> None:
        # The bar must never stop the work it reports on: with stderr gone (a closed pipe), it goes quiet.
        if self._broken:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self._broken = True
