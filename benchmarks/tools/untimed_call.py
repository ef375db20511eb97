"""Does a throughput turn of long calls need an untimed call first? Eager ResNet-18 at batch 256 timed by
zoo.bench.measure.throughput_rounds alone, beside onnxruntime with one untimed call per turn, and without it,
in alternation (measure.py's LONG_CALL_S records the figures).

    zoo export resnet18 cifar10 --pretrained --out exports
    python benchmarks/tools/untimed_call.py exports/resnet18.cifar10.onnx [--alternations 3] [--default-allocator]

Reported in docs/measurements.md, What we tried and why it was not kept.
"""

import argparse
from pathlib import Path

import numpy as np

from zoo.bench import measure
from zoo.bench.backends import OrtBackend, TorchBackend
from zoo.core.memory import keep_freed_memory
from zoo.export import build_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx", type=Path, help="an exported resnet18.cifar10 file")
    ap.add_argument("--alternations", type=int, default=3)
    ap.add_argument("--default-allocator", action="store_true", help="do not keep freed memory (as before zoo did)")
    args = ap.parse_args()
    if not args.default_allocator:
        keep_freed_memory()
    eager = TorchBackend("cpu", 2)
    eager.load(build_model("resnet18", "cifar10", None))  # random weights: the same work as trained ones
    ort = OrtBackend("CPUExecutionProvider", 2)
    ort.load(args.onnx)
    x = np.random.default_rng(0).standard_normal((256, 3, 32, 32), np.float32)
    start_turn = measure._start_turn

    def forced(untimed):
        return lambda backends, b, x, _: start_turn(backends, b, x, untimed)

    for _ in range(args.alternations):
        alone = measure.throughput_rounds([eager], x, 20, 5)[0]
        measure._start_turn = forced(1)
        with_call = measure.throughput_rounds([ort, eager], x, 20, 5)
        measure._start_turn = forced(0)
        without = measure.throughput_rounds([ort, eager], x, 20, 5)
        measure._start_turn = start_turn
        print(f"eager alone {alone:.0f} img/s; beside onnxruntime with the untimed call: eager {with_call[1]:.0f}, "
              f"onnxruntime {with_call[0]:.0f}; without it: eager {without[1]:.0f}, onnxruntime {without[0]:.0f}",
              flush=True)


if __name__ == "__main__":
    main()
