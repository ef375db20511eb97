"""Pick the fastest correct training path per model on this machine: measure it so that it can't be fooled,
remember it, and measure again when the figure was taken on a busy machine.

Which of bf16 autocast, channels_last and torch.compile helps depends on the model and the CPU
(SPEC.md: compile makes the tiny MNIST CNN slower, ResNet-20 faster; bf16 only pays off with native
bf16 instructions). The probe:

- builds every candidate once and runs WARMUP untimed steps of each (compilation happens there);
- steps PROBE_BATCH images at most (the run's batch when smaller): per image, the candidates rank and run
  alike at 128 and at 1,024 (ZooNet on an Intel Xeon with AMX: bf16 + channels_last 1,074 vs 1,143 img/s,
  plain fp32 309 vs 306), and a step of 128 costs an eighth of one of 1,024;
- then times them in interleaved rounds (A A A B B B C C C, ...), so drift and other processes hit all
  candidates alike; the first step of each turn is not timed (switching candidates costs the next step its
  caches: measured, it made the IQR 24% of the median on ResNet-20); a candidate's figure is the median of
  its timed steps, so a one-off spike (a JIT step of 7 s beside 0.65 s ones) moves it by one rank, not by
  its size;
- stops timing a candidate once even its fastest step is DOMINATED times slower than the leader's median
  (plain fp32 beside bf16 on a CPU with AMX: 3.5x; a spike only makes steps slower, so the fastest one is the
  fair witness); its figure so far stays in the record;
- stops when, after at least MIN_ROUNDS rounds, no candidate's median moved by more than STABLE since the
  previous round, or after MAX_ROUNDS rounds, or once BUDGET_S seconds of timed rounds have passed;
- adds torch.compile of the best eager path when the run is long enough to repay its compile time, timed
  against that path in rounds of its own; it must win by COMPILE_MARGIN;
- records the share of the CPU other processes used meanwhile (core.env.OthersWatch) and each
  candidate's noise (relative IQR of its steps). A decision taken while others used more than BUSY of the
  machine, or whose winner's median is uncertain by more than NOISY, is provisional: the next run measures
  again. The median's uncertainty is its standard error, 0.93 x IQR / sqrt(steps) for normal noise: a cloud
  VM whose steps scatter by 20% (AMD EPYC: idle probes read 5-21%) still pins a median of 22
  steps to +-4%, and re-probing every run there would buy nothing.

Decisions live in ~/.cache/zoo/fastpath.json per (model, input shape, CPU, torch version): once per machine
for a model, whatever the dataset, its classes or the batch (ZooNet's first run on a machine: 78 s of probe at
batch 1,024 before, 7 s now), with their figures and date (`zoo list --fastpath`); `zoo train --reprobe`
measures again.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from zoo.core.env import OthersWatch, machine, now
from zoo.core.io import atomic_write_json, cache_dir
from zoo.core.memory import keep_freed_memory
from zoo.data.resolve import get_dataset_spec
from zoo.models import create_model
from zoo.train.loop import autocast

WARMUP = 2  # untimed steps per candidate (compilation, allocator warm-up)
STEPS_PER_TURN = 2  # timed steps per candidate per round
SETTLE = 1  # untimed steps at the start of each turn (the switch from another candidate)
MIN_ROUNDS, MAX_ROUNDS = 3, 12
STABLE = 0.02  # a median that moved less than this between rounds has settled
PROBE_BATCH = 128  # images per probe step, at most
DOMINATED = 1.5  # a candidate whose fastest step is this much slower than the leader's median is not timed on
BUDGET_S = 60.0  # seconds of timed rounds, at most (ResNet-18 at batch 256 steps in ~2.5 s here)
COMPILE_MARGIN = 1.1  # torch.compile must be this much faster than the eager path it compiles
# torch.compile is timed for runs of more than this many seconds of training: its probe (~40 s) and its compile
# (~30 s) are then repaid by a 10% gain; a 10-minute run (ZooNet's speedrun) never spends them
COMPILE_MIN_S = 1200
# The longest probe without eliminations times 3 candidates for WARMUP + MIN_ROUNDS x (SETTLE + STEPS_PER_TURN)
# steps each: a run of fewer than ten times that many steps is not probed (it would cost more than a tenth of it).
SHORT_RUN_STEPS = 10 * 3 * (WARMUP + MIN_ROUNDS * (SETTLE + STEPS_PER_TURN))
BUSY = 0.15  # share of the machine other processes used during the probe that makes it provisional
NOISY = 0.05  # the relative uncertainty of the winner's median above which the decision is provisional


@dataclass(frozen=True)
class FastPath:
    precision: str = "fp32"  # fp32 | bf16
    compile: bool = False
    channels_last: bool = False
    images_per_s: float = 0.0  # median train step on random data
    noise: float = 0.0  # relative IQR of its step times
    others: float = 0.0  # share of the CPU other processes used while it was measured
    provisional: bool = False  # measured on a busy machine or too noisily: the next run measures again
    measured: str = ""  # when (UTC)
    candidates: dict = field(default_factory=dict)  # every candidate's images/s, by label
    freed_memory_kept: bool = False  # measured with core.memory.keep_freed_memory() in effect
    batch: int = 0  # images per probe step

    @property
    def label(self) -> str:
        return f"{self.precision}{'+cl' if self.channels_last else ''}{'+compile' if self.compile else ''}"

    def same_path(self, other: FastPath) -> bool:
        return (self.precision, self.compile, self.channels_last) == \
            (other.precision, other.compile, other.channels_last)


def cache_file() -> Path:
    return cache_dir("fastpath.json")


def _key(arch: str, dataset: str) -> str:
    """What a decision is remembered by: the network and its input's shape, on this CPU and torch. Its cost is
    its input's, not the classes' (a head of 10 or 100) or the folder's: a model measures once per machine."""
    shape = "x".join(map(str, get_dataset_spec(dataset).input_shape))
    return f"{arch}|{shape}|{machine()}|torch {torch.__version__}"


def probe_batch(batch: int) -> int:
    return min(batch, PROBE_BATCH)


class _Candidate:
    """One path's model, optimizer and batch, built once; step() returns one training step's seconds."""

    def __init__(self, arch: str, dataset: str, batch: int, path: FastPath):
        spec = get_dataset_spec(dataset)
        torch.manual_seed(0)
        self.path = path
        model = create_model(arch, spec).train()
        self.x = torch.randn(batch, *spec.input_shape)
        self.y = torch.randint(0, spec.num_classes, (batch,))
        if path.channels_last:
            model = model.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.net = torch.compile(model) if path.compile else model
        self.opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        self.times: list[float] = []

    def step(self) -> float:
        t = time.perf_counter()
        with autocast(torch.device("cpu"), self.path.precision):
            loss = F.cross_entropy(self.net(self.x).float(), self.y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return time.perf_counter() - t


def _median(c: _Candidate) -> float:
    return statistics.median(c.times)


def _median_error(times: list[float]) -> float:
    """The relative standard error of the median of `times` (module docstring)."""
    return 0.93 * _iqr_rel(times) / math.sqrt(len(times)) if len(times) >= 4 else math.inf


def _iqr_rel(times: list[float]) -> float:
    if len(times) < 4:
        return 0.0
    q = statistics.quantiles(times, n=4)
    return (q[2] - q[0]) / statistics.median(times)


def time_rounds(cands: list[_Candidate]) -> int:
    """Warm up every candidate, then time them in interleaved rounds until the medians settle (the stopping
    rule in the module's docstring). Returns the number of rounds."""
    for c in cands:
        for _ in range(WARMUP):
            c.step()
    t0, prev, active = time.perf_counter(), {}, list(cands)
    for r in range(1, MAX_ROUNDS + 1):
        for c in active:
            c.times += [c.step() for _ in range(SETTLE + STEPS_PER_TURN)][SETTLE:]
        lead = min(_median(c) for c in active)
        active = [c for c in active if min(c.times) <= DOMINATED * lead]  # the far slower ones: not timed on
        med = {c: _median(c) for c in active}
        settled = all(c in prev and abs(m / prev[c] - 1) < STABLE for c, m in med.items())
        if r >= MIN_ROUNDS and (settled or time.perf_counter() - t0 > BUDGET_S):
            return r
        prev = med
    return MAX_ROUNDS


def native_bf16() -> bool:
    """The CPU has bf16 instructions (AVX512-BF16 or AMX). Without them autocast emulates bf16 and is
    ~10x slower than fp32 (ResNet-20 on an AVX2 EPYC: 25 vs 265 img/s), and timing that candidate
    on ResNet-18 alone takes longer than a quarter of an hour, so it is not timed at all."""
    cpu = torch.cpu
    return any(getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def eager_candidates(arch: str, dataset: str, log=print) -> list[FastPath]:
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in create_model(arch, dataset).modules())
    cands = [FastPath("fp32")]
    if has_conv:
        cands.append(FastPath("fp32", channels_last=True))
    if native_bf16():
        cands.append(FastPath("bf16", channels_last=has_conv))
    else:
        log("fast path: no native bf16 on this CPU (AVX512-BF16/AMX); bf16 autocast not timed")
    return cands


def _figures(cands: list[_Candidate], batch: int) -> list[FastPath]:
    return [replace(c.path, images_per_s=batch / _median(c), noise=_iqr_rel(c.times), batch=batch) for c in cands]


def measure(arch: str, dataset: str, batch: int, total_images: int, log=print) -> FastPath:
    """Time the candidates (module docstring) and return the fastest, with the probe's record."""
    kept = keep_freed_memory()  # training runs with it (runtime.py): so must what decides its path
    t0, batch = time.perf_counter(), probe_batch(batch)
    with OthersWatch() as watch:
        cands = [_Candidate(arch, dataset, batch, p) for p in eager_candidates(arch, dataset, log)]
        rounds = time_rounds(cands)
        timed = _figures(cands, batch)
        best, winner = max(zip(timed, cands), key=lambda fc: fc[0].images_per_s)
        beside, verdict = {}, ""  # the eager figure compile was judged against, and the log's words for it
        if total_images / best.images_per_s > COMPILE_MIN_S:
            pair = [_Candidate(arch, dataset, batch, p) for p in (best, replace(best, compile=True))]
            rounds += time_rounds(pair)
            eager, compiled = _figures(pair, batch)
            timed.append(compiled)
            # compile is judged against the eager path timed in its own rounds, not in the first ones: both
            # figures are said and kept, or the record would show compile ahead of a path that beat it
            beside = {f"{eager.label} beside compile": eager.images_per_s}
            gain = compiled.images_per_s / eager.images_per_s
            if gain > COMPILE_MARGIN:
                best, winner = compiled, pair[1]
                verdict = f" (torch.compile {gain:.2f}x on top)"
            else:
                verdict = f"; torch.compile only {gain:.2f}x on top, not used (needs {COMPILE_MARGIN:.2f}x)"
    error = _median_error(winner.times)
    provisional = watch.share > BUSY or error > NOISY
    figures = {c.label: round(c.images_per_s, 1) for c in timed} | {k: round(v, 1) for k, v in beside.items()}
    best = replace(best, others=round(watch.share, 3), provisional=provisional, measured=now(), candidates=figures,
                   freed_memory_kept=kept)
    why = "" if not provisional else "; will re-check next run because " + (
        f"other programs used {watch.share:.0%} of the CPU" if watch.share > BUSY else
        f"the timings scattered (its median +-{error:.0%})")
    plain = timed[0].images_per_s  # eager_candidates() puts plain fp32 first
    log(f"speed: {_words(best)}, {best.images_per_s / plain:.1f}x plain fp32{verdict}, measured in "
        f"{time.perf_counter() - t0:.0f} s{why} (zoo list --fastpath has the figures)")
    return best


def _read_cache() -> dict:
    path = cache_file()
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}  # a damaged cache is measured afresh, never trusted
    return data if isinstance(data, dict) else {}


def _entry(value) -> FastPath | None:
    try:
        return FastPath(**value)
    except TypeError:
        return None  # an older or damaged entry: measured again


def choose(arch: str, dataset: str, device: str, batch: int, total_images: int = 0, reprobe: bool = False,
           log=None) -> FastPath:
    """The remembered decision for this model and machine; measured when there is none, when it is
    provisional, when it was measured with another allocator setting than this process has (core/memory.py:
    the figures and even the winner change with it), or when `reprobe`."""
    if device == "cuda":  # tensor cores: bf16 + channels_last + compile is the known-good GPU path
        return FastPath("bf16", True, True)
    key = _key(arch, dataset)
    cached = _entry(_read_cache().get(key))
    kept = keep_freed_memory()  # as measure() will, to compare with the decision's record
    log = log or (lambda s: print(s, flush=True))
    if not reprobe and 0 < total_images < SHORT_RUN_STEPS * probe_batch(batch):
        return _short_run(arch, dataset, cached, -(-total_images // batch), log)
    if cached is not None and not cached.provisional and cached.freed_memory_kept == kept and not reprobe:
        return cached
    if cached is not None and cached.provisional and not reprobe:
        log(f"fast path: the remembered decision ({cached.label}, {cached.measured}) is provisional (others used "
            f"{cached.others:.0%} of the CPU, noise {cached.noise:.0%}); measuring again")
    elif cached is not None and not reprobe:
        log(f"fast path: the remembered decision ({cached.label}, {cached.measured}) was measured "
            f"{'with' if cached.freed_memory_kept else 'without'} freed memory kept, this run is "
            f"{'with' if kept else 'without'}; measuring again")
    best = measure(arch, dataset, batch, total_images, log=log)
    cache = _read_cache()
    cache[key] = asdict(best)
    atomic_write_json(cache_file(), cache)
    return best


def _short_run(arch: str, dataset: str, cached: FastPath | None, steps: int, log) -> FastPath:
    """A run too short to repay a probe: the remembered decision, else bf16 autocast where the CPU has bf16
    instructions and fp32 elsewhere, channels_last for convolutions. No figure is claimed (images_per_s 0), so
    the run does not measure again at an epoch boundary either."""
    if cached is not None:
        path, why = cached, "remembered"
    else:
        conv = any(isinstance(m, torch.nn.Conv2d) for m in create_model(arch, dataset).modules())
        path = FastPath("bf16" if native_bf16() else "fp32", channels_last=conv)
        why = "this CPU has bf16 instructions" if native_bf16() else "no bf16 instructions on this CPU"
    log(f"speed: {_words(path)} ({why}); not measured: {steps} training steps are too few to repay measuring")
    return replace(path, images_per_s=0.0, provisional=False)


def _words(path: FastPath) -> str:
    """A path in words: "bf16 + channels_last + torch.compile", "plain fp32"."""
    parts = [path.precision] + (["channels_last"] if path.channels_last else []) + \
        (["torch.compile"] if path.compile else [])
    return "plain fp32" if parts == ["fp32"] else " + ".join(parts)


def decisions() -> list[dict]:
    """Every remembered decision, for `zoo list --fastpath`: key parts, the choice and its figures."""
    rows = []
    for key, value in sorted(_read_cache().items()):
        fp = _entry(value)
        if fp is None:
            continue
        model, *rest = key.split("|")
        shape = rest[0] if rest else ""
        cpu = rest[-2] if len(rest) >= 2 else ""
        rows.append({"model": model, "input": shape, "batch": fp.batch, "machine": cpu, "choice": fp.label,
                     "images_per_s": fp.images_per_s, "noise": fp.noise, "others": fp.others,
                     "provisional": fp.provisional, "measured": fp.measured, "candidates": fp.candidates})
    return rows


def decisions_table(rows: list[dict]):
    """`zoo list --fastpath`'s table of decisions()."""
    from rich.table import Table

    table = Table(title=f"fast-path decisions ({len(rows)}) in {cache_file()}")
    for col in ("model", "input", "probe batch", "machine", "choice", "img/s", "noise", "others", "measured",
                "candidates"):
        table.add_column(col, overflow="fold")
    for r in rows:
        choice = r["choice"] + (" (provisional)" if r["provisional"] else "")
        table.add_row(r["model"], r["input"], str(r["batch"] or "?"), r["machine"], choice,
                      f"{r['images_per_s']:.0f}", f"{r['noise']:.1%}", f"{r['others']:.0%}", r["measured"][:16],
                      ", ".join(f"{k} {v:.0f}" for k, v in r["candidates"].items()))
    table.caption = "others: share of the CPU other processes used during the probe; provisional: measured again " \
                    "by the next run; zoo train --reprobe measures again"
    return table
