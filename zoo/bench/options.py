"""What `zoo bench` and `zoo.bench.session.bench` take: one set of defaults for both, importable without torch
(`zoo --help` builds its options from these fields). zoo.bench.harness.bench_config resolves them into the
harness's BenchConfig."""

from __future__ import annotations

from dataclasses import dataclass

from zoo.core.options import at_least, batches, opt, split
from zoo.core.runtimes import RUNTIMES, missing_runtime

RUNTIME_HELP = (f"comma list of {', '.join(RUNTIMES)}, or all (every one installed): each runs the same model and gets "
                "rows of its own (openvino twice for fp32: at f32 and at its default precision); over several, the "
                "fastest that keeps accuracy is recommended and remembered for zoo predict")
REPEAT_HELP = ("timed batch-1 calls (>= 1; default: 200, or up to 1,000 while they fit in 1 s, so that p99 rests on "
               ">= 10 calls)")
BUSY_HELP = ("recommend from figures timed while other processes used the CPU as if clean (by default they give a "
             "provisional recommendation, replaced by the next bench on a quieter machine)")


@dataclass(frozen=True)
class BenchOptions:
    precision: tuple[str, ...] | str = opt("fp32", "comma list of fp32, int8 (CPU), fp16 (CUDA)", type=split)
    provider: tuple[str, ...] | str = opt((), "comma list of cpu, cuda (default: cpu, plus cuda when usable)",
                                          type=split)
    runtime: tuple[str, ...] | str = opt("onnxruntime", RUNTIME_HELP, type=split)
    threads: int | None = opt(None, "intra-op threads (>= 1; default: all cores)", type=at_least(1))
    warmup: int = opt(20, "untimed batch-1 calls (>= 0)", type=at_least(0))
    repeat: int | None = opt(None, REPEAT_HELP, type=at_least(1))
    batch: tuple[int, ...] | list[int] | int = opt((256,), "batch size(s) for throughput: 256 (the default) or a "
                                                           "sweep such as 1,16,64,256 (each >= 1)", type=batches)
    accept_busy: bool = opt(False, BUSY_HELP)
    eager: bool = opt(True, "skip the PyTorch eager comparison", flag="--no-eager", action="store_false")
    null: bool = opt(False, "add the null backend (harness overhead)")
    out: str = opt("bench", "report folder")

    def runtimes(self) -> tuple[str, ...]:
        """--runtime: a comma list, or `all`: every runtime installed here (onnxruntime always)."""
        asked = split(self.runtime) or ("onnxruntime",)
        if asked != ("all",):
            return asked
        return tuple(r for r in RUNTIMES if not missing_runtime(r))

