"""Per-epoch progress: a rich bar (loss, accuracy, images/s, ETA) on a terminal; otherwise (a log file,
a background run) a plain line every `interval` seconds and one per epoch."""

from __future__ import annotations

import sys
import time

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


class EpochProgress:
    def __init__(self, enabled: bool = True, interval: float = 60.0):
        self.enabled = enabled
        self.interval = interval
        self._progress = None
        self._task = None
        self._tty = enabled and sys.stderr.isatty()

    def __enter__(self):
        if self._tty:
            self._progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                      transient=False)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        self._label, self._steps, self._last_line = f"{epoch + 1}/{epochs}", steps, time.perf_counter()
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task("train", total=steps, completed=done, epoch=self._label, info="")

    def step(self, sums, lr: float, world: int) -> None:
        if not self.enabled or not sums.seen:
            return
        if self._progress is not None:
            self._progress.update(self._task, completed=sums.step, info=self._info(sums, lr, world))
            return
        now = time.perf_counter()  # plain lines: throttled before any formatting (this runs every step)
        if now - self._last_line < self.interval:
            return
        self._last_line = now
        eta = sums.seconds / max(sums.step, 1) * (self._steps - sums.step)  # resumed steps included
        print(f"epoch {self._label}  step {sums.step}/{self._steps}  {self._info(sums, lr, world)}  epoch ends in "
              f"{int(eta // 60)}m{int(eta % 60):02d}s", file=sys.stderr, flush=True)

    @staticmethod
    def _info(sums, lr: float, world: int) -> str:
        return (f"loss {sums.loss / sums.seen:.4f} acc {100 * sums.correct / sums.seen:5.2f}% "
                f"lr {lr:.4g} {world * sums.seen / max(sums.seconds, 1e-9):.0f} img/s")

    def end_epoch(self, m: dict) -> None:
        if not self.enabled:
            return
        line = (f"epoch {self._label}  lr {m['lr']:.4g}  train loss {m['train_loss']:.4f} acc {m['train_acc']:.2f}%  "
                f"test loss {m['test_loss']:.4f} acc {m['test_acc']:.2f}%  {m['images_per_s']:.0f} img/s  "
                f"{m['wall_s']:.1f} s")
        if self._progress is not None:
            self._progress.console.print(line)
        else:
            print(line, file=sys.stderr, flush=True)
