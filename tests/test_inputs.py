"""What a hostile but realistic user hands zoo outside training I/O: paths that are not files, files that are
not images, images that are not pictures, metadata that lies, configs of the wrong types, CSVs that leak or
reach out, signals at the edges of an epoch. Each case ends in one line (or a clean result), never a hang, a
traceback or a silent wrong answer."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import data, interrupt_after, train_fast
from PIL import Image

from zoo.cli import main
from zoo.core.errors import ZooError
from zoo.data import get_dataset_spec
from zoo.data.images import ImageSpec, Problem, decode, find_images
from zoo.train.loop import Interrupted
from zoo.train.recipes import get_recipe

SPEC = ImageSpec(1, 28, (0.5,), (0.5,))
REPO = Path(__file__).resolve().parents[1]


def _png(path: Path, size=(28, 28)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, size[::-1], dtype=np.uint8)).save(path, "PNG")
    return path


def _in_child(code: str, timeout: float = 60) -> str:
    """Run `code` in a fresh interpreter: a hang fails the test (after `timeout` s) instead of stalling it."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


# ---------------------------------------------------------------- paths that are not image files
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_named_like_an_image_is_refused_not_read(tmp_path):
    _png(tmp_path / "folder" / "ok.png")
    os.mkfifo(tmp_path / "folder" / "x.png")
    os.mkfifo(tmp_path / "alone.png")
    out = _in_child(f"""
from pathlib import Path
from zoo.data.images import ImageSpec, decode, find_images
found, problems = find_images([{str(tmp_path / 'folder')!r}, {str(tmp_path / 'alone.png')!r}])
print([p.name for p in found], [p.reason for p in problems])
print(decode(Path({str(tmp_path / 'alone.png')!r}), ImageSpec(1, 28, (0.5,), (0.5,))).reason)
""")
    names, reasons = out.splitlines()[0], out.splitlines()[1]
    assert names.startswith("['ok.png']") and "not a regular file" in names
    assert "not a regular file" in reasons


def test_a_glob_through_links_up_the_tree_ends_and_names_each_image_once(tmp_path):
    _png(tmp_path / "d" / "img.png")
    (tmp_path / "d" / "up1").symlink_to("..")
    (tmp_path / "d" / "up2").symlink_to("..")
    out = _in_child(f"""
from zoo.data.images import find_images
found, problems = find_images([{str(tmp_path / 'd') + '/**/*.png'!r}, {str(tmp_path / 'd')!r}])
print(len(found), len(problems))
""")
    assert out.split() == ["1", "0"]


def test_a_file_named_twice_through_links_is_classified_once(tmp_path):
    _png(tmp_path / "d" / "a.png")
    _png(tmp_path / "outside" / "o.png")
    (tmp_path / "d" / "b.png").symlink_to("a.png")  # the same file by another name
    (tmp_path / "d" / "o.png").symlink_to(tmp_path / "outside" / "o.png")
    (tmp_path / "d" / "gone.png").symlink_to("nowhere.png")  # a dangling link is no image
    found, problems = find_images([str(tmp_path / "d"), str(tmp_path / "outside" / "o.png"),
                                   str(tmp_path / "d" / "*.png")])
    assert [p.name for p in found] == ["a.png", "o.png"] and problems == []


def test_postscript_named_png_never_reaches_ghostscript(tmp_path):
    f = tmp_path / "x.png"
    f.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    got = decode(f, SPEC)
    assert isinstance(got, Problem) and got.reason.startswith("not an image zoo reads (PNG, JPEG")


def test_a_strip_of_pixels_is_refused_before_it_is_scaled_up(tmp_path):
    got = decode(_png(tmp_path / "strip.png", size=(5000, 8)), SPEC)
    assert isinstance(got, Problem) and "too thin to be a picture" in got.reason
    assert not isinstance(decode(_png(tmp_path / "wide.png", size=(400, 10)), SPEC), Problem)  # 40:1 is read


# ---------------------------------------------------------------- ONNX metadata against the graph
@pytest.fixture(scope="module")
def onnx_file(fake_root, tmp_path_factory):
    from zoo.export import export

    run = tmp_path_factory.mktemp("run")
    train_fast("mlp", "mnist", run, fake_root, epochs=1, batch_size=100)
    return export("mlp", "mnist", weights=run, out=tmp_path_factory.mktemp("onnx"), data=data(fake_root)).path


def _edited(src: Path, dest: Path, rename: dict | None = None, **meta) -> Path:
    import onnx

    model = onnx.load(str(src))
    for p in model.metadata_props:
        if p.key in meta:
            p.value = json.dumps(meta[p.key])
    for old, new in (rename or {}).items():  # as other exporters name the graph's ends
        for v in [*model.graph.input, *model.graph.output]:
            if v.name == old:
                v.name = new
        for n in model.graph.node:
            n.input[:] = [new if i == old else i for i in n.input]
            n.output[:] = [new if o == old else o for o in n.output]
    onnx.save(model, str(dest))
    return dest


@pytest.mark.parametrize("meta, said", [
    ({"class_names": ["a", "b", "c"]}, "3 class names for 10 outputs"),
    ({"class_names": [str(i) for i in range(12)]}, "12 class names for 10 outputs"),
    ({"mean": "0.5"}, "mean '0.5' is not 1 finite numbers"),
    ({"std": [0.0]}, "std [0.0] is not 1 positive finite numbers"),
    ({"input_shape": [1, 1, 20000, 20000]}, "at most 2048x2048"),
    ({"input_shape": [1, 1, 32, 32]}, "but the graph's input"),
])
def test_metadata_that_contradicts_the_graph_is_one_line(onnx_file, tmp_path, capsys, meta, said):
    f = _edited(onnx_file, tmp_path / "m.onnx", **meta)
    assert main(["predict", str(f), str(_png(tmp_path / "x.png"))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "its metadata does not describe its graph" in err and said in err


def test_inputs_and_outputs_named_otherwise_are_found(onnx_file, tmp_path, capsys):
    import onnx

    names = [o.name for o in onnx.load(str(onnx_file)).graph.output]
    f = _edited(onnx_file, tmp_path / "m.onnx", rename={"input": "x", **{n: f"scores{i}" for i, n in enumerate(names)}})
    assert main(["predict", str(f), str(_png(tmp_path / "x.png")), "--json", "--top-k", "10"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top"]
    assert len(top) == 10 and abs(sum(t["probability"] for t in top) - 1) < 1e-4


# ---------------------------------------------------------------- recipes and configs
@pytest.mark.parametrize("field, value, said", [
    ("epochs", "1", "recipe field epochs: '1' is not a whole number"),
    ("nesterov", "false", "recipe field nesterov: 'false' is not true or false"),
    ("batch_size", True, "recipe field batch_size: True is not a whole number"),
    ("epochs", 1.5, "recipe field epochs: 1.5 is not a whole number"),
    ("weight_decay", float("nan"), "recipe field weight_decay: nan is not a finite number"),
    ("gamma", float("nan"), "recipe field gamma: nan is not a finite number"),
    ("label_smoothing", 5, "label_smoothing must be in [0, 1), got 5.0"),
    ("augment", ["explode"], "unknown augmentation 'explode'"),
    ("milestones", [1, "2"], "recipe field milestones: [1, '2'] is not a list of whole numbers"),
])
def test_every_recipe_field_is_type_and_range_checked(field, value, said):
    with pytest.raises(ZooError, match=None) as e:
        get_recipe("fast", get_dataset_spec("cifar10"), **{field: value})
    assert str(e.value).startswith(said)


def test_a_config_not_utf8_or_with_unknown_keys_is_one_line(tmp_path, capsys):
    latin = tmp_path / "latin.toml"
    latin.write_bytes('arch = "cnn"\ndataset = "mnist"\n# caf\xe9\n[recipe]\n'.encode("latin-1"))
    assert main(["train", "--config", str(latin), "--out", str(tmp_path / "r")]) == 2
    assert "TOML files are UTF-8" in capsys.readouterr().err
    extra = tmp_path / "extra.toml"
    extra.write_text('arch = "cnn"\ndataset = "mnist"\nepochz = 3\n[recipe]\n')
    assert main(["train", "--config", str(extra), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key(s) epochz" in err
    assert not (tmp_path / "r").exists()


def test_a_signal_in_a_one_step_epoch_stops_the_run_after_it(fake_root, tmp_path, monkeypatch):
    interrupt_after(monkeypatch, 1)  # 200 training images, batch 256: every epoch is one step
    with pytest.raises(Interrupted, match="after epoch 1; saved"):
        train_fast("mlp", "mnist", tmp_path / "run", fake_root, epochs=50, batch_size=256)
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


# ---------------------------------------------------------------- folders and CSVs
def _classes(root: Path, n: int = 4) -> None:
    for c in ("a", "b"):
        for i in range(n):
            _png(root / c / f"{c}{i}.png")


def test_a_csv_row_twice_or_a_path_outside_its_folder_is_skipped_and_said(tmp_path):
    from zoo.data.folder import FolderOptions, scan

    _classes(tmp_path / "imgs", 6)
    _png(tmp_path / "outside.png")
    rows = ["path,label"] + [f"{c}/{c}{i}.png,{c}" for c in "ab" for i in range(6)]
    rows += ["a/a0.png,a", "a/./a1.png,b", "../outside.png,a", f"{tmp_path / 'outside.png'},b"]
    (tmp_path / "imgs" / "labels.csv").write_text("\n".join(rows) + "\n")
    listing = scan(tmp_path / "imgs" / "labels.csv", FolderOptions(val_fraction=0.5))
    files = [f for f, _ in listing.train + listing.held_out]
    assert len(files) == len({os.path.realpath(f) for f in files}) == 12  # each image once, in one split
    said = [p.reason for p in listing.skipped]
    assert sum("listed already on line" in r for r in said) == 2
    assert sum("outside the CSV's folder" in r for r in said) == 2
    allowed = scan(tmp_path / "imgs" / "labels.csv", FolderOptions(val_fraction=0.5, outside_paths=True))
    assert len(allowed.train + allowed.held_out) == 13  # the outside image, once (its second row is a repeat)


def test_a_run_folder_inside_the_dataset_is_not_a_class(tmp_path):
    from zoo.data.folder import FolderOptions, scan

    _classes(tmp_path / "photos")
    (tmp_path / "photos" / "runs" / "cnn.photos.fast").mkdir(parents=True)
    (tmp_path / "photos" / "runs" / "cnn.photos.fast" / "last.json").write_text("{}")
    assert scan(tmp_path / "photos", FolderOptions()).classes == ("a", "b")


def test_a_file_in_both_splits_is_held_out_only(tmp_path):
    from zoo.data.folder import FolderOptions, scan

    _classes(tmp_path / "ds" / "train")
    (tmp_path / "ds" / "val" / "a").mkdir(parents=True)
    (tmp_path / "ds" / "val" / "b").mkdir(parents=True)
    os.link(tmp_path / "ds" / "train" / "a" / "a0.png", tmp_path / "ds" / "val" / "a" / "a0.png")  # a hard link
    (tmp_path / "ds" / "val" / "b" / "b0.png").symlink_to(tmp_path / "ds" / "train" / "b" / "b0.png")
    listing = scan(tmp_path / "ds", FolderOptions())
    train = {os.path.realpath(f) for f, _ in listing.train}
    assert not train & {os.path.realpath(f) for f, _ in listing.held_out}
    assert any("also held out" in p.reason for p in listing.skipped)


# ---------------------------------------------------------------- predict's output
def test_no_images_is_an_error_and_top_k_stops_at_the_classes(onnx_file, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(onnx_file), str(tmp_path / "empty")]) == 2
    assert "no images in" in capsys.readouterr().err
    assert main(["predict", str(onnx_file), str(_png(tmp_path / "x.png")), "--csv", "--top-k", "1000"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.count(",") == row.count(",") == 2 * 10 + 3


def test_escape_sequences_in_a_name_never_reach_the_terminal(onnx_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short name: the table does not fold it
    _png(tmp_path / "a\x1b[31mred.png")
    assert main(["predict", str(onnx_file), "a\x1b[31mred.png"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "a\\x1b[31mred.png" in out


def test_a_full_disk_while_decoding_a_folder_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    from zoo.data.folder import FolderOptions, open_folder

    _classes(tmp_path / "photos", 20)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    with pytest.raises(ZooError, match="not enough disk space for the decoded images"):
        open_folder(tmp_path / "photos", FolderOptions(), log=lambda *_: None)
    assert not [p for p in (tmp_path / "cache").rglob(".tmp-*")]


def test_a_killed_exports_temporary_folder_is_swept_by_the_next(tmp_path):
    from zoo.core.owned import sweep

    code = ("import os\nfrom zoo.core.owned import owned_tempdir\n"
            f"with owned_tempdir({str(tmp_path)!r}, '.export') as d:\n    os._exit(9)")  # killed inside its export
    subprocess.run([sys.executable, "-c", code], check=False)
    (tmp_path / f".export-{os.getpid()}-mine").mkdir()  # a user's folder of that name: not zoo's, never swept
    assert len(list(tmp_path.glob(".export-*"))) == 2
    sweep(tmp_path, ".export")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".export-{os.getpid()}-mine"]


def test_publishing_a_run_that_is_training_is_refused(fake_root, tmp_path):
    from zoo.publish import publish
    from zoo.train.rundir import run_lock

    train_fast("mlp", "mnist", tmp_path / "run", fake_root, epochs=1, batch_size=100)
    with run_lock(tmp_path / "run"), pytest.raises(ZooError, match="in use by another trainer .*publish it once"):
        publish(tmp_path / "run", dest=tmp_path / "weights", data=data(fake_root))
    assert not (tmp_path / "weights").exists()


def test_a_float_tiff_on_0_to_1_is_read_as_its_brightness(tmp_path):
    a = np.full((28, 28), 0.75, np.float32)
    Image.fromarray(a, mode="F").save(tmp_path / "f.tif")
    got = decode(tmp_path / "f.tif", SPEC)
    assert not isinstance(got, Problem) and abs(int(got.mean()) - 191) <= 1


def test_pretrained_weights_for_a_misspelt_dataset_give_no_advice_to_train_it():
    from zoo.core.shipped import pretrained_path

    with pytest.raises(ZooError) as e:
        pretrained_path("cnn", "mnistt")
    assert "zoo ships weights for mnist, kmnist, cifar10, cifar100 only; did you mean mnist" in str(e.value)
    assert "zoo train" not in str(e.value)


def test_a_full_disk_during_the_onnx_write_is_not_blamed_on_the_exporter(tmp_path, monkeypatch):
    import errno

    import torch

    import zoo.export.convert as convert

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(convert, "_export", full)
    with pytest.raises(ZooError) as e:
        convert.torch_to_onnx(torch.nn.Linear(4, 2), (4,), tmp_path / "m.onnx", 18, "dynamo")
    assert "No space left on device" in str(e.value) and "--exporter" not in str(e.value)


def test_a_class_with_one_image_is_said_to_go_unmeasured(tmp_path):
    from zoo.data.folder import FolderOptions, scan

    _classes(tmp_path / "photos")
    _png(tmp_path / "photos" / "c" / "only.png")
    listing = scan(tmp_path / "photos", FolderOptions())
    assert any("1 class (c) has no held-out image" in n for n in listing.notes)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_in_a_class_folder_is_not_an_image_to_decode(tmp_path):
    _classes(tmp_path / "photos")
    os.mkfifo(tmp_path / "photos" / "a" / "x.png")
    out = _in_child(f"""
from zoo.data.folder import FolderOptions, scan
listing = scan({str(tmp_path / 'photos')!r}, FolderOptions())
print(len(listing.train) + len(listing.held_out))
""")
    assert out.strip() == "8"


def test_a_name_that_is_not_utf8_is_written_as_its_bytes_in_csv(onnx_file, tmp_path):
    name = os.fsdecode(b"bad\xff.png")  # a Latin-1 file name on a UTF-8 system
    _png(tmp_path / name)
    r = subprocess.run([sys.executable, "-m", "zoo.cli", "predict", str(onnx_file), str(tmp_path / name), "--csv"],
                       capture_output=True, cwd=REPO, env={**os.environ, "PYTHONIOENCODING": "utf-8:strict",
                                                            "LC_ALL": "C.UTF-8"})
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-500:]
    assert b"bad\xff.png," in r.stdout


# ---------------------------------------------------------------- caches and report sets shared between commands
def test_a_damaged_cache_entry_another_command_already_removed_is_rebuilt(tmp_path, fake_root, monkeypatch):
    """Two predicts meeting the same damaged export: the second found the file gone when it came to remove it."""
    import zoo.export.cache as cache
    from zoo.core.sources import Target

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    target = Target("mlp", "mnist")
    path, _ = cache.exported(target, "fp32", data(fake_root), log=lambda *_: None)
    path.write_bytes(b"damaged")
    real = cache.check_onnx

    def damaged_then_removed_by_the_other(p):
        if Path(p).stat().st_size > 1000:
            return real(p)
        Path(p).unlink()  # the other command, rebuilding it, removed it after this one found it damaged
        raise ZooError(f"{p} is not a valid ONNX model")

    monkeypatch.setattr(cache, "check_onnx", damaged_then_removed_by_the_other)
    again, meta = cache.exported(target, "fp32", data(fake_root), log=lambda *_: None)
    assert again == path and path.stat().st_size > 1000 and meta["model"] == "mlp"


def test_commands_needing_one_cache_entry_take_turns(tmp_path):
    import threading
    import time

    from zoo.core.io import waiting_lock

    order = []

    def second():
        with waiting_lock(tmp_path / ".lock"):
            order.append("second")

    with waiting_lock(tmp_path / ".lock"):
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        order.append("first done")
    t.join(5)
    assert order == ["first done", "second"]


def test_an_export_deleted_mid_bench_is_its_own_note_not_the_end_of_the_report(tmp_path, fake_root, monkeypatch):
    import zoo.bench.harness as harness

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real_timed, real_load = harness._timed, harness._load

    def timed_then_gone(loaded, inputs, cfg):  # removed while the runtimes were being timed
        for m in loaded:
            if isinstance(m.source, Path):
                m.source.unlink(missing_ok=True)
        return real_timed(loaded, inputs, cfg)

    monkeypatch.setattr(harness, "_timed", timed_then_gone)
    args = ["bench", "mlp", "mnist", "--random", "--no-eager", "--data-dir", str(fake_root), "--warmup", "1",
            "--repeat", "3", "--batch", "8", "--precision", "fp32,int8"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    rows = json.loads((tmp_path / "a" / "report.json").read_text())["rows"]
    assert [r["onnx_mb"] > 0.1 for r in rows] == [True, True]

    def int8_gone(prec, runtime, backend, source, meta, inputs, phase):  # removed between export and load
        if prec == "int8":
            Path(source).unlink()
        return real_load(prec, runtime, backend, source, meta, inputs, phase)

    monkeypatch.setattr(harness, "_timed", real_timed)
    monkeypatch.setattr(harness, "_load", int8_gone)
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert [r["precision"] for r in report["rows"]] == ["fp32"]
    assert any("int8 onnxruntime: not measured:" in n and "is gone" in n for n in report["notes"])


def test_a_report_set_is_replaced_whole_or_not_at_all(tmp_path, fake_root, monkeypatch):
    import errno

    import zoo.bench.html as html

    args = ["bench", "mlp", "mnist", "--random", "--no-eager", "--data-dir", str(fake_root), "--warmup", "1",
            "--repeat", "3", "--batch", "8", "--out", str(tmp_path / "r")]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir() if p.is_file()}
    assert {"report.json", "report.html", "accuracy_vs_latency.png"} <= set(before)

    def full(*a, **k):  # the disk fills as the last file of the new set is written
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(html, "atomic_write_bytes", full)
    assert main(args) == 2
    after = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir() if p.is_file()}
    assert after == before  # the old set, as it was: no new report.json beside an old report.html
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == sorted(before)  # no temp folder, no previous/


def test_a_run_folder_works_after_its_image_folder_is_deleted(tmp_path, monkeypatch, capsys):
    """The run folder keeps up to 1,000 of the images it was trained on (held-out first): export, bench and
    predict gate on them when the folder is gone, and say so."""
    import shutil

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _classes(tmp_path / "photos", 6)
    run = tmp_path / "run"
    assert main(["train", "cnn", str(tmp_path / "photos"), "--epochs", "1", "--precision", "fp32", "--compile", "off",
                 "--out", str(run)]) == 0
    image = _png(tmp_path / "x.png")
    shutil.rmtree(tmp_path / "photos")
    shutil.rmtree(tmp_path / "cache")  # the decoded folder goes too: nothing of it is left but the run folder
    capsys.readouterr()
    assert main(["predict", str(run), str(image), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["top"][0]["class"] in ("a", "b")
    assert main(["export", "cnn", "photos", "--weights", str(run), "--out", str(tmp_path / "e")]) == 0
    said = capsys.readouterr().out
    assert "the run folder keeps (2 held out, 10 training)" in said and "photos kept sample (12)" in said
    config = json.loads((run / "config.json").read_text())
    assert "kept" not in config["dataset_spec"]["source"]  # where it is kept is found, not recorded


def test_a_killed_publishs_scratch_folder_is_swept_by_the_next(tmp_path, monkeypatch):
    import re

    from zoo.core.owned import scratch_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dead = subprocess.run([sys.executable, "-c", "import os\nfrom zoo.core.owned import scratch_dir\n"
                           "with scratch_dir('publish') as d:\n    print(d, flush=True)\n    os._exit(9)"],
                          capture_output=True, text=True)
    left = Path(dead.stdout.strip())
    assert left.is_dir()
    with scratch_dir("publish") as tmp:
        assert not left.exists() and Path(tmp).parent == left.parent
    # every temporary folder zoo makes is one that a later command sweeps: none in the system's temp folder
    unswept = [str(p.relative_to(REPO)) for p in (REPO / "zoo").rglob("*.py")
               if re.search(r"TemporaryDirectory\(\)|mkdtemp\(\)", p.read_text())]
    assert unswept == []


# ---------------------------------------------------------------- advice names what the command has
def test_advice_is_checked_against_the_options_of_the_command_it_is_for():
    from zoo.cli import build_parser, command_flags, wrong_advice

    flags = command_flags(build_parser())
    assert wrong_advice("try --exporter dynamo or another --opset", flags, "predict") == \
        ["zoo predict --exporter", "zoo predict --opset"]
    assert wrong_advice("try zoo export with --exporter dynamo or another --opset", flags, "predict") == []
    assert wrong_advice("continue it (zoo train --resume --out r) or choose another --out", flags, "export") == []
    assert wrong_advice("see `zoo bench --onnx F --resume`", flags, "train") == ["zoo bench --resume"]


def test_predicts_errors_advise_what_predict_can_do(tmp_path, monkeypatch, capsys):
    import errno

    import zoo.export.convert as convert
    import zoo.export.pipeline as pipeline

    image = _png(tmp_path / "x.png")
    (tmp_path / "notarun").mkdir()
    assert main(["predict", str(tmp_path / "notarun"), str(image)]) == 2
    assert "; give a run folder written by zoo train" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # the export cache cannot be made
    assert main(["predict", "mlp", "mnist", str(image)]) == 2
    assert "; make it writable, or set XDG_CACHE_HOME to another folder" in capsys.readouterr().err
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def fails(*a, **k):
        raise RuntimeError("an operator the exporter does not know")

    monkeypatch.setattr(convert, "_export", fails)
    assert main(["predict", "mlp", "mnist", str(image)]) == 2
    assert "; try zoo export with --exporter torchscript or another --opset" in capsys.readouterr().err

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pipeline, "torch_to_onnx", full)
    assert main(["predict", "mlp", "mnist", str(image)]) == 2
    assert capsys.readouterr().err.endswith("left: free space, then run the command again\n")


def test_a_missing_dataset_in_bench_says_how_to_get_it_with_what_bench_has(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    main(["bench", "mlp", "mnist", "--random", "--no-eager", "--data-dir", str(tmp_path), "--warmup", "1",
          "--repeat", "3", "--batch", "8", "--out", str(tmp_path / "b")])
    said = capsys.readouterr()
    assert "get it with zoo train MODEL DATASET --download (needs internet), or point --data-dir / ZOO_DATA" in \
        said.out + said.err


def test_a_held_lock_is_said_within_seconds_and_ends_in_one_line(tmp_path, monkeypatch):
    """Another zoo stopped with Ctrl-Z while it holds the export cache's lock: the wait names it, then ends."""
    from zoo.core.io import waiting_lock

    lock = tmp_path / ".lock"
    holder = subprocess.Popen([sys.executable, "-c", "import time\nfrom zoo.core.io import waiting_lock\n"
                               f"with waiting_lock({str(lock)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    monkeypatch.setenv("ZOO_LOCK_WAIT", "2.5")
    said = []
    try:
        with pytest.raises(ZooError, match=rf"another zoo \(.*pid {holder.pid}\) has held .*ZOO_LOCK_WAIT"):
            with waiting_lock(lock, log=said.append):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert len(said) == 1 and f"pid {holder.pid}" in said[0]
    with waiting_lock(lock, log=said.append):  # its holder gone: taken at once
        pass


def test_concurrent_benches_keep_each_others_recommendations(tmp_path):
    code = ("import sys, zoo.core.deploy as d\nfrom pathlib import Path\n"
            f"d.cache_file = lambda: Path({str(tmp_path)!r}) / 'deploy.json'\n"
            "c = {'runtime': 'onnxruntime', 'precision': 'fp32'}\n"
            "for i in range(20):\n    d.remember(f'{sys.argv[1]}-{i}', {'latency': c, 'throughput': c})")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(n)]) for n in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert len(json.loads((tmp_path / "deploy.json").read_text())) == 80


def test_a_float_tiff_holding_nan_is_refused_not_classified(tmp_path):
    a = np.full((28, 28), 0.5, np.float32)
    a[3, 3] = np.nan
    Image.fromarray(a, mode="F").save(tmp_path / "nan.tif")
    got = decode(tmp_path / "nan.tif", SPEC)
    assert isinstance(got, Problem) and "1 of its pixels are NaN or infinite" in got.reason


@pytest.mark.parametrize("argv, said", [
    (["train", "mlp", "mnist", "--seed", "9223372036854775807", "--epochs", "1"], "seed must be a whole number"),
    (["bench", "mlp", "mnist", "--weights", "{onnx}"], "zoo bench --onnx"),
    (["export", "mlp", "mnist", "--weights", "{onnx}"], "it is exported already")])
def test_numbers_and_files_of_the_wrong_kind_are_one_line(argv, said, tmp_path, fake_root, capsys):
    from zoo.cli import main

    (tmp_path / "m.onnx").write_bytes(b"onnx")
    argv = [a.replace("{onnx}", str(tmp_path / "m.onnx")) for a in argv]
    assert main([*argv, "--data-dir", str(fake_root), "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err


@pytest.mark.parametrize("code, said", [("ENOENT", "it was removed while zoo worked"),
                                        ("EACCES", "zoo may not write there; nothing half-written is left: choose "
                                                   "another --out"),
                                        ("ENOSPC", "free space or choose another --out")])
def test_the_advice_for_a_failed_write_fits_what_failed(code, said, capsys):
    """A folder another process removed is not a full disk: no advice to free space for it."""
    import errno

    import zoo.cli as cli

    def fail(args):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), "bench/report.json")
    parser = cli.build_parser()
    args = parser.parse_args(["bench", "cnn", "mnist"])
    args.func = fail
    assert cli._run(args, cli.command_flags(parser)) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1 and (code == "ENOSPC") == ("free space" in err)
