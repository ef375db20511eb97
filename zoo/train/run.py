"""`zoo train`: one run = model + dataset + recipe -> checkpoints, metrics.jsonl, best weights.

    zoo train resnet20 cifar10                      # paper recipe, fastest path for this machine
    torchrun --nproc-per-node 2 -m zoo.cli train resnet20 cifar10 --out runs/r20   # data-parallel

train_resolved() checks everything and loads the data, then a Run does the work (zoo.train.request resolves
first):

    run = Run(...); run.restore()                   # from OUT's newest checkpoint, when resuming
    for epoch: run.train_epoch(); run.evaluate(); run.save(...)
    run.summary()
"""

from __future__ import annotations

import os
import time
import tomllib
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import save

from zoo.core.cards import SEAL, RunCard, check_seal, sealed
from zoo.core.env import OthersWatch, machine, now
from zoo.core.errors import ZooError, plural
from zoo.core.io import atomic_write_json, check_can_create, read_json
from zoo.core.shipped import sha256_bytes
from zoo.core.sources import init_source
from zoo.core.version import __version__
from zoo.core.tta import Tta
from zoo.core.state import load_state_dict_checked, load_state_dict_transfer, state_dict_of
from zoo.data import (BatchLoader, DataOptions, DatasetSpec, find_dataset, get_dataset_spec, keep_sample,
                      load_split, register_record, spec_record)
from zoo.models import check_supported, classifier, create_model, with_tta
from zoo.models.stats import num_params
from zoo.models.transfer import HEAD_MODES, transfer_state
from zoo.train import rundir
from zoo.train.averagers import averagers
from zoo.train.loop import (EpochSums, Interrupted, beyond_noise, build_optimizer, evaluate, pct, train_one_epoch,
                             versus)
from zoo.train.probe import fit_probe, frozen_features, subsample
from zoo.train.progress import EpochProgress
from zoo.train.recipes import TrainConfig, get_recipe, lr_at
from zoo.train.fastpath import BUSY, FastPath, choose
from zoo.train.runtime import Dist, Runtime, RuntimeRequest, StopFlag, init_dist, resolve_runtime, stop_on_signals

EVAL_BATCH = 1000  # images per evaluation forward pass
SLOW = 0.6  # an epoch below this share of the probe's images/s makes the run measure its path again


class Run:
    """One training run in OUT: the model, its optimizer and loaders, and where the run stands."""

    def __init__(self, arch: str, spec: DatasetSpec, cfg: TrainConfig, rt: Runtime, dist: Dist, out: Path,
                 data: tuple, init: tuple[dict | None, dict | None] = (None, None),
                 save_every_s: float | None = 600.0, tensorboard: bool = False):
        self.arch, self.spec, self.cfg, self.rt, self.dist, self.out = arch, spec, cfg, rt, dist, Path(out)
        self.save_every_s = save_every_s
        torch.manual_seed(cfg.seed)
        self.model = create_model(arch, spec)
        self.whitening = _fit_whitening(self.model, data[0][0], spec) if init[0] is None else None
        self.init = self._load_init(*init)
        if init[0] is not None and cfg.probe and self.init.get("fresh") and not cfg.freeze_backbone:
            self._fit_head(*data[0])
        if cfg.freeze_backbone:
            self._freeze_backbone()
        self.model = self.model.to(rt.device)
        if rt.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.opt = build_optimizer(self.model, cfg)
        self.averagers = averagers(self.model, cfg.ema, cfg.lookahead)  # EMA, Lookahead (zoo.train.averagers)
        self.n_params = num_params(self.model)
        self.epoch, self.sums, self.gen_state, self.best, self.last_metrics = 0, EpochSums(), None, -1.0, {}
        # while the --init weights are the best: their per-image correctness on the held-out images, which an epoch
        # must beat by more than noise to replace them (loop.beyond_noise); one process only
        self.start_right: torch.Tensor | None = None
        self.within_noise: dict | None = None  # the best epoch that beat the start by less than noise
        common = dict(mean=spec.mean, std=spec.std, device=torch.device(rt.device), channels_last=rt.channels_last,
                      rank=dist.rank, world_size=dist.world_size)
        (train_x, train_y), (test_x, test_y) = data
        self.train_loader = BatchLoader(train_x, train_y, cfg.batch_size // dist.world_size, shuffle=True,
                                        augment=cfg.augment, seed=cfg.seed, **common)
        self.test_loader = BatchLoader(test_x, test_y, EVAL_BATCH, **common)
        self.net = self.model  # wrapped by start(): DDP, torch.compile
        self._t_epoch = self._saved_at = time.perf_counter()
        self.tensorboard, self.tb = tensorboard and dist.main, None
        self._reprobed, self._epochs_run = False, 0

    def _load_init(self, state: dict | None, record: dict | None) -> dict | None:
        """Fine-tuning: the source's tensors, the classifier's rows mapped by class name and the first
        convolution adapted to the channels (zoo.models.transfer); tensors that still differ start fresh."""
        if state is None:
            return record
        state, said = transfer_state(self.model, state, _source_classes(record), self.spec.class_names,
                                     record.get("head", "map"), record.get("dataset") or "")
        fresh = said.started_fresh + load_state_dict_transfer(self.model, state, record["source"])
        if self.dist.main:
            print(f"zoo: --init {record['arg']}: {said.line()}", flush=True)
            if fresh:
                print(f"zoo: --init {record['arg']}: {plural(len(fresh), 'tensor')} start fresh: {', '.join(fresh)}",
                      flush=True)
        return {**record, **said.record(), "reinitialized": fresh}

    def _fit_head(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """LP-FT's first half: the classifier fitted to the training images on the frozen --init features."""
        t0 = time.perf_counter()
        pick = subsample(len(labels), PROBE_IMAGES, self.cfg.seed)
        fit_probe(self.model, images[pick], labels[pick], self.spec)
        self.init["probe"] = "fitted"
        if self.dist.main:
            classes = plural(self.spec.num_classes, "class", "classes")
            print(f"zoo: --init {self.init['arg']}: the classifier fitted to your {classes} "
                  f"on the frozen features first (a linear probe, {time.perf_counter() - t0:.1f} s)", flush=True)

    def probe_accuracy(self) -> float:
        """Top-1 on the held-out images of a linear probe of the --init weights (their classifier fitted alone, on
        a copy): the yardstick a fine-tune must beat."""
        import copy

        train_x, train_y = self.train_loader.images, self.train_loader.labels
        test_x, test_y = self.test_loader.images, self.test_loader.labels
        pick = subsample(len(train_y), PROBE_IMAGES, self.cfg.seed)
        model = copy.deepcopy(self.model).cpu().float().to(memory_format=torch.contiguous_format)
        probe = fit_probe(model, train_x[pick], train_y[pick], self.spec)
        feats, _ = frozen_features(model, test_x, self.spec)
        return probe.accuracy(feats, test_y.long())

    @property
    def evaluated_model(self) -> torch.nn.Module:
        """What is evaluated, checkpointed as the run's weights and exported: the average when ema is on."""
        return self._read(self.model)

    @property
    def evaluated(self) -> torch.nn.Module:
        return self._read(self.net)

    def _read(self, model: torch.nn.Module) -> torch.nn.Module:
        for a in self.averagers:
            model = a.evaluated(model)
        return model

    def _freeze_backbone(self) -> None:
        """Linear probing: only the classifier learns; the rest keeps its weights and, in eval mode whenever the
        model trains, its BatchNorm statistics."""
        head = classifier(self.model)
        head_params = {id(p) for p in head.parameters()}
        for p in self.model.parameters():
            p.requires_grad_(id(p) in head_params)
        backbone = [m for m in self.model.modules() if m is not head and not any(True for _ in m.children())]
        train = self.model.train

        def train_head_only(mode: bool = True):
            train(mode)
            for m in backbone:
                m.train(False)
            return self.model

        self.model.train = train_head_only  # type: ignore[method-assign]

    def restore(self) -> None:
        """Continue from OUT's newest checkpoint: weights, optimizer, RNG, epoch, the epoch's running sums."""
        weights, card, state = rundir.load_checkpoint(self.out)
        check_same_recipe(self.out, card.recipe, self.cfg)
        self.last_metrics = card.metrics  # the summary's "final" if no epoch is left to run
        for a in self.averagers:  # each takes back its own; the weights training resumes from come back
            weights = a.restore(state, weights, str(self.out))
        load_state_dict_checked(self.model, weights, source=str(self.out))
        self.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.best = state["epoch"], state["best"]
        self.start_right, self.within_noise = state.get("start_right"), state.get("within_noise")
        self.sums = EpochSums(**state["sums"])
        self.gen_state = state.get("loader_generator")

    def start(self) -> None:
        """Record the run's config and wrap the model for execution; after restore(), before training."""
        if self.dist.main:
            rundir.reconcile(self.out, self.epoch)
            atomic_write_json(self.out / "config.json", sealed({
                "arch": self.arch, "dataset": self.spec.name, "recipe": self.cfg.to_dict(),
                "runtime": self.rt.to_dict(), **({"init": self.init} if self.init else {}),
                **({"whitening": self.whitening} if self.whitening else {}),
                **({"dataset_spec": spec_record(self.spec)} if self.spec.source else {})}))
        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP
            dev = torch.device(self.rt.device)
            self.net = DDP(self.model, device_ids=[dev.index] if dev.type == "cuda" else None)
        if self.rt.compile:
            self.net = torch.compile(self.net)

    def card(self, metrics: dict) -> RunCard:
        return RunCard(self.arch, self.spec.name, self.epoch, self.sums.step, "", self.n_params, metrics,
                       self.cfg.to_dict(), self.rt.to_dict(), self.init,
                       {"torch": torch.__version__, "zoo": __version__, "machine": machine(), "date": now()},
                       dataset_spec=spec_record(self.spec))

    def save(self, tag: str, metrics: dict | None = None, best: bool = False) -> Path:
        """Checkpoint the run as it stands (mid-epoch: with the loader's RNG state and this epoch's wall time)."""
        sums = self.sums
        state = {"optimizer": self.opt.state_dict(), "torch_rng": torch.get_rng_state(), "epoch": self.epoch,
                 "best": self.best, "start_right": self.start_right, "within_noise": self.within_noise}
        if metrics is None:  # mid-epoch
            sums = replace(sums, wall=sums.wall + time.perf_counter() - self._t_epoch)
            state["loader_generator"] = self.train_loader.generator.get_state()
        state["sums"] = dict(sums.__dict__)
        for a in self.averagers:
            state.update(a.state(self.model))
        path = rundir.save_checkpoint(self.out, tag, state_dict_of(self.evaluated_model), self.card(metrics or {}),
                                      state, best=best)
        self._saved_at = time.perf_counter()
        return path

    def save_mid_epoch(self) -> Path:
        return self.save(f"epoch-{self.epoch:04d}-step{self.sums.step:06d}")

    def train_epoch(self, stop: StopFlag, bar: EpochProgress) -> EpochSums:
        """Train to the end of the current epoch (from a mid-epoch checkpoint's step when resumed)."""
        self.train_loader.set_epoch(self.epoch)
        self._t_epoch = time.perf_counter()
        bar.start_epoch(self.epoch, self.cfg.epochs, len(self.train_loader), self.sums.step)

        steps = len(self.train_loader)

        def on_step(sums: EpochSums, lr: float) -> None:
            for a in self.averagers:
                a.step(self.model, self.epoch * steps + sums.step, self.cfg.epochs * steps)
            bar.step(sums, lr, self.dist.world_size)
            due = self.save_every_s is not None and time.perf_counter() - self._saved_at >= self.save_every_s
            if self.dist.main and due and sums.step < len(self.train_loader):
                self.save_mid_epoch()

        try:
            train_one_epoch(self.net, self.train_loader, self.opt, self.cfg, self.epoch, precision=self.rt.precision,
                            sums=self.sums, generator_state=self.gen_state,
                            should_stop=lambda: self.dist.any(stop.requested), on_step=on_step,
                            all_finite=self._all_finite)
        except Interrupted:
            if self.dist.main:
                self.save_mid_epoch()
            raise Interrupted(f"interrupted ({stop.signal.name}) at epoch {self.epoch + 1} step {self.sums.step}; "
                              f"saved; continue with zoo train --resume --out {self.out}", stop.signal) from None
        self.gen_state = None
        if self.epoch + 1 == self.cfg.epochs:
            for a in self.averagers:
                a.end(self.model)  # Lookahead: the run ends on the slow weights
        return self.sums

    def _all_finite(self, loss: torch.Tensor) -> bool:
        finite = torch.isfinite(loss).float().reshape(1)
        return bool(self.dist.all_sum(finite).item() == self.dist.world_size)

    def evaluate(self) -> dict:
        """The finished epoch's metrics line: train figures from the running sums, test figures measured now."""
        tl, tc, tn = self.dist.all_sum(self.sums.as_tensor()).tolist()
        tta = self.cfg.tta if self.cfg.tta_each_epoch or self.epoch + 1 >= self.cfg.epochs else ""
        model = with_tta(self.evaluated, tta)
        right = [] if self.start_right is not None else None
        el, ec, en = self.dist.all_sum(torch.tensor(evaluate(model, self.test_loader, self.rt.precision, right),
                                                    dtype=torch.float64)).tolist()
        vs = {"vs_start": list(versus(self.start_right, torch.cat(right)))} if right else {}
        elapsed = time.perf_counter() - self._t_epoch
        step_time = self.sums.seconds if self.dist.world_size == 1 else elapsed
        steps = len(self.train_loader)
        lrs = [lr_at(self.cfg, self.epoch + i / steps) for i in range(steps)]  # what the steps used
        return {"epoch": self.epoch + 1, "lr": lr_at(self.cfg, self.epoch), "lr_min": min(lrs), "lr_max": max(lrs),
                "train_loss": tl / tn,
                "train_acc": pct(tc, tn), "test_loss": el / en, "test_acc": pct(ec, en),
                "images_per_s": tn / max(step_time, 1e-9), "wall_s": self.sums.wall + elapsed,
                **({"test_tta": Tta.of(tta).label} if self.cfg.tta else {}), **vs}

    def end_epoch(self, metrics: dict) -> None:
        """Log the epoch, then checkpoint it (a kill between the two leaves a line restore() drops)."""
        is_best = metrics["test_acc"] > self.best
        if is_best and "vs_start" in metrics and not beyond_noise(*metrics["vs_start"]):
            is_best = False  # better than the start by less than the held-out images' noise: the start stays
            if metrics["test_acc"] > (self.within_noise or {}).get("test_acc", -1.0):
                self.within_noise = {"epoch": metrics["epoch"], "test_acc": metrics["test_acc"],
                                     "vs_start": metrics["vs_start"]}
        if is_best:
            self.best, self.start_right = metrics["test_acc"], None
        self.epoch, self.sums, self.last_metrics = self.epoch + 1, EpochSums(), metrics
        if self.dist.main:
            rundir.append_metrics(self.out, metrics)
            self._log_tensorboard(metrics)
            self.save(f"epoch-{self.epoch:04d}", metrics, best=is_best)

    def _log_tensorboard(self, metrics: dict) -> None:
        """The metrics line's figures as TensorBoard scalars at step = epoch (OUT/tensorboard). A resumed run
        purges what a killed one logged past its last checkpoint, so the curves match metrics.jsonl."""
        if not self.tensorboard:
            return
        if self.tb is None:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(self.out / "tensorboard"), purge_step=metrics["epoch"])
        for k, v in metrics.items():
            if k != "epoch" and isinstance(v, (int, float)):
                self.tb.add_scalar(k, v, metrics["epoch"])
        self.tb.flush()

    def evaluate_start(self) -> dict:
        """Epoch 0: the --init weights before any training step, on the test split (what they bring)."""
        t0 = time.perf_counter()
        right = [] if self.dist.world_size == 1 else None
        el, ec, en = self.dist.all_sum(torch.tensor(evaluate(with_tta(self.evaluated, self.cfg.tta), self.test_loader,
                                                             self.rt.precision, right), dtype=torch.float64)).tolist()
        self.start_right = torch.cat(right) if right else None
        probe = self.probe_accuracy() if self.dist.world_size == 1 else None  # one process: the probe is cheap
        return {"epoch": 0, "lr": 0.0, "test_loss": el / en, "test_acc": pct(ec, en),
                **({"probe_acc": probe} if probe is not None else {}), "wall_s": time.perf_counter() - t0}

    def _start_line(self) -> None:
        """With --init, epoch 0 once: before the first step of a run that starts from trained weights."""
        if not (self.init and self.init.get("sha256")) or self.epoch or self.sums.step:
            return
        metrics = self.evaluate_start()
        self.best = metrics["test_acc"]  # the start is a candidate: a run never keeps weights worse than it began
        if self.dist.main:
            rundir.truncate_metrics(self.out, -1)  # nothing is committed yet: an interrupted start's line goes
            rundir.append_metrics(self.out, metrics)
            self._log_tensorboard(metrics)
            self.save("epoch-0000", metrics, best=True)
            one_pass = ", one pass" if self.cfg.tta else ""  # epoch 0 is read with the recipe's test-time augmentation
            probe = f" (a linear probe of their features{one_pass}: {metrics['probe_acc']:.2f}%)" \
                if "probe_acc" in metrics else ""
            print(f"epoch 0 (the --init weights, before training): test accuracy {metrics['test_acc']:.2f}%{probe}",
                  flush=True)

    def fit(self, show_progress: bool | None = None) -> dict:
        t_run = time.perf_counter()
        self._start_line()
        with stop_on_signals() as stop, EpochProgress(enabled=self.dist.main and show_progress is not False) as bar:
            while self.epoch < self.cfg.epochs:
                with OthersWatch() as watch:
                    self.train_epoch(stop, bar)
                metrics = self.evaluate()
                self.end_epoch(metrics)
                bar.end_epoch(metrics)
                self._epochs_run += 1
                if self.epoch < self.cfg.epochs and self.dist.any(stop.requested):  # a signal in the epoch's
                    # last step or its evaluation: the epoch is saved, the next is not begun
                    raise Interrupted(f"interrupted ({stop.signal.name}) after epoch {self.epoch}; saved; continue "
                                      f"with zoo train --resume --out {self.out}", stop.signal)
                self.check_speed(metrics["images_per_s"], watch.share)
        if self.tb is not None:
            self.tb.close()
        return self.summary(time.perf_counter() - t_run)

    def check_speed(self, images_per_s: float, others: float) -> None:
        """The fast path's self-check, at an epoch boundary, once per run: when the epoch ran below SLOW of what
        the probe measured for this path, or the probe itself was provisional (a busy machine), and others left
        the machine alone this epoch, measure again and switch if another path wins. Results stay
        bit-identical across a resume only within one path: a switch is a new path from that epoch on."""
        rt = self.rt
        if rt.probed <= 0 or self._reprobed or self.dist.world_size > 1 or self.epoch >= self.cfg.epochs \
                or others > BUSY or (rt.compile and self._epochs_run == 1):  # that epoch's steps hold the compile
            return
        slow = images_per_s < SLOW * rt.probed
        if not (slow or rt.provisional):
            return
        self._reprobed = True
        print(f"fast path: epoch {self.epoch} ran at {images_per_s:.0f} img/s, "
              + (f"below {SLOW:.0%} of the {rt.probed:.0f} probed" if slow else "and the probe was provisional")
              + "; measuring again", flush=True)
        new = choose(self.arch, self.spec.name, rt.device, self.cfg.batch_size, self.cfg.epochs * self.spec.train_size,
                     reprobe=True)
        if (new.precision, new.compile, new.channels_last) != (rt.precision, rt.compile, rt.channels_last):
            print(f"fast path: switching to {new.label} from epoch {self.epoch + 1}", flush=True)
            self.use_path(new)
        self.rt = replace(self.rt, probed=new.images_per_s, provisional=new.provisional)

    def use_path(self, fp: FastPath) -> None:
        """Train on from here with another precision / layout / compilation (same weights and optimizer)."""
        self.rt = replace(self.rt, precision=fp.precision, compile=fp.compile, channels_last=fp.channels_last)
        self.model.to(memory_format=torch.channels_last if fp.channels_last else torch.contiguous_format)
        for loader in (self.train_loader, self.test_loader):
            loader.channels_last = fp.channels_last
        self.net = torch.compile(self.model) if fp.compile else self.model

    def summary(self, wall_s: float) -> dict:
        summary = {"arch": self.arch, "dataset": self.spec.name, "out": str(self.out), "epochs": self.cfg.epochs,
                   "best_test_acc": self.best, "init_test_acc": rundir.start_accuracy(self.out),
                   "init_probe_acc": rundir.start_metrics(self.out).get("probe_acc"),
                   **({"within_noise": self.within_noise} if self.within_noise and self.start_right is not None
                      else {}),
                   "final": self.last_metrics, "rank": self.dist.rank,
                   "world_size": self.dist.world_size, "runtime": self.rt.to_dict(), "wall_s_this_process": wall_s,
                   # every rank: DDP keeps the weights identical
                   "weights_sha256": sha256_bytes(save(state_dict_of(self.evaluated_model)))}
        if self.dist.main:
            atomic_write_json(self.out / "summary.json", summary)
        return summary


def _flag(key: str, value) -> str:
    """A recipe field as the option that sets it: --epochs 1, --set augment=crop,flip."""
    if key in ("epochs", "lr", "seed", "batch_size", "recipe"):
        return f"--{key.replace('_', '-')} {value}"
    return f"--set {key}={','.join(map(str, value)) if isinstance(value, (list, tuple)) else value}"


def check_same_recipe(out: Path, started: dict, cfg: TrainConfig) -> None:
    """A run resumes only with the recipe it was started with; the refusal names both, as options."""
    asked, defaults = cfg.to_dict(), TrainConfig().to_dict()
    diff = [k for k in asked if started.get(k, defaults[k]) != asked[k]]  # a field newer than the run: its default
    if diff:
        was = " ".join(_flag(k, started.get(k)) for k in diff)
        now = " ".join(_flag(k, asked[k]) for k in diff)
        raise ZooError(f"this run ({out}) was started with {was}, not {now}; resume it with its own recipe "
                       f"(zoo train --resume --out {out}) or start another --out")


CONFIG_KEYS = {"arch", "model", "dataset", "recipe", "runtime", "init", "dataset_spec", "whitening", SEAL}


def read_config(path: str | os.PathLike) -> tuple[str, str, dict, dict | None]:
    """(arch, dataset, recipe fields, init record) of a run's config.json, or of a TOML/JSON file of that shape
    (`zoo train --config`); run folders written before the `arch` key hold `model`."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    if p.suffix == ".toml":
        try:
            cfg = tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:  # ValueError: TOMLDecodeError and a file that is not UTF-8
            raise ZooError(f"cannot read run config {p} ({str(e).splitlines()[0]}); TOML files are UTF-8") from None
    else:
        cfg = read_json(p, "run config")
        check_seal(cfg, str(p))
    arch = cfg.get("arch") or cfg.get("model") if isinstance(cfg, dict) else None
    if not arch or not cfg.get("dataset") or not isinstance(cfg.get("recipe", {}), dict):
        raise ZooError(f"{p} is not a zoo run config (needs arch, dataset and a recipe table)")
    unknown = sorted(set(cfg) - CONFIG_KEYS)
    if unknown:
        raise ZooError(f"{p}: unknown key(s) {', '.join(unknown)}; a run config holds {', '.join(sorted(CONFIG_KEYS))}")
    register_record(cfg.get("dataset_spec"))  # a run on a folder of images: its dataset as it was trained
    return arch, cfg["dataset"], cfg.get("recipe", {}), cfg.get("init")


def recipe_from(fields: dict, dataset: str, arch: str, **overrides) -> TrainConfig:
    """A recorded recipe (all its fields) with overrides applied: what `--config` and `--resume` replay."""
    fields = {**fields, **{k: v for k, v in overrides.items() if v is not None}}
    return get_recipe(fields.pop("recipe", "paper"), get_dataset_spec(dataset), arch, **fields)


def train_resolved(arch: str, spec: DatasetSpec, cfg: TrainConfig, runtime: RuntimeRequest, *,
                   out: str | os.PathLike | None, resume: bool, init: str | None, data: DataOptions,
                   save_every_s: float | None, progress: bool | None, tensorboard: bool, head: str) -> dict:
    """Train a resolved request (zoo.train.request: the pair, the spec, the recipe, the start): checks
    everything, loads the data, then a Run does the work; the final summary."""
    dataset = spec.name
    cfg = cfg.validate()
    req = runtime.validate()
    check_supported(arch, spec)  # unknown / unsupported model -> one-line error before anything is written
    dist = init_dist(req.device)
    if cfg.batch_size % dist.world_size:
        raise ZooError(f"batch size {cfg.batch_size} does not split over {dist.world_size} processes; "
                       f"choose a multiple of {dist.world_size}")
    out = check_can_create(out or rundir.default_out(arch, dataset, cfg.recipe))
    last = _last_commit(out, resume)
    if not resume and last is not None:
        raise ZooError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    init_src = _resolve_init(init, arch, spec.name, out if resume and last is not None else None, head)
    if cfg.freeze_backbone and init_src[1] is None:
        raise ZooError("--freeze-backbone trains the classifier alone on top of trained weights: add --init "
                       "(e.g. --init pretrained:mnist)")
    if tensorboard:
        _check_tensorboard()
    if resume and last is not None:  # before any data loading or probing
        check_same_recipe(out, read_config(out)[2], cfg)
    if resume and rundir.finished(last, cfg.epochs) and (out / "summary.json").is_file():
        # Nothing to train: keep the summary (and skip the fast-path probe and the data loading).
        return {**read_json(out / "summary.json", "run summary"), "already_finished": True}
    # Data before the fast-path probe (a missing dataset is said at once) and before the lock (nothing is left).
    data = replace(data, download=data.download and dist.main)
    splits = (load_split(dataset, "train", data), load_split(dataset, "test", data))
    rt = resolve_runtime(req, arch, dataset, cfg.batch_size // dist.world_size, cfg.epochs * spec.train_size,
                         dist.world_size)
    with rundir.run_lock(out) if dist.main else nullcontext():
        run = Run(arch, spec, cfg, rt, dist, out, splits, init_src, save_every_s, tensorboard)
        if spec.source is not None and dist.main:  # so that the run folder works without the image folder
            keep_sample(out, splits)
        if resume and last is not None:
            run.restore()
        run.start()
        return run.fit(progress)


def _source_classes(record: dict) -> tuple[str, ...] | None:
    """The class names of the weights --init names: recorded with them (a folder's), else their dataset's."""
    if record.get("classes"):
        return tuple(record["classes"])
    spec = find_dataset(record.get("dataset") or "")
    return spec.class_names if spec is not None else None


PROBE_IMAGES = 5000  # a linear probe fits on at most this many training images (and their mirrors): seconds


def _fit_whitening(model: torch.nn.Module, images: torch.Tensor, spec: DatasetSpec) -> dict | None:
    """A model with a whitening layer (zoo.models.zoonet) has it set from the first training images; what it
    was fitted on is recorded in config.json."""
    if not getattr(model, "uses_whitening", False):
        return None
    from zoo.models.zoonet import WHITEN_EPS, WHITEN_IMAGES

    x = images[:WHITEN_IMAGES].float().div(255)
    c = x.shape[1]
    x = (x - torch.tensor(spec.mean).view(1, c, 1, 1)) / torch.tensor(spec.std).view(1, c, 1, 1)
    eigenvalues = model.fit_whitening(x, WHITEN_EPS)
    return {"images": len(x), "split": "train (the first images)", "eps": WHITEN_EPS,
            "eigenvalues": [round(v, 6) for v in eigenvalues]}


def _check_tensorboard() -> None:
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
    except ImportError:
        raise ZooError("--tensorboard needs the tensorboard package: pip install 'zoo-classifiers[tensorboard]'") \
            from None


def _last_commit(out: Path, resume: bool) -> dict | None:
    """last.json; a damaged one is rebuilt from the newest good checkpoint when resuming."""
    try:
        return rundir.read_last(out)
    except ZooError:
        if not resume:
            raise
        rundir.load_checkpoint(out)  # repoints last.json at the newest checkpoint that loads, and says so
        return rundir.read_last(out)


def _resolve_init(init: str | None, arch: str, dataset: str, resuming: Path | None, head: str = "map"):
    """(state dict or None, the cards' "init" record or None). Resuming keeps the run's recorded init."""
    if resuming:
        started = read_config(resuming)[3]
        if init is not None and (started or {}).get("arg") != init:
            raise ZooError(f"--init {init} differs from the run in {resuming} (started with "
                           f"{(started or {}).get('arg', 'no --init')}); drop --init to resume it")
        return None, started
    if not init:
        return None, None
    if head not in HEAD_MODES:
        raise ZooError(f"--head must be one of {', '.join(HEAD_MODES)}, got {head!r}")
    state, record = init_source(init, arch, dataset)
    return state, {**record, "head": head}
