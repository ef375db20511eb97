"""ZooNet beside its anchor's own code on the same CPU and data: airbench94 as the `airbench` package (0.1.8)
publishes it, run on the CPU with the smallest changes that run it there, then `zoo train zoonet cifar10
--recipe speedrun` in the same script: time per epoch, total training time, final top-1 (with each one's
test-time augmentation).

    pip install airbench==0.1.8 --no-deps          # the peer's code (MIT), read from the installed package
    python benchmarks/tools/airbench_peer.py --data $ZOO_DATA --seeds 0 --out peer.jsonl

The changes to airbench's source, applied as text to the installed files (nothing else is touched):

    .half() -> .bfloat16()                 this CPU's 16-bit float (fp16 matmuls are not fast on CPUs)
    .cuda() dropped, map_location='cpu'    the CPU
    torch.cuda.Event -> a wall clock       its timer; torch.cuda.synchronize() -> nothing (the CPU is synchronous)
    LookaheadState also averages bf16      it averaged the float and half tensors

Its data is the real CIFAR-10 (the pickles under --data/cifar-10-batches-py, written as the train.pt/test.pt
files its loader caches). Each run is one line of --out; finished runs are skipped, so an interrupted script
resumes. Timing as airbench counts it: the training steps and the final evaluation, not the per-epoch one-pass
evaluation it prints. zoo's time is its run's wall clock (metrics.jsonl), evaluation included.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

CHANGES = {
    "utils.py": [(".half()", ".bfloat16()"), ("map_location=torch.device(gpu)", "map_location='cpu'"),
                 ("torch.cuda.Event(enable_timing=True)", "WallEvent()"), ("torch.cuda.synchronize()", "None"),
                 ("(torch.half, torch.float)", "(torch.half, torch.bfloat16, torch.float)")],
    "lib_airbench94.py": [("net = net.half().cuda()", "net = net.bfloat16()"),
                          ("from .utils import train, CifarLoader", "")],
}


class WallEvent:
    """torch.cuda.Event's timing interface on a wall clock."""

    def record(self) -> None:
        self.t = time.perf_counter()

    def elapsed_time(self, end: WallEvent) -> float:
        return 1e3 * (end.t - self.t)


def peer_modules() -> types.ModuleType:
    """airbench94's module, built from the installed package's source with CHANGES applied."""
    spec = importlib.util.find_spec("airbench")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("airbench is not installed: pip install airbench==0.1.8 --no-deps")
    folder = Path(next(iter(spec.submodule_search_locations)))
    utils = types.ModuleType("airbench_utils")
    utils.WallEvent = WallEvent
    exec(compile(_changed(folder / "utils.py"), "airbench/utils.py", "exec"), utils.__dict__)
    lib = types.ModuleType("airbench94")
    lib.__dict__.update(train=utils.train, CifarLoader=utils.CifarLoader)
    exec(compile(_changed(folder / "lib_airbench94.py"), "airbench/lib_airbench94.py", "exec"), lib.__dict__)
    lib.utils = utils
    return lib


def _changed(path: Path) -> str:
    text = path.read_text()
    for old, new in CHANGES[path.name]:
        if old not in text:
            sys.exit(f"{path} has no {old!r}: not airbench 0.1.8's source")
        text = text.replace(old, new)
    return text


def write_cifar(root: Path, into: Path) -> None:
    """The real CIFAR-10 as airbench's loader caches it: cifar10/{train,test}.pt with uint8 images [N, 32, 32, 3]."""
    folder = root / "cifar-10-batches-py"
    meta = pickle.loads((folder / "batches.meta").read_bytes(), encoding="latin1")
    for split, files in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        parts = [pickle.loads((folder / f).read_bytes(), encoding="latin1") for f in files]
        images = np.concatenate([p["data"] for p in parts]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = sum((p["labels"] for p in parts), [])
        torch.save({"images": torch.tensor(images), "labels": torch.tensor(labels), "classes": meta["label_names"]},
                   into / "cifar10" / f"{split}.pt")


def run_peer(lib, seed: int, work: Path) -> dict:
    """One airbench94 training run: its per-epoch times and accuracies as its own log reports them."""
    epochs = []

    def record(variables: dict, is_final_entry: bool) -> None:
        epochs.append({"epoch": variables.get("epoch"), "total_s": variables["total_time_seconds"],
                       "val_acc": variables.get("val_acc"), "tta_val_acc": variables.get("tta_val_acc")})
        print(f"airbench94: {epochs[-1]}", flush=True)

    lib.utils.print_training_details = record  # the name its train() reads from its module
    torch.manual_seed(seed)
    cwd = os.getcwd()
    os.chdir(work)  # its loader reads cifar10/ under the working folder
    try:
        lib.train94(run=seed, verbose=True)
    finally:
        os.chdir(cwd)
    trained = [e for e in epochs if isinstance(e["epoch"], int)]
    final = epochs[-1]
    return {"who": "airbench94", "seed": seed, "epochs": len(trained), "total_s": final["total_s"],
            "epoch_s": [b["total_s"] - a["total_s"] for a, b in zip([{"total_s": 0.0}] + trained, trained)],
            "top1": 100 * final["tta_val_acc"], "one_pass": [100 * e["val_acc"] for e in trained]}


def run_zoo(seed: int, data: Path, work: Path) -> dict:
    """One `zoo train zoonet cifar10 --recipe speedrun` run, read back from its metrics.jsonl and summary."""
    out = work / f"zoonet-{seed}"
    cmd = [sys.executable, "-m", "zoo.cli", "train", "zoonet", "cifar10", "--recipe", "speedrun", "--seed",
           str(seed), "--out", str(out), "--data-dir", str(data), "--no-verify", "--save-every", "0"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    trained = [m for m in lines if m.get("epoch", 0) >= 1]
    return {"who": "zoonet", "seed": seed, "epochs": len(trained), "total_s": sum(m["wall_s"] for m in trained),
            "epoch_s": [m["wall_s"] for m in trained],  # each epoch's own: steps and evaluation
            "top1": trained[-1]["test_acc"], "one_pass": [m["test_acc"] for m in trained[:-1]],
            "command_s": wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="dataset root holding cifar-10-batches-py")
    ap.add_argument("--seeds", default="0", help="comma list")
    ap.add_argument("--who", default="airbench94,zoonet", help="comma list of airbench94, zoonet")
    ap.add_argument("--out", default="peer.jsonl")
    args = ap.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    out = Path(args.out)
    done = {(r["who"], r["seed"]) for r in map(json.loads, out.read_text().splitlines())} if out.exists() else set()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "cifar10").mkdir()
        lib = None
        for seed in map(int, args.seeds.split(",")):
            for who in args.who.split(","):
                if (who, seed) in done:
                    continue
                if who == "airbench94":
                    if lib is None:
                        write_cifar(Path(args.data), work)
                        lib = peer_modules()
                    row = run_peer(lib, seed, work)
                else:
                    row = run_zoo(seed, Path(args.data), work)
                row.update(date=time.strftime("%Y-%m-%d"), load=os.getloadavg()[0], threads=torch.get_num_threads())
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
