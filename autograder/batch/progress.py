"""The live progress display of ``grade batch`` and ``kit audit``: ``rich``'s progress bar
(done/total, grader errors, rate per minute, ETA) on a terminal, nothing otherwise (a CI log or a
pipe gets only the final summary)."""

from __future__ import annotations

import time
from typing import IO, Any

from .runner import GRADED, Record

__all__ = ["Progress"]


class Progress:
    """A live progress bar (done/total, grader errors, rate, ETA) on a terminal; silent
    otherwise."""

    def __init__(self, total: int, stream: IO[str], label: str = "grading") -> None:
        self.started = time.monotonic()
        self.errors = 0
        self.progress: Any = None
        if total and stream.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn(label), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[errors]} grader errors"),
                TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(file=stream),
            )  # fmt: skip
            self.task = self.progress.add_task(label, total=total, errors=0, rate="")
            self.progress.start()

    def advance(self, record: Record) -> None:
        self.errors += record.status != GRADED
        if self.progress is not None:
            done = self.progress.tasks[0].completed + 1
            rate = 60 * done / max(time.monotonic() - self.started, 1e-9)
            self.progress.update(self.task, advance=1, errors=self.errors, rate=f"{rate:.1f}/min")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
