"""How a run executes: device, precision, compile, memory layout, processes, and stopping on a signal."""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch

from zoo.core.memory import keep_freed_memory
from zoo.train.options import RuntimeRequest
from zoo.train.fastpath import choose


@dataclass(frozen=True)
class Runtime:
    """What the run executes with, recorded in config.json and every card."""
    device: str = "cpu"
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    compile: bool = False  # torch.compile the model (tens of seconds of compile time on CPU)
    channels_last: bool = False  # NHWC memory layout for conv nets
    world_size: int = 1  # data-parallel processes (torchrun)
    probed: float = 0.0  # images/s the fast-path probe measured for this path (0: not chosen by a probe)
    provisional: bool = False  # that probe ran on a busy machine: training re-probes once it is idle
    freed_memory_kept: bool = False  # glibc keeps what a step frees for the next one (core/memory.py)

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_runtime(req: RuntimeRequest, arch: str, dataset: str, batch_per_rank: int, total_images: int,
                    world: int) -> Runtime:
    """Fill in every "auto" (probing the fast path only if something is left to choose). Keeps freed memory
    in the process first, so that the probe measures the allocator training runs with."""
    kept = keep_freed_memory()
    auto = None
    if "auto" in (req.precision, req.compile):
        auto = choose(arch, dataset, req.device, batch_per_rank, total_images, reprobe=req.reprobe)
    precision = auto.precision if req.precision == "auto" else req.precision
    compiled = auto.compile if req.compile == "auto" else req.compile == "on"
    cl = req.channels_last
    if cl is None:
        cl = auto.channels_last if auto else req.device == "cuda"
    probed = auto is not None and (precision, compiled, cl) == (auto.precision, auto.compile, auto.channels_last)
    return Runtime(req.device, precision, compiled, cl, world, auto.images_per_s if probed else 0.0,
                   auto.provisional if probed else False, kept)


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

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (all ranks stop at the same step)."""
        return bool(self.all_sum(torch.tensor([float(flag)])).item()) if self.world_size > 1 else flag


def init_dist(device: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C; kill, docker stop, schedulers' preemption


class StopFlag:
    """Set by the first SIGINT/SIGTERM: the step in flight finishes and is saved."""

    def __init__(self):
        self.requested = False
        self.signal = signal.SIGINT


@contextmanager
def stop_on_signals():
    """A first SIGINT or SIGTERM sets the flag; a second one interrupts at once."""
    flag = StopFlag()
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

    def restore():
        for s, h in previous.items():
            signal.signal(s, h)

    def handler(signum, frame):
        if flag.requested:
            restore()
            raise KeyboardInterrupt
        flag.requested, flag.signal = True, signal.Signals(signum)

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
