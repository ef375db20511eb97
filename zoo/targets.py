"""Which models a command works on, and where their weights come from: the policy shared by
`zoo export`, `zoo bench` and `zoo train --matrix` (the CLI only parses and prints). Models, training and
export are imported where a function needs them: `zoo bench --onnx` in the light install (no torch, no onnx)
takes exported files through here too.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.core.cards import RunCard
from zoo.core.errors import ZooError
from zoo.core.io import read_json
from zoo.core.sessions import file_metadata
from zoo.core.shipped import get_card, manifest
from zoo.core.sources import Target
from zoo.data import DataOptions, DatasetSpec, get_dataset_spec, register_record

if TYPE_CHECKING:
    from zoo.train import TrainRequest

MATRICES = ("paper",)


def matrix_pairs(matrix: str, only: str | None = None) -> list[tuple[str, str]]:
    """The (arch, dataset) pairs of a named matrix, optionally filtered by a MODEL.DATASET wildcard."""
    from zoo.models import list_pairs

    if matrix not in MATRICES:
        raise ZooError(f"unknown matrix {matrix!r}; choose {', '.join(MATRICES)}")
    pairs = [(a, d) for a, d in list_pairs(paper=True) if fnmatch.fnmatchcase(f"{a}.{d}", only or "*")]
    if not pairs:
        raise ZooError(f"--only {only!r} matches none of the {matrix} pairs (names like resnet20.cifar10)")
    return pairs


def best_run(runs_dir: str | Path, arch: str, dataset: str) -> Path | None:
    """The run folder under runs_dir for arch.dataset (any recipe, any folder name) with the best test accuracy."""
    from zoo.train.rundir import find_runs

    best, best_acc = None, -1.0
    for run in find_runs(Path(runs_dir)):
        if (run.arch, run.dataset) != (arch, dataset) or not (run.path / "best.json").is_file():
            continue
        try:
            acc = RunCard.from_json(read_json(run.path / "best.json", "run card")).top1
        except ZooError:
            continue  # a damaged card: that run cannot be the best one
        if acc is not None and acc > best_acc:
            best, best_acc = run.path, acc
    return best


def trained_or_shipped(arch: str, dataset: str, runs_dir: str | Path | None) -> Target | None:
    """The best trained run under runs_dir (when given), else the shipped weights, else None."""
    run = best_run(runs_dir, arch, dataset) if runs_dir is not None else None
    if run is not None:
        return Target(arch, dataset, str(run))
    if get_card(arch, dataset) is not None:
        return Target(arch, dataset, pretrained=True)
    return None


def export_targets(matrix: str, runs_dir: str | Path) -> tuple[list[Target], list[str]]:
    """Every pair of the matrix with a trained run or shipped weights; notes for the others."""
    targets, notes = [], []
    for arch, ds in matrix_pairs(matrix):
        t = trained_or_shipped(arch, ds, runs_dir)
        if t is None:
            notes.append(f"{arch}.{ds}: no trained run in {runs_dir} and no shipped weights, skipping")
        else:
            targets.append(t)
    return targets, notes


def single_target(arch: str, dataset: str, weights: str | None, random: bool, runs_dir: str | Path) -> Target:
    """MODEL DATASET: --weights, --random, else the shipped weights, else the best trained run."""
    from zoo.models import check_supported

    check_supported(arch, dataset)
    if weights or random:
        return Target(arch, dataset, weights)
    target = trained_or_shipped(arch, dataset, None) or trained_or_shipped(arch, dataset, runs_dir)
    if target is None:
        raise ZooError(f"no shipped weights or trained run ({runs_dir}/) for {arch}.{dataset}; "
                       f"pass --weights, --random, or train it with `zoo train {arch} {dataset}`")
    return target


def bench_targets(arch: str | None = None, dataset: str | DatasetSpec | None = None, *, weights: str | None = None,
                  random: bool = False, onnx: list[str] | None = None, matrix: str | None = None,
                  runs_dir: str | Path = "runs") -> list[Target]:
    """What `zoo bench` measures: exported files, one pair, or the paper's pairs (trained runs first with
    --matrix, else the shipped weights; --random fills the pairs that have neither). `dataset`: a name, a
    folder's path or a DatasetSpec."""
    if isinstance(dataset, DatasetSpec):
        dataset = get_dataset_spec(dataset, weights).name  # registered: the stages below find it by its name
    if onnx:
        metas = [(f, checked_onnx(f)) for f in onnx]
        for f, m in metas:
            if m.get("layout") == "NHWC":
                raise ZooError(f"{f} is a self-contained image-input graph (uint8 pixels in); bench measures the "
                               f"float graph: export it without --image-input")
        return [Target(m["model"], m["dataset"], onnx=f) for f, m in metas]
    if arch or dataset:
        if not (arch and dataset):
            raise ZooError("zoo bench takes MODEL DATASET together (e.g. zoo bench resnet20 cifar10)")
        return [single_target(arch, dataset, weights, random, runs_dir)]
    targets = []
    for a, d in matrix_pairs(matrix or "paper"):
        t = trained_or_shipped(a, d, runs_dir if matrix else None)
        if t is not None or random:
            targets.append(t or Target(a, d))
    if not targets:
        raise ZooError(f"nothing to bench: no shipped weights ({len(manifest())}) or trained runs in {runs_dir}/; "
                       f"train with `zoo train`, or pass --random to bench latency and size with random weights")
    return targets


def checked_onnx(path: str | Path) -> dict:
    """An exported file's metadata, checked: by onnx.checker, its graph's hash and its shapes where onnx is
    installed (zoo.export.check_onnx); in the light install, as zoo predict checks a file (onnxruntime loads it,
    its metadata is held to its graph). A folder dataset's spec in the file is registered by its name."""
    try:
        from zoo.export import check_onnx
    except ImportError:  # no onnx: the light install
        meta = file_metadata(path)
        register_record(meta.get("dataset_spec"))
        get_dataset_spec(str(meta["dataset"]))  # a dataset zoo does not know is said here
        return meta
    return check_onnx(path)


@dataclass(frozen=True)
class MatrixJob:
    arch: str
    dataset: str
    out: Path
    resume: bool  # an interrupted run is continued
    skip: str | None = None  # why this pair is not trained now


def train_plan(matrix: str, only: str | None, recipe: str, epochs: int | None, runs_root: str | Path,
               data: DataOptions) -> list[MatrixJob]:
    """Every pair of the matrix: finished runs and missing datasets are skipped, interrupted ones resumed."""
    from zoo.data.datasets import dataset_available
    from zoo.train import get_recipe
    from zoo.train.rundir import default_out, finished, read_last

    jobs = []
    for arch, ds in matrix_pairs(matrix, only):
        cfg = get_recipe(recipe, get_dataset_spec(ds), arch, epochs=epochs)
        out = Path(runs_root) / default_out(arch, ds, recipe).name
        last = read_last(out)
        skip = None
        if finished(last, cfg.epochs):
            skip = f"done ({last['metrics'].get('test_acc', float('nan')):.2f}%), skipping"
        elif not dataset_available(ds, data):
            skip = f"skipped, dataset not found (see `zoo train {arch} {ds}` for where it looks)"
        jobs.append(MatrixJob(arch, ds, out, last is not None, skip))
    return jobs


def matrix_requests(req: TrainRequest, matrix: str, only: str | None = None):
    """`zoo train --matrix`: each pair of the matrix as (job, its request); a finished pair, or one whose dataset
    is missing, has job.skip and no request. The request's options (recipe, default `paper`; epochs; --set ...)
    apply to every pair, each in its own folder under req.out (default runs/)."""
    recipe = req.recipe or "paper"
    for job in train_plan(matrix, only, recipe, req.epochs, req.out or "runs", req.data):
        yield job, None if job.skip else replace(req, model=job.arch, dataset=job.dataset, recipe=recipe,
                                                 out=job.out, resume=job.resume)
