"""The live stage line: where a long command is, for how long, and what comes next.

One line per command, in a terminal and in a log file alike. In a terminal it is a live
``rich`` line (title, bar, step k/n, what runs now, elapsed time). When stderr is not a
terminal (``make run > run.log 2>&1``, CI) every step and every sub-step is one plain,
timestamped line, and a heartbeat line says what is still running every
``heartbeat_s`` seconds, so a log never goes quiet for minutes::

    [00:03:12] zicht run (region, seed 7) 3/15 bench hennep (next: explain hennep)
    [00:03:40] zicht run (region, seed 7) 3/15 bench hennep (next: …) · lightgbm: fold 3/5
    [00:04:40] zicht run (region, seed 7) 3/15 still running: bench hennep … (1 min 28 s in
    this step)

Steps come from the core's ``progress`` callbacks: :meth:`StageLine.advance` starts the next
step, :meth:`StageLine.detail` says what happens inside the current one.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

#: seconds between two heartbeat lines in a log file
HEARTBEAT_S = 60.0


def clock(seconds: float) -> str:
    """``hh:mm:ss`` of a duration."""
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def duration(seconds: float) -> str:
    """``1 min 5 s`` / ``42 s``: a duration in words."""
    s = round(seconds)
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"


class StageLine:
    """The live line of one command: call it (or :meth:`advance`) to start the next step,
    :meth:`detail` to say what runs inside the current step."""

    def __init__(
        self,
        total: int,
        title: str,
        *,
        console: Console,
        stream: TextIO | None = None,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.total, self.title = total, title
        self.step, self.message, self.sub = 0, "starting", ""
        self.start = self.step_start = time.monotonic()
        self.live = console.is_terminal
        self.stream = stream if stream is not None else sys.stderr
        self.heartbeat_s = heartbeat_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bar: Progress | None = None
        self._task = None
        if self.live:
            self._bar = Progress(
                TextColumn("[bold]{task.fields[title]}[/]"),
                BarColumn(bar_width=20),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            )

    # -- the core's callbacks
    def __call__(self, message: str) -> None:
        self.advance(message)

    def advance(self, message: str) -> None:
        with self._lock:
            self.step = min(self.step + 1, self.total)
            self.message, self.sub = message, ""
            self.step_start = time.monotonic()
        self._show()

    def detail(self, message: str) -> None:
        with self._lock:
            self.sub = message
        self._show()

    # -- output
    def text(self) -> str:
        return self.message + (f" · {self.sub}" if self.sub else "")

    def _show(self) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.step, description=self.text())
        elif not self.live:
            self._line(self.text())

    def _line(self, text: str) -> None:
        elapsed = clock(time.monotonic() - self.start)
        print(f"[{elapsed}] {self.title} {self.step}/{self.total} {text}", file=self.stream)
        self.stream.flush()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                text, since = self.text(), time.monotonic() - self.step_start
            self._line(f"still running: {text} ({duration(since)} in this step)")

    # -- lifetime
    def __enter__(self) -> StageLine:
        if self._bar is not None:
            self._bar.__enter__()
            self._task = self._bar.add_task("", total=self.total, title=self.title)
        else:
            self._line("started")
            threading.Thread(target=self._heartbeat, daemon=True, name="stage-line").start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._stop.set()
        ok = exc_type is None
        if self._bar is not None and self._task is not None:
            if ok:
                self._bar.update(self._task, completed=self.total, description="done")
            self._bar.__exit__(exc_type, exc, tb)  # type: ignore[arg-type]
        else:
            elapsed = duration(time.monotonic() - self.start)
            self._line(f"done in {elapsed}" if ok else f"stopped after {elapsed}: {self.text()}")


@contextmanager
def stage_line(
    total: int, title: str, *, console: Console, heartbeat_s: float = HEARTBEAT_S
) -> Iterator[StageLine]:
    """A :class:`StageLine` for the duration of the block."""
    with StageLine(total, title, console=console, heartbeat_s=heartbeat_s) as line:
        yield line
