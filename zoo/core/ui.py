"""Terminal output shared by the commands."""

from __future__ import annotations

import sys

from rich.console import Console


def console():
    """rich's print, 120 columns wide when the output is not a terminal (pipes, CI logs)."""
    c = Console()
    if not c.is_terminal:
        c = Console(width=120)
    return c.print


class TargetProgress:
    """A progress bar over bench targets on a terminal (each finished row printed above it as it is measured);
    plain lines when the output is not a terminal."""

    def __init__(self, total: int):
        self.total, self.progress, self.task = total, None, None

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), transient=True)
            self.progress.start()
            self.task = self.progress.add_task("bench", total=self.total)
        return self

    def show(self, name: str) -> None:
        if self.progress:
            self.progress.update(self.task, description=f"bench {name}")

    def print(self, line: str, err: bool = False) -> None:
        if self.progress:
            self.progress.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=sys.stderr if err else sys.stdout, flush=True)

    def done(self) -> None:
        if self.progress:
            self.progress.advance(self.task)

    def __exit__(self, *exc) -> None:
        if self.progress:
            self.progress.stop()
