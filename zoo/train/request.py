"""Resolving a TrainRequest (zoo.train.options) once, for `zoo train` and `zoo.train.train` alike: the pair, the
start (--init auto measured), the dataset as training reads it and the recipe with its overrides; then the run.
So the command line and the Python API record the same config.json for the same options.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from zoo.core.errors import ZooError, plural
from zoo.data import DataOptions, DatasetSpec, FolderOptions, find_dataset
from zoo.data.resolve import same_path
from zoo.train.dataset import resolve_start
from zoo.train.options import TrainRequest
from zoo.train.recipes import TrainConfig, default_recipe, get_recipe
from zoo.train.run import read_config, recipe_from, train_resolved
from zoo.train.runtime import RuntimeRequest


class Resolved(NamedTuple):
    arch: str
    spec: DatasetSpec
    recipe: TrainConfig
    init: str | None  # --init auto: the start it chose


def resolve(req: TrainRequest, log=print) -> Resolved:
    """The pair, the dataset spec, the recipe and the start: from --config, from the run being resumed, or
    from the named (else the default) recipe; the overrides apply over each."""
    record = req.config or (req.out if req.resume and req.out and (Path(req.out) / "config.json").is_file()
                            else None)
    if record:
        return _replay(req, record, log)
    if not (req.model and req.dataset):
        raise ZooError("zoo train needs MODEL DATASET (e.g. zoo train resnet20 cifar10), --config FILE, "
                       "--resume --out RUN_FOLDER, or --matrix paper")
    init, spec = resolve_start(req.model, req.dataset, req.init, req.folder, log)
    if isinstance(req.recipe, TrainConfig):
        cfg = _changed(req.recipe, req)
    else:
        cfg = get_recipe(req.recipe or _default(spec, init, log), spec, req.model, **req.changes())
    return Resolved(req.model, spec, cfg, init)


def _replay(req: TrainRequest, record, log) -> Resolved:
    arch, dataset, fields, started = read_config(record)
    if (req.model or arch, _recorded_name(req.dataset, dataset)) != (arch, dataset):
        raise ZooError(f"{record} is a run of {arch} on {dataset}, not {req.model} on {req.dataset}; "
                       f"drop MODEL DATASET or choose another --out")
    if isinstance(req.recipe, str) and req.recipe != fields.get("recipe"):
        fields = {"recipe": req.recipe}  # another named recipe: start from it, not from the record
    cfg = _changed(req.recipe, req) if isinstance(req.recipe, TrainConfig) else \
        recipe_from(fields, dataset, arch, **req.changes())
    init = req.init
    if init == "auto" and req.resume:  # the start that run chose
        init = (started or {}).get("arg")
    init, spec = resolve_start(arch, dataset, init, req.folder, log)
    return Resolved(arch, spec, cfg, init)


def _changed(cfg: TrainConfig, req: TrainRequest) -> TrainConfig:
    """A recipe given whole (from Python) with the request's overrides."""
    return replace(cfg, **{k: v for k, v in req.changes().items() if v is not None}).validate()


def _default(spec: DatasetSpec, init: str | None, log) -> str:
    name, why = default_recipe(spec, init)
    if spec.source is not None:  # a folder: say which recipe and why (the study's datasets take `paper`)
        log(f"zoo: recipe {name} ({why}; --recipe to choose another)")
    return name


def run(req: TrainRequest, progress: bool | None = None, log=print) -> dict:
    """Resolve, then train (zoo.train.run.train_resolved); the run summary."""
    r = resolve(req, log)
    return train_resolved(r.arch, r.spec, r.recipe, req.runtime, out=req.out, resume=req.resume, init=r.init,
                          data=req.data, save_every_s=req.save_every * 60 if req.save_every > 0 else None,
                          progress=progress, tensorboard=req.tensorboard, head=req.head)


def _recorded_name(given, recorded: str) -> str:
    """The dataset argument as a run records it: a folder given by its path is the folder dataset of that path."""
    if isinstance(given, DatasetSpec):
        return given.name
    spec = find_dataset(recorded)  # read_config registered the run's folder dataset
    if given and spec is not None and spec.source is not None and same_path(given, spec.source.path):
        return recorded
    return given or recorded


def train(arch: str, dataset: str | DatasetSpec, recipe: str | TrainConfig | None = None,
          runtime: RuntimeRequest | None = None, *, out: str | os.PathLike | None = None, resume: bool = False,
          init: str | None = None, data: DataOptions | None = None, folder: FolderOptions | None = None,
          save_every_s: float | None = TrainRequest.save_every * 60, progress: bool | None = None,
          tensorboard: bool = False, head: str = TrainRequest.head, log=print, **overrides) -> dict:
    """Train `arch` on `dataset` with `recipe` (a name or a TrainConfig; default: default_recipe(): `paper` for
    the study's datasets, `finetune` for a folder with `init`, `fast` for one without), any recipe field
    overridden by keyword (`epochs=2, lr=0.05`); returns the final summary (also written to OUT/summary.json).
    The same resolution as `zoo train` with the same options (TrainRequest).

    resume=True continues from OUT's newest checkpoint (same recipe required). Besides the checkpoint at every
    epoch's end, one is saved mid-epoch whenever `save_every_s` seconds have passed since the last (None: epoch
    ends only; 0: after every step), so a kill -9 loses at most that much of a long epoch.

    `init` starts from trained weights instead of a random initialization (fine-tuning): "pretrained" (zoo's
    shipped weights for this pair), "pretrained:DATASET" (this architecture's shipped weights for another
    dataset; tensors whose shape differs, such as the classifier, start fresh), "auto" (for a folder: the
    shipped weights whose linear probe on its images is best), or a run folder, checkpoint folder or
    .safetensors file. The classifier's rows follow the class names (`head`: "map" by name, "keep" row for row,
    "fresh"), the first convolution adapts to the channels (zoo.models.transfer), and the run evaluates once
    before training (epoch 0 in metrics.jsonl). The source, its sha256 and what was mapped go into config.json
    and every checkpoint's card.
    """
    if save_every_s is not None and not save_every_s >= 0:
        raise ZooError(f"save interval must be >= 0 seconds, got {save_every_s}")
    req = TrainRequest(arch, dataset, recipe=recipe, out=out, resume=resume, init=init, head=head,
                       tensorboard=tensorboard, save_every=_minutes(save_every_s), overrides=overrides,
                       runtime=runtime or RuntimeRequest(), folder=folder or FolderOptions(),
                       data=data or DataOptions())
    return run(req, progress, log)


def _minutes(save_every_s: float | None) -> float:
    """train()'s interval in TrainRequest's minutes (0 there: epoch ends only); 0 s, every step, stays positive."""
    return 0.0 if save_every_s is None else max(save_every_s, 1e-12) / 60


def outcome(s: dict) -> tuple[str | None, str]:
    """(a note, the result line) that `zoo train` prints for a run's summary: the best accuracy, against the
    --init weights and the linear probe of their features when the run started from weights."""
    done = f"already finished its {plural(s['epochs'], 'epoch')}; " if s.get("already_finished") else ""
    start, probe, best = s.get("init_test_acc"), s.get("init_probe_acc"), s["best_test_acc"]
    versus = ""
    if start is not None:
        versus = f" ({_points(best - start)} on the --init weights' {start:.2f}%" + (
            f", {_points(best - probe)} on a linear probe of their features' {probe:.2f}%)" if probe is not None
            else ")")
    note, near = None, s.get("within_noise")
    if start is not None and start >= best:
        beat = "" if not near else (
            f" by more than their noise (epoch {near['epoch']}'s {near['test_acc']:.2f}% got {near['vs_start'][0]} "
            f"right that they got wrong and {near['vs_start'][1]} the other way round: too few to tell apart)")
        note = (f"zoo: note: no epoch improved on the --init weights on these held-out images{beat}, so the run "
                f"keeps them as its best (they may already fit this data): try --freeze-backbone, which trains the "
                f"classifier alone, or a lower --lr")
    return note, f"{s['arch']}.{s['dataset']}: {done}best test accuracy {best:.2f}%{versus} -> {s['out']}"


def _points(diff: float) -> str:
    """+1.25 pt; a difference that rounds to nothing is +0.00, never -0.00."""
    return f"{round(diff, 2) + 0.0:+.2f} pt"
