"""Pick the fastest correct training path per model on this machine: measure once, remember.

Which of bf16 autocast, channels_last and torch.compile helps depends on the model and the CPU
(SPEC.md: compile makes the tiny MNIST CNN slower, ResNet-20 faster; bf16 only pays off with native
bf16 instructions). `choose` times a few steps of each eager candidate on random data, adds
torch.compile when the run is long enough to repay its compile time, and caches the decision per
(model, dataset, batch, CPU, torch version) in ~/.cache/zoo/fastpath.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from zoo.core.env import machine
from zoo.core.io import atomic_write_json, cache_dir
from zoo.data.specs import get_dataset_spec
from zoo.models import create_model
from zoo.train.loop import autocast


@dataclass(frozen=True)
class FastPath:
    precision: str = "fp32"  # fp32 | bf16
    compile: bool = False
    channels_last: bool = False
    images_per_s: float = 0.0  # measured on random data, train step only


def cache_file() -> Path:
    return cache_dir("fastpath.json")


def _key(arch: str, dataset: str, batch: int) -> str:
    return f"{arch}.{dataset}|b{batch}|{machine()}|torch {torch.__version__}"


def _time_steps(arch: str, dataset: str, batch: int, cand: FastPath, steps: int) -> float:
    spec = get_dataset_spec(dataset)
    torch.manual_seed(0)
    model = create_model(arch, spec).train()
    x = torch.randn(batch, *spec.input_shape)
    y = torch.randint(0, spec.num_classes, (batch,))
    if cand.channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    net = torch.compile(model) if cand.compile else model
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step():
        with autocast(torch.device("cpu"), cand.precision):
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up (and compilation)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t)


def native_bf16() -> bool:
    """The CPU has bf16 instructions (AVX512-BF16 or AMX). Without them autocast emulates bf16 and is
    ~10x slower than fp32 (ResNet-20 on an AVX2 EPYC: 25 vs 265 img/s), and timing that candidate
    on ResNet-18 alone takes longer than a quarter of an hour, so it is not timed at all."""
    cpu = torch.cpu
    return any(getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def measure(arch: str, dataset: str, batch: int, total_images: int, steps: int = 3, log=print) -> FastPath:
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in create_model(arch, dataset).modules())
    cands = [FastPath("fp32")]
    if has_conv:
        cands.append(FastPath("fp32", channels_last=True))
    if native_bf16():
        cands.append(FastPath("bf16", channels_last=has_conv))
    else:
        log("fast path: no native bf16 on this CPU (AVX512-BF16/AMX); bf16 autocast not timed")
    timed = [FastPath(c.precision, False, c.channels_last, _time_steps(arch, dataset, batch, c, steps)) for c in cands]
    best = max(timed, key=lambda c: c.images_per_s)
    if total_images / best.images_per_s > 600:  # > 10 min of training: worth ~1 min of compilation
        c = FastPath(best.precision, True, best.channels_last)
        comp = FastPath(c.precision, True, c.channels_last, _time_steps(arch, dataset, batch, c, steps))
        timed.append(comp)
        if comp.images_per_s > 1.1 * best.images_per_s:
            best = comp
    log("fast path: " + ", ".join(f"{c.precision}{'+cl' if c.channels_last else ''}"
                                  f"{'+compile' if c.compile else ''} {c.images_per_s:.0f} img/s" for c in timed)
        + f" -> {best.precision}{'+channels_last' if best.channels_last else ''}{'+compile' if best.compile else ''}")
    return best


def choose(arch: str, dataset: str, device: str, batch: int, total_images: int = 0) -> FastPath:
    if device == "cuda":  # tensor cores: bf16 + channels_last + compile is the known-good GPU path
        return FastPath("bf16", True, True)
    path, key = cache_file(), _key(arch, dataset, batch)
    cache = json.loads(path.read_text()) if path.is_file() else {}
    if key in cache:
        return FastPath(**cache[key])
    best = measure(arch, dataset, batch, total_images, log=lambda s: print(s, flush=True))
    cache = json.loads(path.read_text()) if path.is_file() else {}
    cache[key] = asdict(best)
    atomic_write_json(path, cache)
    return best
