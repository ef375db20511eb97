"""Per-epoch progress: a rich bar (loss, accuracy, images/s, ETA) on a terminal; otherwise (a log file,
a background run) a plain line every `interval` seconds and one per epoch.

On a narrow terminal the bar drops columns in reverse order of importance (elapsed time, then the
learning rate, then the bar itself) instead of truncating them.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# Widths (characters) of the bar's parts, for choosing what fits.
_EPOCH, _STEPS, _INFO, _LR, _TIME, _BAR = 12, 13, 36, 10, 8, 12


class EpochProgress:
    def __init__(self, enabled: bool = True, interval: float = 60.0, console: Console | None = None):
        self.enabled = enabled
        self.interval = interval
        self.console = console
        self._progress = None
        self._task = None
        self._tty = enabled and (console.is_terminal if console is not None else sys.stderr.isatty())
        self._show_lr = True

    def _columns(self, width: int) -> list:
        """The parts that fit `width`, most important first kept: epoch, steps, loss/acc/img/s, ETA, bar, lr,
        elapsed."""
        need = _EPOCH + _STEPS + _INFO + _TIME
        extras = [(_BAR, "bar"), (_LR, "lr"), (_TIME, "elapsed")]
        keep = set()
        for w, name in extras:
            if need + w <= width:
                need += w
                keep.add(name)
        self._show_lr = "lr" in keep
        cols = [TextColumn("epoch {task.fields[epoch]}"), *([BarColumn(bar_width=None)] if "bar" in keep else []),
                MofNCompleteColumn(), TextColumn("{task.fields[info]}")]
        return cols + ([TimeElapsedColumn()] if "elapsed" in keep else []) + [TimeRemainingColumn()]

    def __enter__(self):
        if self._tty:
            console = self.console or Console(stderr=True)
            self._progress = Progress(*self._columns(console.width), console=console, transient=False)
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
            self._progress.update(self._task, completed=sums.step, info=self._info(sums, lr, world, self._show_lr))
            return
        now = time.perf_counter()  # plain lines: throttled before any formatting (this runs every step)
        if now - self._last_line < self.interval:
            return
        self._last_line = now
        eta = sums.seconds / max(sums.step, 1) * (self._steps - sums.step)  # resumed steps included
        print(f"epoch {self._label}  step {sums.step}/{self._steps}  {self._info(sums, lr, world)}  epoch ends in "
              f"{int(eta // 60)}m{int(eta % 60):02d}s", file=sys.stderr, flush=True)

    @staticmethod
    def _info(sums, lr: float, world: int, show_lr: bool = True) -> str:
        return (f"loss {sums.loss / sums.seen:.4f} acc {100 * sums.correct / sums.seen:5.2f}% "
                + (f"lr {lr:.4g} " if show_lr else "") + f"{world * sums.seen / max(sums.seconds, 1e-9):.0f} img/s")

    def end_epoch(self, m: dict) -> None:
        if not self.enabled:
            return
        ranged = "lr_max" in m and m["lr_max"] != m["lr_min"]  # one-cycle: the epoch's range, not its first step
        lr = f"{m['lr_min']:.4g}-{m['lr_max']:.4g}" if ranged else f"{m['lr']:.4g}"
        line = (f"epoch {self._label}  lr {lr}  train loss {m['train_loss']:.4f} acc {m['train_acc']:.2f}%  "
                f"test loss {m['test_loss']:.4f} acc {m['test_acc']:.2f}%{_passes(m)}  {m['images_per_s']:.0f} img/s  "
                f"{m['wall_s']:.1f} s")
        if self._progress is not None:
            self._progress.console.print(line)
        else:
            print(line, file=sys.stderr, flush=True)


def _passes(m: dict) -> str:
    """How the epoch's test figures were read, when the recipe has test-time augmentation."""
    return {None: "", "none": " (one pass)"}.get(m.get("test_tta"), f" ({m.get('test_tta')})")
