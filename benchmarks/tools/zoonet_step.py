"""Where a ZooNet training step's time goes on the CPU: one batch of 1,024 (the speedrun recipe's) through
forward, backward and the optimizer step, timed for the ways the step can run, interleaved in rounds so that
the ratios hold on a drifting machine:

    fp32              fp32 weights and activations
    autocast-bf16     fp32 weights, bf16 autocast (zoo's fast path; channels_last)
    bf16-weights      the whole network in bf16 but BatchNorm (airbench94's own code ported to the CPU: its
                      fp16 weights and activations made bf16), channels_last

    python benchmarks/tools/zoonet_step.py --rounds 5 --steps 3

Random inputs of CIFAR-10's shape: the step's cost does not depend on the pixels.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from zoo.models import create_model


def make(way: str) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.dtype]:
    torch.manual_seed(0)
    model = create_model("zoonet", "cifar10").train()
    dtype = torch.float32
    if way != "fp32":
        model = model.to(memory_format=torch.channels_last)
    if way == "bf16-weights":
        model = model.bfloat16()
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.float()
        dtype = torch.bfloat16
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.85, nesterov=True)
    return model, opt, dtype


def step_s(way: str, model, opt, dtype, x: torch.Tensor, y: torch.Tensor) -> float:
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=way == "autocast-bf16"):
        loss = F.cross_entropy(model(x.to(dtype)).float(), y, label_smoothing=0.2, reduction="sum")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per way per round")
    ap.add_argument("--ways", default="fp32,autocast-bf16,bf16-weights")
    args = ap.parse_args(argv)
    ways = args.ways.split(",")
    x = torch.randn(args.batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,))
    built = {w: make(w) for w in ways}
    for w in ways:  # one untimed step each: allocations, oneDNN's kernel choice
        step_s(w, *built[w], x, y)
    times = {w: [] for w in ways}
    for _ in range(args.rounds):
        for w in ways:
            times[w] += [step_s(w, *built[w], x, y) for _ in range(args.steps)]
    base = statistics.median(times[ways[0]])
    print(f"{'way':<15} {'median s/step':>14} {'img/s':>8} {'vs ' + ways[0]:>10}   (torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch})")
    for w in ways:
        med = statistics.median(times[w])
        print(f"{w:<15} {med:>14.3f} {args.batch / med:>8.0f} {base / med:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
