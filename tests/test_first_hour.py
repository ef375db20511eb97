"""What a new user meets in the first hour: digits drawn either way round, refusals that come at once, reports
that hold what was benched, figures that are not shown when they cannot be right, plain words, and the
README's Python that runs as written."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.cli import main
from zoo.core.cards import BenchRow
from zoo.core.errors import plural

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "weights"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _sample(name: str, n: int):
    d = np.load(WEIGHTS / f"eval_{name}.npz")  # real test images shipped in the package
    return d["images"][:n], d["labels"][:n]


# ---------------------------------------------------------------- ink polarity
def test_real_digits_drawn_dark_on_light_read_as_the_originals(tmp_path, capsys):
    images, labels = _sample("mnist", 60)
    for i, (img, y) in enumerate(zip(images, labels)):
        Image.fromarray(img[0]).save(tmp_path / f"{i:03d}_{y}.png")
        Image.fromarray(255 - img[0]).save(tmp_path / f"{i:03d}_{y}_inv.png")
    assert main(["predict", "cnn", "mnist", str(tmp_path), "--json", "--top-k", "1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {Path(r["file"]).name: r for r in rows}
    originals = [n for n in by_name if not n.endswith("_inv.png")]
    for n in originals:
        inv = by_name[n.replace(".png", "_inv.png")]
        assert inv["inverted"] and not by_name[n]["inverted"]
        assert inv["top"][0]["class"] == by_name[n]["top"][0]["class"]
    right = sum(by_name[n]["top"][0]["class"] == n.split("_")[1].split(".")[0] for n in originals)
    assert right >= 0.95 * len(originals)
    assert main(["predict", "cnn", "mnist", str(tmp_path), "--csv", "--top-k", "1", "--invert", "no"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(",inverted,runtime,precision") and all(",no," in ln for ln in lines[1:])


def test_photos_are_never_inverted_and_a_folder_records_its_polarity(tmp_path):
    from zoo.data import FolderOptions, open_folder
    from zoo.data.images import infer_polarity, orient

    white = np.full((28, 28, 3), 250, np.uint8)
    assert orient(white, "as-is")[1] is False and orient(white, "light-on-dark")[1] is True
    assert orient(white, "dark-on-light")[1] is False and orient(white, "as-is", "yes")[1] is True
    images, labels = _sample("mnist", 40)
    for i, (img, y) in enumerate(zip(images, labels)):
        (tmp_path / "d" / str(y)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(255 - img[0]).save(tmp_path / "d" / str(y) / f"{i}.png")  # drawn dark on light
    spec = open_folder(tmp_path / "d", FolderOptions(), log=lambda *_: None)
    assert spec.polarity == "dark-on-light" and infer_polarity(images) == "light-on-dark"


# ---------------------------------------------------------------- refusals before torch
@pytest.mark.parametrize("argv", [["train", "resnet2", "cifar10"], ["train", "cnn", "minst"],
                                  ["train", "cnn", "no/such/folder"], ["export", "resnet2", "cifar10", "--pretrained"],
                                  ["bench", "resnet2", "cifar10"], ["predict", "restnet20", "cifar10", "x.png"],
                                  ["list", "resnet2"]])
def test_unknown_names_are_refused_before_torch_is_imported(argv):
    code = ("import sys, contextlib, io\nimport zoo.cli as c\nerr = io.StringIO()\n"
            f"with contextlib.redirect_stderr(err):\n    rc = c.main({argv!r})\n"
            "print(rc, 'torch' in sys.modules, err.getvalue().strip())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    rc, torch_loaded, message = out.strip().split(" ", 2)
    assert rc == "2" and torch_loaded == "False", out
    assert message.count("\n") == 0 and ("did you mean" in message or "not found" in message), message
    if argv[1] in ("resnet2", "restnet20"):
        assert "unknown model" in message and "did you mean resnet20" in message  # predict says it as train does


def test_the_quick_names_are_the_registries():
    # a fresh interpreter: in this one, other tests register their own models and open folders as datasets
    code = ("import zoo; from zoo.core import names\n"
            "assert set(names.MODELS) == set(zoo.list_models()), (names.MODELS, zoo.list_models())\n"
            "assert set(names.DATASETS) == set(zoo.list_datasets()), (names.DATASETS, zoo.list_datasets())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- reports
def _row(**kw) -> BenchRow:
    base = dict(arch="cnn", dataset="mnist", precision="fp32", provider="cpu", runtime="onnxruntime", top1=99.0,
                latency_ms_p50=47.97, throughput_img_s=1000.0, eager_latency_ms_p50=1.0, speedup_vs_eager=0.02)
    return BenchRow(**{**base, **kw})


def test_a_figure_timed_under_load_is_shown_as_busy_and_kept_raw():
    from zoo.bench.report import cell, to_json, to_markdown

    busy = _row(flags=["busy (others used 60% of the CPU)"])
    eager_busy = _row(flags=["eager-busy (others used 40% of the CPU while eager was timed)"])
    assert cell(busy, "latency_ms_p50", "{:.3f}") == "busy" and cell(busy, "top1", "{:.2f}") == "99.00"
    assert cell(eager_busy, "speedup_vs_eager", "{:.1f}") == "busy"
    assert cell(eager_busy, "latency_ms_p50", "{:.3f}") == "47.970"
    report = {"environment": {"date": "d", "cpu": "c"}, "rows": [busy], "notes": []}
    assert "47.970" not in to_markdown(report) and json.loads(to_json(report))["rows"][0]["latency_ms_p50"] == 47.97


def test_no_column_of_dashes():
    from zoo.bench.report import to_markdown

    md = to_markdown({"environment": {"date": "d", "cpu": "c"}, "rows": [_row()], "notes": []})
    assert "img/s by batch" not in md and "p50 ms" in md


def test_a_second_bench_keeps_the_previous_report(tmp_path, fake_root, capsys):
    args = ["bench", "mlp", "mnist", "--random", "--no-eager", "--data-dir", str(fake_root), "--no-verify",
            "--warmup", "2", "--repeat", "5", "--batch", "16", "--out", str(tmp_path / "b")]
    assert main(args) == 0
    first = (tmp_path / "b" / "report.json").read_text()
    assert main(args) == 0
    assert "previous report" in capsys.readouterr().out
    assert (tmp_path / "b" / "previous" / "report.json").read_text() == first


def test_plots_hold_the_benched_models_every_runtime_and_sane_axes(tmp_path, monkeypatch):
    from zoo.bench import plots

    figs = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: figs.setdefault(path.name, fig) and path)
    rows = [_row(runtime=r, precision=p, onnx_mb=0.3) for r, p in
            (("onnxruntime", "fp32"), ("openvino (bf16)", "fp32"), ("onnxruntime", "int8"))]
    runs = tmp_path / "runs"
    for arch, ds in (("cnn", "mnist"), ("mlp", "cifar10")):  # one run of a benched model, one of another
        run = runs / f"{arch}.{ds}"
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"arch": arch, "dataset": ds, "recipe": {"recipe": "fast"}}))
        (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_acc": 99.9}) + "\n")
    plots.render_plots({"rows": rows}, tmp_path / "out", runs, log=lambda *_: None)
    assert "curves_mnist.png" in figs and "curves_cifar10.png" not in figs
    ax = figs["accuracy_vs_latency.png"].axes[0]
    assert len(ax.collections) == 3  # a marker per runtime and precision
    curve = figs["curves_mnist.png"].axes[0]
    lo, hi = curve.get_xlim()
    assert curve.get_ylim()[1] <= 100.5 and all(t == int(t) for t in curve.get_xticks() if lo <= t <= hi)


def test_plain_words():
    assert (plural(1, "image"), plural(2, "run"), plural(1000, "image")) == ("1 image", "2 runs", "1,000 images")


# ---------------------------------------------------------------- the README's Python
def test_the_readme_python_runs_as_written(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert blocks
    images, _ = _sample("cifar10", 1)
    Image.fromarray(images[0].transpose(1, 2, 0)).save(tmp_path / "cat.png")
    for code in blocks:
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                           env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
        assert r.returncode == 0, r.stderr[-2000:]
