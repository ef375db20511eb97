"""What writing ResNet-20's option-A shortcuts as one 1x1 convolution buys (zoo/export/shortcut.py): the shipped
weights exported twice, with and without the rewrite, fp32 and int8, then every file timed in onnxruntime at
batch 256 in five interleaved 1-s turns, and its top-1 on the eval set.

    ZOO_DATA=... ZOO_VERIFY=0 python benchmarks/shortcut_convs.py [MODEL DATASET]   # default resnet20 cifar10
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(arch: str = "resnet20", dataset: str = "cifar10", batch: int = 256, rounds: int = 5) -> None:
    import zoo.export.convert as convert
    from zoo.data import DataOptions, get_dataset_spec, load_eval_set
    from zoo.export import export, ort_session

    data, spec = DataOptions(), get_dataset_spec(dataset)
    out, files = Path(tempfile.mkdtemp()), {}
    rewrite = convert.shortcuts_as_convs
    for name, fn in (("chains", lambda model: 0), ("convs", rewrite)):
        convert.shortcuts_as_convs = fn
        for prec in ("fp32", "int8"):
            files[f"{prec} {name}"] = export(arch, dataset, pretrained=True, precision=prec, out=out / name,
                                             data=data).path
    convert.shortcuts_as_convs = rewrite
    ev = load_eval_set(spec, data)
    images, labels = ev.normalized(spec), ev.labels.numpy()
    sessions = {k: ort_session(p) for k, p in files.items()}
    x, rates = images[:batch], {k: [] for k in sessions}
    for _ in range(rounds):
        for k, s in sessions.items():
            time.sleep(0.05)
            s.run(None, {"input": x})
            t0, n = time.perf_counter(), 0
            while time.perf_counter() - t0 < 1.0:
                s.run(None, {"input": x})
                n += 1
            rates[k].append(batch * n / (time.perf_counter() - t0))
    print(f"{arch}.{dataset}, {ev.label}, batch {batch}, onnxruntime:")
    for k, s in sessions.items():
        pred = np.concatenate([s.run(None, {"input": images[i:i + 500]})[0].argmax(1)
                               for i in range(0, len(images), 500)])
        print(f"  {k:12s} {np.median(rates[k]):8,.0f} img/s  top-1 {100 * (pred == labels).mean():.2f}%")
    for prec in ("fp32", "int8"):
        print(f"  {prec}: convs / chains {np.median(rates[f'{prec} convs']) / np.median(rates[f'{prec} chains']):.2f}x")


if __name__ == "__main__":
    main(*sys.argv[1:3])
