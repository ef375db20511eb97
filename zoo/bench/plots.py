"""PNG plots from a report and from training runs (matplotlib, Agg backend)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from safetensors.torch import load_file

from zoo.core.cards import BenchRow
from zoo.core.errors import plural
from zoo.core.io import read_jsonl
from zoo.core.shipped import get_card, weights_dir
from zoo.train.rundir import find_runs

DATASETS = ("mnist", "kmnist", "cifar10", "cifar100")


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    _plt().close(fig)
    return path


MARKERS = "osD^v<>Px*"


def _series(r: BenchRow) -> str:
    """The legend entry of a row: its runtime (with the precision it ran) and its precision."""
    return f"{r.runtime} {r.precision}" + ("" if r.provider == "cpu" else f" ({r.provider})")


def _scatter(rows: list[BenchRow], xkey: str, xlabel: str, title: str, path: Path, logx: bool) -> Path | None:
    """One panel per dataset, every runtime and precision a marker and colour of its own."""
    rows = [r for r in rows if r.runtime != "null" and r.top1 is not None and getattr(r, xkey) is not None]
    if not rows:
        return None
    plt = _plt()
    series = list(dict.fromkeys(_series(r) for r in rows))
    style = {s: (MARKERS[i % len(MARKERS)], f"C{i % 10}") for i, s in enumerate(series)}
    present = list(dict.fromkeys([d for d in DATASETS if any(r.dataset == d for r in rows)]
                                 + [r.dataset for r in rows]))  # built-in ones first, then folder datasets
    fig, axes = plt.subplots(1, len(present), figsize=(4.5 * len(present), 4), squeeze=False)
    for ax, ds in zip(axes[0], present):
        mine = [r for r in rows if r.dataset == ds]
        for name in series:
            part = [r for r in mine if _series(r) == name]
            if part:
                ax.scatter([getattr(r, xkey) for r in part], [r.top1 for r in part], s=40, marker=style[name][0],
                           color=style[name][1], label=name)
        for arch in dict.fromkeys(r.arch for r in mine):  # one label per model, at its first point
            r = next(r for r in mine if r.arch == arch)
            ax.annotate(arch, (getattr(r, xkey), r.top1), textcoords="offset points", xytext=(4, 4), fontsize=8,
                        annotation_clip=True)
        if len(series) > 1:
            ax.legend(fontsize=7)
        ax.margins(x=0.25, y=0.12)  # room for the labels inside the panel
        low, high = ax.get_ylim()
        ax.set_ylim(low, min(high, 101.0))  # no axis past 100%
        ax.set_title(ds)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"top-1 % ({'; '.join(sorted({r.eval_set for r in mine if r.eval_set}))})", fontsize=8)
        if logx:
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))  # 0.1, 0.3, 1, 3: no overlap
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.3, not 3x10^-1
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def training_curves(runs_dir: Path, out: Path, log=print, pairs: set[tuple[str, str]] | None = None) -> list[Path]:
    """Test accuracy per epoch for each run of the benched `pairs` (all runs when None), one figure per dataset
    (the paper's figs. 4, 5, 10, 11). Runs are found by their config.json, whatever their folder names; the log
    says which were used."""
    curves: dict[str, dict[str, list]] = {}
    runs = [r for r in find_runs(runs_dir) if pairs is None or (r.arch, r.dataset) in pairs]
    skipped = [f"{p.name} (no config.json)" for p in sorted(Path(runs_dir).iterdir())
               if p.is_dir() and not (p / "config.json").is_file()]
    for run in runs:
        lines = read_jsonl(run.path / "metrics.jsonl")
        if lines:
            curves.setdefault(run.dataset, {})[f"{run.arch} ({run.recipe}, {run.path.name})"] = lines
        else:
            skipped.append(f"{run.path.name} (no finished epoch)")
    used = [label for by_arch in curves.values() for label in by_arch]
    if used or skipped:
        log(f"training curves from {plural(len(used), 'run')} in {runs_dir}: {', '.join(used) or 'none'}"
            + (f"; skipped {', '.join(skipped)}" if skipped else ""))
    plt = _plt()
    paths = []
    for ds, by_arch in curves.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, lines in sorted(by_arch.items()):
            ax.plot([m["epoch"] for m in lines], [m["test_acc"] for m in lines], label=label,
                marker="o" if len(lines) < 3 else None)  # a one-epoch run is a point, not an invisible line
        from matplotlib.ticker import MaxNLocator
        epochs = [m["epoch"] for lines in by_arch.values() for m in lines]
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)  # a one-epoch run is a point in a unit-wide axis
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # epochs are whole: no 0.96-1.04 ticks
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, 0.0), min(high, 100.5))  # accuracy stays within 0-100%
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy %")
        ax.set_title(f"{ds}: test accuracy per epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        paths.append(_save(fig, out / f"curves_{ds}.png"))
    return paths


def first_layer_filters(state: dict, title: str, path: Path) -> Path | None:
    """The first convolution's kernels as images (the paper's fig. 12)."""
    conv = next((v for k, v in state.items() if v.ndim == 4), None)
    if conv is None:
        return None
    plt = _plt()
    n = conv.shape[0]
    cols = min(8, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            k = conv[i].float()
            img = k[0] if k.shape[0] == 1 else ((k - k.min()) / (k.max() - k.min() + 1e-8)).permute(1, 2, 0)
            ax.imshow(img.numpy(), cmap="gray" if k.shape[0] == 1 else None, interpolation="nearest")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def render_plots(report: dict, out: Path, runs_dir: Path | None = None, log=print) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[BenchRow] = report["rows"]
    pairs = {(r.arch, r.dataset) for r in rows}
    paths = [p for p in (
        _scatter(rows, "latency_ms_p50", "batch-1 latency p50, ms", "accuracy vs latency",
                 out / "accuracy_vs_latency.png", logx=True),
        _scatter(rows, "onnx_mb", "ONNX file size, MB", "accuracy vs size", out / "accuracy_vs_size.png", logx=True),
    ) if p]
    if runs_dir and Path(runs_dir).is_dir():
        paths += training_curves(Path(runs_dir), out, log, pairs)
    state, title = _trained_cnn(runs_dir) if ("cnn", "mnist") in pairs else (None, "")
    if state is not None:
        p = first_layer_filters(state, title, out / "filters_cnn_mnist.png")
        if p:
            paths.append(p)
    return paths


def _trained_cnn(runs_dir):
    """Weights of a trained MNIST cnn: a run's best, else the shipped ones."""
    if runs_dir and Path(runs_dir).is_dir():
        for run in find_runs(runs_dir):
            if (run.arch, run.dataset) == ("cnn", "mnist") and (run.path / "best.safetensors").is_file():
                return load_file(str(run.path / "best.safetensors")), f"cnn.mnist first-layer filters ({run.path.name})"
    card = get_card("cnn", "mnist")
    if card:
        return load_file(str(weights_dir() / card.file)), "cnn.mnist first-layer filters (shipped weights)"
    return None, ""
