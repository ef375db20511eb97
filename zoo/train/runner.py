"""`zoo train`: one run = model + dataset + recipe -> checkpoints, metrics.jsonl, best weights.

    zoo train resnet20 cifar10                      # paper recipe, fastest path for this machine
    torchrun --nproc-per-node 2 -m zoo.cli train resnet20 cifar10 --out runs/r20   # data-parallel
"""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from zoo.errors import ZooError
from zoo.train import checkpoint as ck
from zoo.train.loop import EpochSums, Interrupted, build_optimizer, evaluate, pct, train_one_epoch
from zoo.train.recipes import TrainConfig, get_recipe, lr_at


@dataclass(frozen=True)
class Runtime:
    device: str = "cpu"  # cpu | cuda
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    compile: bool = False  # torch.compile the model (tens of seconds of compile time on CPU)
    channels_last: bool = False  # NHWC memory layout for conv nets
    world_size: int = 1  # data-parallel processes (torchrun)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            import torch.distributed as dist
            t = t.clone()
            dist.all_reduce(t)
        return t


def default_out(arch: str, dataset: str, recipe: str) -> Path:
    return Path("runs") / f"{arch.replace('/', '_')}.{dataset}.{recipe}"


def _init_dist(device: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C; kill, docker stop, schedulers' preemption


@contextmanager
def _stop_flag():
    """A first SIGINT or SIGTERM sets a flag (the step finishes and is saved); a second one interrupts at once."""
    flag = {"stop": False, "signal": signal.SIGINT}
    if os.environ.get("ZOO_INTERRUPT_AT_STEP"):  # test hook: simulate Ctrl-C after that global step
        flag["at"] = int(os.environ["ZOO_INTERRUPT_AT_STEP"])
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def restore():
        for s, h in previous.items():
            signal.signal(s, h)

    def handler(signum, frame):
        if flag["stop"]:
            restore()
            raise KeyboardInterrupt
        flag["stop"], flag["signal"] = True, signal.Signals(signum)

    try:
        for s in STOP_SIGNALS:
            signal.signal(s, handler)
    except ValueError:  # not the main thread (notebooks' workers): no handler
        pass
    try:
        yield flag
    finally:
        try:
            restore()
        except ValueError:
            pass


def _resolve_runtime(device: str, precision: str, compile: str | bool, channels_last: bool | None,
                     arch: str, dataset: str, cfg: TrainConfig, world: int) -> Runtime:
    if device not in ("cpu", "cuda"):
        raise ZooError(f"unknown device {device!r}; choose cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ZooError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    if precision not in ("auto", "fp32", "bf16"):
        raise ZooError(f"unknown precision {precision!r}; choose auto, fp32 or bf16")
    if str(compile) not in ("auto", "on", "off", "True", "False"):
        raise ZooError(f"unknown compile setting {compile!r}; choose auto, on or off")
    from zoo.train.fastpath import choose

    from zoo.data import get_dataset_spec

    total = cfg.epochs * get_dataset_spec(dataset).train_size
    auto = choose(arch, dataset, device, cfg.batch_size // world, total) if "auto" in (precision, str(compile)) \
        else None
    prec = auto.precision if precision == "auto" else precision
    comp = auto.compile if str(compile) == "auto" else str(compile) in ("on", "True")
    cl = (auto.channels_last if auto else device == "cuda") if channels_last is None else channels_last
    return Runtime(device, prec, comp, cl, world)


def _progress(show: bool | None, dist: Dist):
    from zoo.train.progress import EpochProgress
    return EpochProgress(enabled=dist.main and (show is None or show))


def train(arch: str, dataset: str, *, recipe: str = "paper", epochs: int | None = None,
          batch_size: int | None = None, lr: float | None = None, seed: int | None = None,
          device: str = "cpu", precision: str = "auto", compile: str | bool = "auto",
          channels_last: bool | None = None, out: str | os.PathLike | None = None, resume: bool = False,
          save_every_s: float | None = 600.0, data_dir=None, download: bool = False, verify: bool | None = None,
          progress: bool | None = None, init: str | None = None) -> dict:
    """Train `arch` on `dataset`; returns the final summary (also written to OUT/summary.json).

    With resume=True continues from OUT's newest checkpoint (same recipe and seed required). Besides the
    checkpoint at every epoch's end, one is saved mid-epoch whenever `save_every_s` seconds have passed since
    the last (None: epoch ends only), so a kill -9 loses at most that much of a long epoch.

    `init` starts from trained weights instead of a random initialization (fine-tuning): "pretrained" (zoo's
    shipped weights for this pair), "pretrained:DATASET" (this architecture's shipped weights for another
    dataset; tensors whose shape differs, such as the classifier, start fresh), or a run folder, checkpoint
    folder or .safetensors file. The source and its sha256 go into config.json and every checkpoint's card.
    """
    from zoo.data import get_dataset_spec, load_split
    from zoo.models import create_model

    spec = get_dataset_spec(dataset)
    cfg = get_recipe(recipe, spec, arch, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    create_model(arch, spec)  # unknown / unsupported model -> one-line error before anything is written
    dist = _init_dist(device)
    if save_every_s is not None and not save_every_s >= 0:
        raise ZooError(f"save interval must be >= 0 seconds, got {save_every_s}")
    if cfg.batch_size % dist.world_size:
        raise ZooError(f"batch size {cfg.batch_size} does not split over {dist.world_size} processes")
    out = Path(out) if out else default_out(arch, dataset, cfg.recipe)
    last = ck.read_last(out)
    if not resume and last is not None:
        raise ZooError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if resume and ck.finished(last, cfg.epochs) and (out / "summary.json").is_file():
        # Nothing to train: keep the summary (and skip the fast-path probe and the data loading).
        _check_same_recipe(out, json.loads((out / "config.json").read_text())["recipe"], cfg)
        return {**json.loads((out / "summary.json").read_text()), "already_finished": True}
    init_src = _resolve_init(init, arch, spec.name, out if resume and last is not None else None)
    rt = _resolve_runtime(device, precision, compile, channels_last, arch, dataset, cfg, dist.world_size)
    # Load data before taking the lock: a missing dataset leaves nothing behind.
    train_xy = load_split(dataset, "train", data_dir, download=download and dist.main, verify=verify)
    test_xy = load_split(dataset, "test", data_dir, download=download and dist.main, verify=verify)
    lock = ck.run_lock(out) if dist.main else _nullctx()
    with lock:
        return _run(arch, spec, cfg, rt, dist, out, resume and last is not None, train_xy, test_xy, progress,
                    save_every_s, init_src)


def _resolve_init(init: str | None, arch: str, dataset: str, resuming: Path | None):
    """(state dict or None, the card's "init" record or None). Resuming keeps the run's recorded init."""
    from zoo.export.sources import from_path, from_pretrained

    started = json.loads((resuming / "config.json").read_text()).get("init") if resuming else None
    if resuming:
        if init is not None and (started or {}).get("arg") != init:
            raise ZooError(f"--init {init} differs from the run in {resuming} (started with "
                           f"{(started or {}).get('arg', 'no --init')}); drop --init to resume it")
        return None, started
    if init is None:
        return None, None
    if init == "pretrained" or init.startswith("pretrained:"):
        src = from_pretrained(arch, init.partition(":")[2] or dataset)
    else:
        src = from_path(init)
        got = src.card.get("model") or src.card.get("arch")
        if got and got != arch:
            raise ZooError(f"--init {init} holds {got} weights, not {arch}; pick a run of {arch}")
    from zoo.weights import sha256_file

    sha = src.card.get("sha256") or sha256_file(Path(src.origin))  # a bare file: its own bytes, as cards hash
    return src.state, {"arg": init, "source": src.origin, "model": arch, "dataset": src.card.get("dataset"),
                       "sha256": sha}


def _check_same_recipe(out: Path, started: dict, cfg: TrainConfig) -> None:
    if started != cfg.to_dict():
        diff = {k: (started.get(k), v) for k, v in cfg.to_dict().items() if started.get(k) != v}
        raise ZooError(f"--resume with a different recipe than {out} was started with: {diff}; "
                       f"use the same options or another --out")


@contextmanager
def _nullctx():
    yield


def _run(arch, spec, cfg: TrainConfig, rt: Runtime, dist: Dist, out: Path, resume: bool, train_xy, test_xy,
         show_progress, save_every_s: float | None, init_src=(None, None)) -> dict:
    from zoo.checkpoint import load_state_dict_checked
    from zoo.data import BatchLoader
    from zoo.models import create_model
    from zoo.models.stats import num_params

    torch.manual_seed(cfg.seed)
    dev = torch.device(rt.device)
    model = create_model(arch, spec)
    init_state, init = init_src
    if init_state is not None:  # before .to(dev): the file's tensors are on the CPU
        from zoo.checkpoint import load_state_dict_transfer
        init = {**init, "reinitialized": load_state_dict_transfer(model, init_state, init["source"])}
        if dist.main and init["reinitialized"]:
            print(f"zoo: --init {init['arg']}: {len(init['reinitialized'])} tensors start fresh "
                  f"(shape differs): {', '.join(init['reinitialized'])}")
    model = model.to(dev)
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = build_optimizer(model, cfg)
    start_epoch, sums, gen_state, best, last_metrics = 0, EpochSums(), None, -1.0, {}
    if resume:  # train() passes True only when OUT has a checkpoint
        weights, card, state = ck.load_checkpoint(out)
        _check_same_recipe(out, card["recipe"], cfg)
        last_metrics = card.get("metrics", {})  # the summary's "final" if no epoch is left to run
        load_state_dict_checked(model, weights, source=str(out))
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, best = state["epoch"], state["best"]
        sums = EpochSums(**state["sums"])
        if "wall" not in state["sums"]:  # saved before EpochSums.wall existed: its step time is a lower bound
            sums.wall = sums.seconds
        gen_state = state.get("loader_generator")
        _truncate_metrics(out, start_epoch)
    if dist.main:
        ck.atomic_write_json(out / "config.json", {"model": arch, "dataset": spec.name, "recipe": cfg.to_dict(),
                                                   "runtime": rt.to_dict(), **({"init": init} if init else {})})
    net = model
    if dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        net = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if rt.compile:
        net = torch.compile(net)
    per_rank = cfg.batch_size // dist.world_size
    common = dict(mean=spec.mean, std=spec.std, device=dev, channels_last=rt.channels_last,
                  rank=dist.rank, world_size=dist.world_size)
    train_loader = BatchLoader(*train_xy, per_rank, shuffle=True, augment=cfg.augment, seed=cfg.seed, **common)
    test_loader = BatchLoader(*test_xy, 1000, **common)
    n_params = num_params(model)
    bar = _progress(show_progress, dist)
    t_run = time.perf_counter()
    saved_at = t_run  # when the newest checkpoint was written (or the run started)
    with _stop_flag() as flag, bar:
        for epoch in range(start_epoch, cfg.epochs):
            train_loader.set_epoch(epoch)
            t_epoch = time.perf_counter()
            bar.start_epoch(epoch, cfg.epochs, len(train_loader), sums.step)
            steps_before = epoch * len(train_loader)

            def save_mid_epoch(s: EpochSums) -> None:
                wall = s.wall + time.perf_counter() - t_epoch  # this epoch's wall time so far, all processes
                _save(out, arch, spec, cfg, rt, model, opt, epoch, replace(s, wall=wall, extra=dict(s.extra)),
                      train_loader.generator.get_state(), best, {}, n_params,
                      tag=f"epoch-{epoch:04d}-step{s.step:06d}", init=init)

            def on_step(s: EpochSums, lr: float) -> None:
                nonlocal saved_at
                bar.step(s, lr, dist.world_size)
                if (dist.main and save_every_s is not None and s.step < len(train_loader)
                        and time.perf_counter() - saved_at >= save_every_s):
                    save_mid_epoch(s)
                    saved_at = time.perf_counter()

            def should_stop() -> bool:
                at = flag.get("at")
                stop = flag["stop"] or (at is not None and steps_before + sums.step >= at)
                if dist.world_size > 1:  # all ranks stop at the same step
                    stop = bool(dist.all_sum(torch.tensor([float(stop)])).item())
                return stop

            try:
                train_one_epoch(net, train_loader, opt, cfg, epoch, precision=rt.precision, sums=sums,
                                generator_state=gen_state, should_stop=should_stop, on_step=on_step,
                                all_finite=lambda t: bool(dist.all_sum(torch.isfinite(t).float().reshape(1)).item()
                                                          == dist.world_size))
            except Interrupted:
                if dist.main:
                    save_mid_epoch(sums)
                raise Interrupted(f"interrupted ({flag['signal'].name}) at epoch {epoch} step {sums.step}; saved; "
                                  f"continue with --resume --out {out}", flag["signal"]) from None
            gen_state = None
            tl, tc, tn = dist.all_sum(sums.as_tensor()).tolist()
            el, ec, en = dist.all_sum(torch.tensor(evaluate(net, test_loader, rt.precision),
                                                   dtype=torch.float64)).tolist()
            metrics = {"epoch": epoch + 1, "lr": lr_at(cfg, epoch), "train_loss": tl / tn, "train_acc": pct(tc, tn),
                       "test_loss": el / en, "test_acc": pct(ec, en),
                       "images_per_s": tn / max(sums.seconds, 1e-9) if dist.world_size == 1 else
                       tn / max(time.perf_counter() - t_epoch, 1e-9),
                       "wall_s": sums.wall + time.perf_counter() - t_epoch}
            is_best = metrics["test_acc"] > best
            best = max(best, metrics["test_acc"])
            sums = EpochSums()
            if dist.main:
                _append_metrics(out, metrics)  # first: a kill before the checkpoint leaves a line resume drops
                d = _save(out, arch, spec, cfg, rt, model, opt, epoch + 1, sums, None, best, metrics, n_params,
                          tag=f"epoch-{epoch + 1:04d}", init=init)
                if is_best:
                    ck.save_best(out, d)
                saved_at = time.perf_counter()
            bar.end_epoch(metrics)
            last_metrics = metrics
    from zoo.weights import sha256_bytes
    from safetensors.torch import save as st_save

    final_sha = sha256_bytes(st_save(ck.state_dict_of(model)))  # every rank: DDP keeps them identical
    summary = {"model": arch, "dataset": spec.name, "out": str(out), "epochs": cfg.epochs, "best_test_acc": best,
               "weights_sha256": final_sha, "rank": dist.rank, "world_size": dist.world_size,
               "final": last_metrics, "wall_s_this_process": time.perf_counter() - t_run, "runtime": rt.to_dict()}
    if dist.main:
        ck.atomic_write_json(out / "summary.json", summary)
    return summary


def _save(out, arch, spec, cfg, rt, model, opt, epoch, sums, gen_state, best, metrics, n_params, tag, init=None):
    card = ck.make_card(arch, spec.name, epoch, sums.step, cfg.to_dict(), rt.to_dict(), metrics, "", n_params)
    if init:
        card["init"] = init
    state = {"optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(), "epoch": epoch, "best": best,
             "sums": {k: v for k, v in sums.__dict__.items()}}
    if gen_state is not None:
        state["loader_generator"] = gen_state
    return ck.save_checkpoint(out, tag, ck.state_dict_of(model), card, state)


def _append_metrics(out: Path, metrics: dict) -> None:
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(metrics) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _truncate_metrics(out: Path, epochs_done: int) -> None:
    """Drop lines for epochs after the checkpoint (a kill between checkpoint and log can leave one)."""
    path = out / "metrics.jsonl"
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        keep = [ln for ln in lines if json.loads(ln)["epoch"] <= epochs_done]
        ck.atomic_write_bytes(path, "".join(ln + "\n" for ln in keep).encode())
