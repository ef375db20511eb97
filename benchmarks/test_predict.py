"""`zoo predict` on 10,000 PNG files written from the CIFAR-10 test split, against a plain loop (Pillow open ->
torchvision transforms -> PyTorch model, batch 1); and its start-up on one image with an .onnx source.

    ZOO_DATA=<data> ZOO_VERIFY=0 python -m pytest benchmarks/test_predict.py -n 0 --benchmark-only -s
"""

import statistics
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

N = 10_000


@pytest.fixture(scope="module")
def pngs(data_root, tmp_path_factory):
    from zoo.data import DataOptions, load_split

    root, kind = data_root
    x, y = load_split("cifar10", "test", DataOptions(root))
    folder = tmp_path_factory.mktemp("pngs")
    paths = []
    for i in range(min(N, len(y))):
        paths.append(folder / f"{i:05d}.png")
        Image.fromarray(x[i].permute(1, 2, 0).numpy()).save(paths[-1])
    return paths, y[:len(paths)].numpy(), kind


def plain_loop(paths, model, spec):
    import torchvision.transforms as T

    tf = T.Compose([T.ToTensor(), T.Normalize(spec.mean, spec.std)])
    preds = []
    with torch.inference_mode():
        for p in paths:
            with Image.open(p) as img:
                preds.append(int(model(tf(img.convert("RGB"))[None]).argmax(1)))
    return np.array(preds)


def test_predict_vs_plain_loop(benchmark, pngs, tmp_path_factory):
    import zoo
    from zoo.bench.backends import OrtBackend
    from zoo.bench.measure import top1
    from zoo.data import DataOptions, get_dataset_spec, load_split
    from zoo.export import export

    paths, labels, kind = pngs
    onnx = export("resnet20", "cifar10", pretrained=True, out=tmp_path_factory.mktemp("onnx"),
                  data=DataOptions()).path
    predictor = zoo.Predictor(onnx)
    t = time.perf_counter()
    results = benchmark.pedantic(lambda: predictor.predict(paths, top_k=1), rounds=1, iterations=1)
    fast = len(paths) / (time.perf_counter() - t)
    names = list(get_dataset_spec("cifar10").class_names)
    ours = np.array([names.index(r.top[0][0]) for r in results])
    model = zoo.load("resnet20", "cifar10")
    t = time.perf_counter()
    theirs = plain_loop(paths, model, get_dataset_spec("cifar10"))
    slow = len(paths) / (time.perf_counter() - t)
    x, y = load_split("cifar10", "test", DataOptions())
    bench_top1 = top1(OrtBackend().load(onnx), zoo.data.normalize(x[:len(paths)], get_dataset_spec("cifar10")),
                      y[:len(paths)].numpy())
    acc = 100 * (ours == labels).mean()
    benchmark.extra_info.update({"images": len(paths), "data": kind, "predict_img_s": fast, "plain_loop_img_s": slow,
                                 "top1_predict": acc, "top1_bench": bench_top1})
    print(f"\nzoo predict {fast:.0f} img/s vs plain loop {slow:.0f} img/s ({fast / slow:.1f}x) on {len(paths)} "
          f"PNGs ({kind}); top-1 {acc:.2f}% (zoo bench's figure on the same images: {bench_top1:.2f}%); "
          f"plain loop top-1 {100 * (theirs == labels).mean():.2f}%")
    assert acc == pytest.approx(bench_top1, abs=1e-9)
    assert fast >= 3 * slow


def test_predict_start_up_with_an_onnx_file(benchmark, pngs, tmp_path_factory):
    from zoo.data import DataOptions
    from zoo.export import export

    onnx = export("resnet20", "cifar10", pretrained=True, out=tmp_path_factory.mktemp("onnx1"),
                  data=DataOptions()).path
    cmd = [sys.executable, "-m", "zoo.cli", "predict", str(onnx), str(pngs[0][0]), "--json"]
    walls = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        walls.append(time.perf_counter() - t)
    wall = statistics.median(walls)
    benchmark.extra_info["start_up_s"] = wall
    benchmark.pedantic(lambda: None, rounds=1)
    print(f"\nzoo predict on one image with an .onnx source: {wall:.3f} s wall (median of 5)")
    assert wall <= 0.5
