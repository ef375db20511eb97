"""`zoo predict MODEL DATASET DIR` at defaults (`--runtime auto`) against `--runtime onnxruntime`, end to end: the
test split written as PNG files, each command run as a user runs it (a fresh process), alternating, wall seconds
and top-1 from the CSV. Run `zoo bench MODEL DATASET --runtime all --precision fp32,int8` first, or auto has
nothing to choose from.

    ZOO_DATA=<data> ZOO_VERIFY=0 python benchmarks/tools/predict_auto.py [--model resnet20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_pngs(dataset: str, folder: Path, n: int) -> None:
    from PIL import Image

    from zoo.data import DataOptions, load_split

    x, y = load_split(dataset, "test", DataOptions())
    for i in range(min(n, len(y))):
        Image.fromarray(x[i].permute(1, 2, 0).squeeze(-1).numpy()).save(folder / f"{i:05d}_{int(y[i])}.png")


def run(model: str, dataset: str, folder: Path, runtime: str | None) -> tuple[float, float, str]:
    """(wall seconds, top-1, what ran) of one `zoo predict` process."""
    cmd = [sys.executable, "-m", "zoo", "predict", model, dataset, str(folder), "--csv", "--top-k", "1",
           *(["--runtime", runtime] if runtime else [])]
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t
    from zoo.data import get_dataset_spec

    names = list(get_dataset_spec(dataset).class_names)
    rows = list(csv.DictReader(io.StringIO(out)))
    right = sum(names.index(r["class1"]) == int(Path(r["file"]).stem.split("_")[1]) for r in rows)
    return wall, 100 * right / len(rows), f"{rows[0]['runtime']} {rows[0]['precision']}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_pngs(args.dataset, folder, args.images)
        run(args.model, args.dataset, folder, "onnxruntime")  # warm the export cache and the page cache
        times: dict[str, list[float]] = {"auto": [], "onnxruntime": []}
        for _ in range(args.rounds):
            for runtime in ("auto", "onnxruntime"):
                wall, top1, ran = run(args.model, args.dataset, folder, None if runtime == "auto" else runtime)
                times[runtime].append(wall)
                print(f"{runtime:12s} {wall:6.2f} s  top-1 {top1:.2f}%  ran {ran}", flush=True)
    a, o = statistics.median(times["auto"]), statistics.median(times["onnxruntime"])
    print(f"median: auto {a:.2f} s, onnxruntime {o:.2f} s: auto is {o / a:.2f}x")


if __name__ == "__main__":
    main()
