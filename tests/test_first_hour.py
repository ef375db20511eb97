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
# Placeholders a Python block in the docs may hold, each marked as such beside it, and what the test fills in.
PLACEHOLDERS = {'"path/to/zoo"': lambda root: repr(str(REPO)), '"data"': lambda root: repr(str(root))}


@pytest.mark.parametrize("page", [pytest.param(n, marks=pytest.mark.e2e if n == "training.md" else ())  # trains
                                  for n in ["README.md", *sorted(p.name for p in (REPO / "docs").glob("*.md")
                                                                 if "```python" in p.read_text())]])
def test_every_python_block_in_the_docs_runs_as_written(page, tmp_path, fake_root):
    text = (REPO / page if page == "README.md" else REPO / "docs" / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    for code in blocks:
        for placeholder, fill in PLACEHOLDERS.items():
            if placeholder in code:
                assert re.search(re.escape(placeholder.strip('"')) + r"[^\n]*#[^\n]*", text), \
                    f"{page}: {placeholder} is not marked as a placeholder"
                code = code.replace(placeholder, fill(fake_root))
        r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                           env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
        assert r.returncode == 0, (page, r.stderr[-2000:])


# ---------------------------------------------------------------- a fresh clone: the README's first commands
def _zoo(argv, **env):
    """zoo in a fresh interpreter: (exit code, whether torch was imported, stdout, stderr)."""
    code = ("import sys, contextlib, io\nimport zoo.cli as c\nout, err = io.StringIO(), io.StringIO()\n"
            "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n    rc = c.main(sys.argv[1:])\n"
            "sys.__stdout__.write(repr((rc, 'torch' in sys.modules, out.getvalue(), err.getvalue())))")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env={**__import__("os").environ, "COLUMNS": "200", **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return eval(done.stdout)


@pytest.mark.parametrize("model, dataset, n", [("resnet20", "cifar10", 20), ("cnn", "mnist", 20)])
def test_predict_with_no_images_reads_the_shipped_samples_without_torch(model, dataset, n):
    """The README's first command on a fresh install: the shipped export is used as it is (no torch), the
    sample images are real test images named for their class, and the model reads most of them right."""
    rc, torch_loaded, out, err = _zoo(["predict", model, dataset, "--json", "--top-k", "1"])
    assert rc == 0 and not torch_loaded, err
    assert "no images given: classifying the sample" in err and f"predicting with {model}.{dataset}: the weights " \
        "shipped with zoo" in err
    rows = json.loads(out)
    assert len(rows) == n
    right = [Path(r["file"]).name.split("_")[0] == r["top"][0]["class"] for r in rows]
    assert sum(right) >= 0.8 * n, rows
    if dataset == "mnist":  # digits drawn both ways round, both read
        dark = [ok for r, ok in zip(rows, right) if "dark-on-light" in r["file"]]
        assert len(dark) == 10 and sum(dark) >= 8


@pytest.mark.parametrize("argv", [["predict", "resnet20", "cifar10", "photos/"],
                                  ["predict", "resnet20", "cifar10", "no/*.png", "gone.jpg"],
                                  ["bench", "resnet20", "cifar10", "--weights", "no/such/run"],
                                  ["export", "resnet20", "cifar10", "--weights", "no/such/run"]])
def test_a_path_that_is_not_there_is_refused_before_any_model(argv):
    rc, torch_loaded, out, err = _zoo(argv)
    assert rc == 2 and not torch_loaded and err.count("\n") == 1, (rc, err)
    assert "no such" in err or "not found" in err or "no file matches" in err, err


def test_zoo_list_reads_its_figures_without_building_a_model():
    rc, torch_loaded, out, err = _zoo(["list", "--json"])
    assert rc == 0 and not torch_loaded
    rows = json.loads(out)
    assert len(rows) >= 30 and {"params", "size_mb", "macs", "top1"} <= set(rows[0])
    rc, _, out, _ = _zoo(["list", "resnet*", "--paper", "--json"])
    assert [(r["model"], r["dataset"]) for r in json.loads(out)] == [("resnet20", "cifar10"), ("resnet18", "cifar10"),
                                                                     ("resnet20", "cifar100"), ("resnet18", "cifar100")]


def test_the_python_api_raises_for_an_image_it_cannot_read(tmp_path):
    import zoo
    from zoo.core.errors import ZooError

    p = zoo.Predictor("cnn", "mnist")
    samples = zoo.sample_images("mnist")
    assert len(samples) == 20 and all(s.suffix == ".png" for s in samples)
    with pytest.raises(ZooError, match=r"1 of 2 images could not be read: .*cat.png: cannot read it \(No such file"):
        p.predict([samples[0], tmp_path / "cat.png"])
    results = p.predict([samples[0], tmp_path / "cat.png"], errors="return")
    assert results[0].top[0][0] == "0" and results[1].reason
    with pytest.raises(ZooError, match="no sample images for 'kmnist'"):
        zoo.sample_images("kmnist")


# ---------------------------------------------------------------- a busy machine still gets a recommendation
def _busy(runtime, precision, p50, img_s, load=60):
    return _row(runtime=runtime, precision=precision, latency_ms_p50=p50, throughput_img_s=img_s, throughput_batch=256,
                weights_sha256="ab" * 32, export_revision=7, torch_top1_change=0.0, torch_agreement=100.0,
                load=load / 100, flags=[f"busy (others used {load}% of the CPU)"])


def test_busy_rows_give_a_provisional_recommendation_that_a_quiet_bench_replaces(tmp_path, monkeypatch):
    import zoo.core.deploy as deploy
    from zoo.bench.recommend import line, recommend

    monkeypatch.setattr(deploy, "cache_file", lambda: tmp_path / "deploy.json")
    rows = [_busy("onnxruntime", "fp32", 1.0, 631.0), _busy("openvino (f32)", "int8", 0.4, 2817.0, load=72)]
    rec = recommend(rows)["cnn.mnist"]
    assert rec["throughput"]["runtime"] == "openvino (f32)" and rec["throughput"]["precision"] == "int8"
    assert "72%" in rec["provisional"] and "provisional" in line("cnn.mnist", rec)
    taken = recommend(rows, accept_busy=True)["cnn.mnist"]
    assert taken["throughput"]["runtime"] == "openvino (f32)" and "provisional" not in taken
    key = deploy.deploy_key("ab" * 32, 7, 2)
    assert deploy.remember(key, rec)  # nothing there yet: the provisional one is kept
    assert deploy.remember(key, taken) and not deploy.remember(key, rec)  # clean replaces it; busy never a clean one
    assert "provisional" not in deploy.recall("ab" * 32, 7, 2)[0]


def test_a_damaged_deploy_entry_is_ignored_not_a_traceback(tmp_path, monkeypatch):
    import zoo.core.deploy as deploy

    monkeypatch.setattr(deploy, "cache_file", lambda: tmp_path / "deploy.json")
    key = deploy.deploy_key("ab" * 32, 7, 2)
    for bad in ({}, "x", None, 3, {"latency": {"runtime": "onnxruntime"}, "throughput": 1},
                {"latency": {"runtime": "o", "precision": "fp32", "p50_ms": "1", "img_s": 1, "batch": 1}}):
        (tmp_path / "deploy.json").write_text(json.dumps({key: bad}))
        assert deploy.recall("ab" * 32, 7, 2)[0] is None and deploy.entries() == []


# ---------------------------------------------------------------- the README's tour, as written
def _tour(page: str) -> list[list[str]]:
    """The zoo commands of a page's bash blocks, up to its first Python block (the README's install and tour,
    getting-started's install and tour)."""
    import shlex

    text = (REPO / page).read_text().split("```python")[0]
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [shlex.split(ln, comments=True)[1:] for b in blocks for ln in b.splitlines() if ln.startswith("zoo ")]


@pytest.mark.e2e
@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_the_tour_commands_run_as_written(page, tmp_path, fake_root, monkeypatch, capsys):
    """Every zoo command of a page's tour, in order, in an empty folder: my_photos/ and new_photos/ (the
    reader's own folders, as the text says) are filled with the shipped sample images; the dataset the tour
    downloads is the generated one (--data-dir, as --download would leave it)."""
    import shutil

    monkeypatch.chdir(tmp_path)
    for folder in ("my_photos", "new_photos"):
        for f in sorted((WEIGHTS / "samples" / "cifar10").glob("*.png"))[:12]:
            (tmp_path / folder / f.name.split("_")[0]).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, tmp_path / folder / f.name.split("_")[0] / f.name)
    commands = _tour(page)
    assert ["predict", "resnet20", "cifar10"] in commands[:2] and len(commands) >= 6
    for argv in commands:
        if argv[0] in ("train", "export", "bench"):
            argv = [*argv, "--data-dir", str(fake_root), "--no-verify"]
        if argv[0] == "bench":
            argv = [*argv, "--repeat", "5", "--warmup", "2", "--batch", "8"]
        assert main(argv) == 0, (argv, capsys.readouterr().err[-1500:])
        said = capsys.readouterr()
        if argv[0] == "bench":
            assert said.out.startswith("zoo: benching cnn.mnist: the weights in runs/cnn.mnist.fast")


# ---------------------------------------------------------------- the light install: no PyTorch
LIGHT = ("import sys\nfor m in ('torch', 'torchvision', 'timm', 'onnx', 'onnxscript', 'matplotlib'):\n"
         "    sys.modules[m] = None\n")


def test_predict_and_serve_run_without_torch_and_training_says_what_to_install(tmp_path):
    """pip install zoo-classifiers (no extras) predicts and serves the shipped exports; a command that needs
    PyTorch says which extra to install, in one line."""
    code = LIGHT + ("from zoo.serve import service\nsvc = service('cnn', 'mnist')\n"
                    "from zoo.cli import main\nrc = main(['predict', 'cnn', 'mnist', '--json'])\n"
                    "rc2 = main(['train', 'cnn', 'mnist', '--epochs', '1'])\nprint(rc, rc2)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "0 2"
    assert re.search(r"get one with `zoo bench --onnx \S+cnn\.mnist\.onnx --runtime all`", done.stderr), done.stderr
    err = done.stderr.strip().splitlines()[-1]
    assert err.startswith("zoo: error: zoo train needs torch") and "zoo-classifiers[train]" in err
    deps = (REPO / "pyproject.toml").read_text().split("[project.optional-dependencies]")[0]
    assert not re.search(r'"(torch|torchvision|timm|onnx|matplotlib)\b', deps)  # none of them in the base install


def test_the_shipped_exports_say_nothing_of_the_machine_that_made_them():
    """torch's exporter records each node's Python stack (file paths of the exporting machine): dropped."""
    files = sorted((WEIGHTS / "exports").rglob("*.onnx"))
    assert len(files) == 2 and not [f for f in files if b"stack_trace" in f.read_bytes()]


def test_bench_measures_an_exported_file_without_torch(tmp_path):
    """zoo bench --onnx in the light install: the shipped sample, onnxruntime's top-1 on it, the counts the file
    carries, a report; torch, onnx and matplotlib never imported."""
    onnx = next((WEIGHTS / "exports").glob("*/resnet20.cifar10.onnx"))
    code = LIGHT + ("from zoo.cli import main\n"
                    f"rc = main(['bench', '--onnx', {str(onnx)!r}, '--out', 'b', '--repeat', '20'])\n"
                    "print(rc, [m for m in ('torch', 'onnx', 'matplotlib') if sys.modules.get(m) is not None])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "0 []", done.stderr[-2000:]
    assert "no plots in this report: they need" in done.stdout + done.stderr
    row = json.loads((tmp_path / "b" / "report.json").read_text())["rows"][0]
    from zoo.core.backends import OrtBackend
    from zoo.core.shipped import eval_sample, get_card
    from zoo.data import get_dataset_spec, normalize

    x, y = eval_sample("cifar10")
    pred = OrtBackend().load(onnx).predict(normalize(x, get_dataset_spec("cifar10"))).argmax(1)
    assert row["eval_set"] == "shipped sample (1000)" and row["top1"] == pytest.approx(100 * (pred == y).mean())
    assert row["params"] == get_card("resnet20", "cifar10").num_params and row["macs"] == 2 * 40_551_040  # flip
