"""What writing ResNet-20's option-A shortcuts as one 1x1 convolution buys (zoo/export/shortcut.py): the shipped
weights exported twice, with and without the rewrite, fp32 and int8, then every file timed in onnxruntime at
batch 256 in zoo bench's interleaved rounds (zoo.bench.measure), and its top-1 on the eval set.

    ZOO_DATA=... ZOO_VERIFY=0 python benchmarks/tools/shortcut_convs.py [MODEL DATASET]   # default resnet20 cifar10

Reported in docs/measurements.md, int8 (graph rewrites).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def main(arch: str = "resnet20", dataset: str = "cifar10", batch: int = 256) -> None:
    import zoo.export.convert as convert
    from zoo.bench.backends import OrtBackend
    from zoo.bench.measure import predictions, throughput_rounds
    from zoo.data import DataOptions, get_dataset_spec, load_eval_set
    from zoo.export import export

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
    images, labels = ev.normalized(spec), ev.labels
    backends = {k: OrtBackend().load(p) for k, p in files.items()}
    rates = dict(zip(backends, throughput_rounds(list(backends.values()), images[:batch], warmup=20, runs=25)))
    print(f"{arch}.{dataset}, {ev.label}, batch {batch}, onnxruntime:")
    for k, b in backends.items():
        print(f"  {k:12s} {rates[k]:8,.0f} img/s  top-1 {100 * (predictions(b, images) == labels).mean():.2f}%")
    for prec in ("fp32", "int8"):
        print(f"  {prec}: convs / chains {rates[f'{prec} convs'] / rates[f'{prec} chains']:.2f}x")


if __name__ == "__main__":
    main(*sys.argv[1:3])
