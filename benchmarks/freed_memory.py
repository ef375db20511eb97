"""Training steps/s (or, with --infer, PyTorch eager inference calls/s) with glibc's default allocator
settings and with zoo.core.memory.keep_freed_memory(), each in a fresh process (the setting cannot be undone),
alternating A B A B so drift hits both alike.

    python benchmarks/freed_memory.py [--pairs 3] [--infer] [ARCH:DATASET:BATCH:PRECISION:CHANNELS_LAST ...]

Prints the median step's (call's) images/s per process and the ratio per pair.
"""

import argparse
import subprocess
import sys

STEP = """
import statistics, sys, time
import torch, torch.nn.functional as F
if sys.argv[1] == "kept":
    from zoo.core.memory import keep_freed_memory
    assert keep_freed_memory(), "not glibc"
from zoo.models import create_model
from zoo.train.loop import autocast
arch, dataset, batch, precision, cl = sys.argv[2].split(":")
batch, cl = int(batch), cl == "1"
torch.manual_seed(0)
model = create_model(arch, dataset).train()
from zoo.data.specs import get_dataset_spec
spec = get_dataset_spec(dataset)
x, y = torch.randn(batch, *spec.input_shape), torch.randint(0, spec.num_classes, (batch,))
if cl:
    model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
def infer():
    t = time.perf_counter()
    with torch.inference_mode(), autocast(torch.device("cpu"), precision):
        model(x)
    return time.perf_counter() - t
def step():
    t = time.perf_counter()
    with autocast(torch.device("cpu"), precision):
        loss = F.cross_entropy(model(x).float(), y)
    opt.zero_grad(); loss.backward(); opt.step()
    return time.perf_counter() - t
if sys.argv[3] == "infer":
    model.eval()
    step = infer
for _ in range(5):
    step()
times, t0 = [], time.perf_counter()
while len(times) < 8 or (len(times) < 60 and time.perf_counter() - t0 < 5):
    times.append(step())
print(batch / statistics.median(times))
"""


def run(mode: str, case: str, what: str) -> float:
    out = subprocess.run([sys.executable, "-c", STEP, mode, case, what], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="*", default=["cnn:mnist:500:bf16:1", "resnet20:cifar10:256:bf16:1",
                                                 "resnet20:cifar10:256:fp32:0", "cnn:mnist:500:fp32:0"])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--infer", action="store_true", help="time eager inference calls instead of training steps")
    args = ap.parse_args()
    what = "infer" if args.infer else "train"
    for case in args.cases:
        for _ in range(args.pairs):
            default, kept = run("default", case, what), run("kept", case, what)
            print(f"{what} {case}: default {default:,.0f} img/s, kept {kept:,.0f} img/s -> {kept / default:.2f}x",
                  flush=True)


if __name__ == "__main__":
    main()
