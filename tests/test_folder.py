"""Your own images as a dataset: layouts, the inferred spec, the decode cache, fine-tuning, and bad input.

The fine-tuning tests use real images: scikit-learn's bundled handwritten digits (1,797 8x8 scans) written
as a PNG folder, and CIFAR-10 test images where the real data is present. Generated images only feed the
bad-input tests."""

import csv
import json
import os
import sys
import time

import numpy as np
import pytest
from PIL import Image

from zoo.cli import main
from zoo.core.errors import ZooError
from zoo.data import FolderOptions, load_split, open_folder
from zoo.data import decoded as decoded_mod
from zoo.data import folder as folder_mod
from zoo.data.images import decode
from zoo.data.images import ImageSpec, to_pixels

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder_mod._OPENED.clear()


def write_digits(root, names=WORDS, limit=None, size=8):
    """scikit-learn's real digits as root/<class name>/<i>.png (grey, 8x8, 0..16 scaled to 0..255; `size`:
    resized by Pillow, bilinear)."""
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn (a dev dependency) holds the digits")
    d = datasets.load_digits()
    for i, (img, y) in enumerate(zip(d.images[:limit], d.target[:limit])):
        (root / names[y]).mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255 / 16).round().astype(np.uint8), "L").resize((size, size), Image.BILINEAR) \
            .save(root / names[y] / f"{i:04d}.png")
    return root


def write_images(root, per_class=6, classes=("cat", "dog"), size=(20, 20), mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / c / f"{i}.png")
    return root


def quiet(*_):
    pass


# ---------------------------------------------------------------- layouts and the inferred spec
def test_class_folders_give_a_seeded_stratified_split_and_an_inferred_spec(tmp_path):
    root = write_digits(tmp_path / "digits")
    spec = open_folder(root, log=quiet)
    assert spec.name == "digits" and spec.class_names == tuple(sorted(WORDS))
    assert (spec.channels, spec.size, spec.family) == (1, 28, "mnist")  # grey digits: MNIST's shape
    (xt, yt), (_, yv) = load_split("digits", "train"), load_split("digits", "test")
    assert len(yt) + len(yv) == 1797 and xt.shape[1:] == (1, 28, 28)
    counts = np.bincount(yv.numpy(), minlength=10)
    totals = counts + np.bincount(yt.numpy(), minlength=10)
    assert np.all(np.abs(counts - np.round(totals * 0.1)) <= 1)  # 10% of every class held out
    x = xt.numpy().astype(np.float64) / 255  # mean/std of the training split, as recorded
    assert spec.mean[0] == pytest.approx(x.mean(), abs=1e-4) and spec.std[0] == pytest.approx(x.std(), abs=1e-4)
    folder_mod._OPENED.clear()
    again = open_folder(root, FolderOptions(val_fraction=0.2, seed=1), log=quiet)
    assert again.source.val_fraction == 0.2 and len(load_split("digits", "test")[1]) > len(yv)


def test_split_folders_and_a_csv_are_layouts_too(tmp_path):
    root = tmp_path / "pets"
    write_images(root / "train", per_class=5)
    write_images(root / "val", per_class=2, seed=1)
    spec = open_folder(root, log=quiet)
    assert spec.source.layout == "train/val" and (spec.channels, spec.size) == (3, 32)
    assert len(load_split("pets", "train")[1]) == 10 and len(load_split("pets", "test")[1]) == 4

    rows = [("path", "label", "split")] + [(f"train/{c}/{i}.png", c, "train") for c in ("cat", "dog")
                                           for i in range(5)] + [(f"val/cat/{i}.png", "cat", "val") for i in range(2)]
    with open(root / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    spec = open_folder(root / "labels.csv", FolderOptions(channels=1, size=16), log=quiet)
    assert (spec.name, spec.source.layout, spec.class_names, spec.channels, spec.size) == \
        ("labels", "csv", ("cat", "dog"), 1, 16)
    assert len(load_split("labels", "train")[1]) == 10 and load_split("labels", "test")[1].tolist() == [0, 0]


def test_training_pixels_are_predicts_pixels(tmp_path):
    """One preprocessing definition: a 40x50 RGBA image in the cache equals what zoo predict feeds."""
    root = write_images(tmp_path / "odd", per_class=3, size=(40, 50))
    odd = Image.new("RGBA", (40, 50), (200, 10, 10, 128))
    odd.save(root / "cat" / "rgba.png")
    spec = open_folder(root, log=quiet)
    x, y = load_split(spec.name, "train")
    files = sorted(p for p in (root / "cat").iterdir())
    want = to_pixels(Image.open(root / "cat" / "rgba.png"), ImageSpec(3, 32, (0,) * 3, (1,) * 3))
    assert any(np.array_equal(row.numpy().transpose(1, 2, 0), want) for row in x) and len(files) == 4


@pytest.mark.parametrize("decoder", ["imagecodecs", "cv2"])
def test_the_fast_png_decoders_decode_exactly_what_pillow_does(tmp_path, monkeypatch, decoder):
    """libspng (imagecodecs) and OpenCV, each alone, against Pillow alone, on real digits (grey) and RGB PNGs."""
    pytest.importorskip(decoder)
    if decoder == "cv2":
        monkeypatch.setitem(sys.modules, "imagecodecs", None)  # as if not installed: OpenCV's turn
    root = write_digits(tmp_path / "digits", limit=1200, size=28)  # at the model's size: the fast path's case
    write_images(tmp_path / "rgb", per_class=600, size=(32, 32))
    png = decoded_mod._png_decoder()
    assert png is not None and png.__name__ == ("spng" if decoder == "imagecodecs" else "opencv")
    fast = [load_split(open_folder(r, log=quiet).name, "train")[0].numpy().copy()
            for r in (root, tmp_path / "rgb")]
    monkeypatch.setattr(decoded_mod, "_png_decoder", lambda: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-pillow"))
    folder_mod._OPENED.clear()
    slow = [load_split(open_folder(r, log=quiet).name, "train")[0].numpy() for r in (root, tmp_path / "rgb")]
    assert all(np.array_equal(a, b) for a, b in zip(fast, slow))
    # and the fast decoder did the work: Pillow decoded only the image each chunk is checked on
    monkeypatch.setattr(decoded_mod, "_png_decoder", lambda: png)
    pillow = []
    monkeypatch.setattr(decoded_mod, "decode", lambda f, spec: pillow.append(f) or decode(f, spec))
    for folder, channels, size in ((root, 1, 28), (tmp_path / "rgb", 3, 32)):
        files, pillow[:] = sorted(str(f) for f in folder.rglob("*.png"))[:300], []
        np.lib.format.open_memmap(tmp_path / "rows.npy", "w+", np.uint8, (300, channels, size, size)).flush()
        bad, _ = decoded_mod.decode_chunk(str(tmp_path / "rows.npy"), 0, files, channels, size, 300)
        assert bad == [] and pillow == files[:1]


# ---------------------------------------------------------------- the cache
def test_the_cache_is_hit_missed_and_invalidated(tmp_path):
    root = write_images(tmp_path / "pets", per_class=6)
    said = []
    open_folder(root, log=said.append)
    assert any("decoding 12 images" in s for s in said)
    folder_mod._OPENED.clear()
    said.clear()
    open_folder(root, log=said.append)  # a second process: mapped, not decoded
    assert not any("decoding" in s for s in said)
    x, _ = load_split("pets", "train")
    assert isinstance(folder_mod._OPENED[next(iter(folder_mod._OPENED))].images, np.memmap)

    first = root / "cat" / "0.png"
    Image.new("RGB", (20, 20), (255, 255, 255)).save(first)  # same name and size, new content: mtime changes
    os.utime(first, ns=(time.time_ns(), time.time_ns() + 10**9))
    folder_mod._OPENED.clear()
    said.clear()
    open_folder(root, log=said.append)
    assert any("decoding" in s for s in said)
    assert (load_split("pets", "train")[0] == 255).all(dim=(1, 2, 3)).any()  # the white image is in
    write_images(root, per_class=1, classes=("bird",))  # a new class: a new listing
    folder_mod._OPENED.clear()
    assert open_folder(root, log=quiet).num_classes == 3


def test_an_interrupted_decode_leaves_nothing_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    root = write_images(tmp_path / "pets", per_class=6)
    real = decoded_mod.decode_chunk

    def fail(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(decoded_mod, "decode_chunk", fail)
    with pytest.raises(KeyboardInterrupt):
        open_folder(root, log=quiet)
    cache = tmp_path / "cache" / "zoo" / "folders"
    assert list(cache.iterdir()) == []  # no half-written cache, no temporary folder
    monkeypatch.setattr(decoded_mod, "decode_chunk", real)
    open_folder(root, log=quiet)
    (entry,) = list(cache.iterdir())
    with open(entry / "images.npy", "r+b") as f:
        f.truncate(100)
    folder_mod._OPENED.clear()
    with pytest.raises(ZooError, match="damaged .* removed; run again"):
        open_folder(root, log=quiet)
    assert open_folder(root, log=quiet).num_classes == 2  # decoded afresh



def test_a_damaged_cache_entry_loses_only_what_zoo_wrote_into_it(tmp_path, monkeypatch):
    """A user's file inside a damaged entry stays; an entry without zoo's mark naming it is not touched at all."""
    root = write_images(tmp_path / "pets", per_class=6)
    open_folder(root, log=quiet)
    (entry,) = list((tmp_path / "cache" / "zoo" / "folders").iterdir())
    (entry / "images.npy").write_bytes(b"damaged")
    (entry / "notes.txt").write_text("mine")
    folder_mod._OPENED.clear()
    with pytest.raises(ZooError, match="damaged .* removed; run again"):
        open_folder(root, log=quiet)
    assert sorted(p.name for p in entry.iterdir()) == ["notes.txt"]
    (entry / "meta.json").write_text("{}")  # an entry without zoo's mark: damaged, yet not provably zoo's
    folder_mod._OPENED.clear()
    with pytest.raises(ZooError, match="cannot prove it wrote; remove that folder"):
        open_folder(root, log=quiet)
    assert sorted(p.name for p in entry.iterdir()) == ["meta.json", "notes.txt"]

# ---------------------------------------------------------------- through the CLI, on real digits
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """cnn fine-tuned from the shipped MNIST weights on the digits folder (zoo train, as a user runs it)."""
    base = tmp_path_factory.mktemp("digits")
    env = {"XDG_CACHE_HOME": str(base / "cache")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    folder_mod._OPENED.clear()
    root = write_digits(base / "digits")
    out = base / "run"
    try:
        code = main(["train", "cnn", str(root), "--init", "pretrained:mnist", "--recipe", "finetune", "--epochs", "3",
                     "--precision", "fp32", "--compile", "off", "--out", str(out), "--tensorboard"])
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert code == 0
    return root, out, base


def test_fine_tuning_on_a_folder_records_its_spec_everywhere(digits_run, tmp_path, capsys, monkeypatch):
    root, out, base = digits_run
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "cache"))
    best = json.loads((out / "best.json").read_text())
    assert best["metrics"]["test_acc"] >= 95.0  # real digits, 3 epochs from the MNIST weights
    config = json.loads((out / "config.json").read_text())
    for record in (config["dataset_spec"], best["dataset_spec"]):
        assert record["class_names"] == sorted(WORDS) and record["source"]["path"] == str(root.resolve())
        assert record["source"]["val_fraction"] == 0.1 and (record["channels"], record["size"]) == (1, 28)
    # export by name alone (the spec comes back from the run's card), then predict labels by class name
    from zoo.data.specs import _DATASETS
    _DATASETS.pop("digits", None)  # as in a new process
    folder_mod._OPENED.clear()
    assert main(["export", "cnn", "digits", "--weights", str(out), "--out", str(tmp_path)]) == 0
    onnx_file = tmp_path / "cnn.digits.onnx"
    from zoo.core.sessions import ort_session, session_metadata
    meta = session_metadata(ort_session(onnx_file))
    assert meta["class_names"] == sorted(WORDS) and meta["dataset_spec"]["source"]["path"] == str(root.resolve())
    capsys.readouterr()
    assert main(["predict", str(onnx_file), str(root / "seven"), "--json", "--top-k", "1"]) == 0
    answers = [r["top"][0]["class"] for r in json.loads(capsys.readouterr().out)]
    assert answers.count("seven") >= 0.9 * len(answers)
    _one_line_error(capsys, ["publish", str(out), "--dest", str(tmp_path / "w")], "your own images", "built-in")


def test_a_folder_run_resumes_from_its_folder_alone_and_logs_tensorboard(digits_run, monkeypatch):
    root, out, base = digits_run
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "cache"))
    from zoo.data.specs import _DATASETS
    _DATASETS.pop("digits", None)  # a new process: only the run folder knows the dataset
    assert main(["train", "--resume", "--out", str(out), "--epochs", "3"]) == 0
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = ea.EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    logged = [e.value for e in acc.Scalars("test_acc")]
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert logged == pytest.approx([m["test_acc"] for m in lines])


def test_freeze_backbone_trains_the_classifier_alone(tmp_path):
    from safetensors.torch import load_file

    from zoo.core.sources import from_pretrained
    root = write_digits(tmp_path / "digits", limit=600)
    out = tmp_path / "probe"
    assert main(["train", "cnn", str(root), "--init", "pretrained:mnist", "--recipe", "finetune", "--epochs", "1",
                 "--freeze-backbone", "--precision", "fp32", "--compile", "off", "--out", str(out)]) == 0
    before, after = from_pretrained("cnn", "mnist").state, load_file(out / "best.safetensors")
    changed = sorted(k for k in before if not np.array_equal(before[k].numpy(), after[k].numpy()))
    assert changed and all(k.startswith(changed[0].rsplit(".", 1)[0]) for k in changed)  # one layer: the last
    assert json.loads((out / "config.json").read_text())["recipe"]["freeze_backbone"] is True


@pytest.mark.e2e
def test_an_rgb_folder_of_real_cifar10_images(real_root, tmp_path):
    from zoo.data import DataOptions
    x, y = load_split("cifar10", "test", DataOptions(real_root, verify=False))
    names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    root = tmp_path / "photos"
    for i in range(1000):
        (root / names[int(y[i])]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i].numpy().transpose(1, 2, 0)).save(root / names[int(y[i])] / f"{i}.png")
    out = tmp_path / "run"
    assert main(["train", "resnet20", str(root), "--init", "pretrained:cifar10", "--recipe", "finetune",
                 "--epochs", "1", "--precision", "fp32", "--compile", "off", "--out", str(out)]) == 0
    best = json.loads((out / "best.json").read_text())
    assert best["dataset_spec"]["channels"] == 3 and best["metrics"]["test_acc"] >= 80.0


# ---------------------------------------------------------------- bad input: one line, or a counted skip
def _one_line_error(capsys, argv, *fragments):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in err, err


def test_bad_folders_are_one_line(tmp_path, capsys):
    train = ["train", "cnn"]
    (tmp_path / "empty").mkdir()
    _one_line_error(capsys, train + [str(tmp_path / "empty")], "no class folders")
    _one_line_error(capsys, train + [str(write_images(tmp_path / "one", classes=("cat",)))], "1 class", "at least 2")
    root = write_images(tmp_path / "hollow")
    (root / "bird").mkdir()
    _one_line_error(capsys, train + [str(root)], "bird", "hold no images")
    loose = tmp_path / "loose"
    loose.mkdir()
    Image.new("L", (10, 10)).save(loose / "a.png")
    _one_line_error(capsys, train + [str(loose)], "images but no class folders")
    split = tmp_path / "split"
    write_images(split / "train")
    write_images(split / "val", classes=("cat", "fish"))
    _one_line_error(capsys, train + [str(split)], "fish", "lacks")
    _one_line_error(capsys, train + [str(tmp_path / "nowhere/")], "not found")
    with pytest.raises(SystemExit) as e:  # a usage error, said by argparse in one line
        main(train + [str(root), "--val-fraction", "0.9"])
    assert e.value.code == 2 and "not a fraction in (0, 0.5]" in capsys.readouterr().err


def test_bad_csvs_are_one_line_or_counted(tmp_path, capsys):
    write_images(tmp_path / "imgs", per_class=4)
    table = tmp_path / "labels.csv"
    rows = [(f"imgs/{c}/{i}.png", c) for c in ("cat", "dog") for i in range(4)] + [("imgs/cat/missing.png", "cat")]
    table.write_text("\n".join(",".join(r) for r in rows) + "\nimgs/dog/0.png,\n")
    said = []
    spec = open_folder(table, log=said.append)
    assert spec.num_classes == 2 and any("skipped 2" in s for s in said)  # a missing file, a row without a label
    held = tmp_path / "held.csv"
    held.write_text("imgs/cat/0.png,cat,train\nimgs/dog/0.png,dog,train\nimgs/cat/1.png,lion,val\n")
    _one_line_error(capsys, ["train", "cnn", str(held)], "lion", "no training row")
    gone = tmp_path / "gone.csv"
    gone.write_text("nope/1.png,cat\nnope/2.png,dog\n")
    _one_line_error(capsys, ["train", "cnn", str(gone)], "none of the 2 rows")


def test_mixed_sizes_and_modes_train_and_corrupt_files_are_skipped_and_counted(tmp_path, capsys):
    root = write_images(tmp_path / "mixed", per_class=8, size=(24, 40))
    Image.new("L", (64, 64), 90).save(root / "cat" / "grey.png")
    Image.new("RGBA", (30, 30), (1, 2, 3, 100)).save(root / "cat" / "alpha.png")
    Image.new("P", (33, 17)).save(root / "dog" / "palette.gif")
    Image.fromarray(np.full((20, 20), 40000, np.uint16)).save(root / "dog" / "deep.tif")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (root / "cat" / "notes.txt").write_text("not an image: ignored")
    Image.new("RGB", (40, 40)).save(root / "cat" / "truncated.jpg")
    data = (root / "cat" / "truncated.jpg").read_bytes()
    (root / "cat" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    out = tmp_path / "run"
    assert main(["train", "cnn", str(root), "--epochs", "1", "--precision", "fp32", "--compile", "off",
                 "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "skipped 2 unreadable" in said and ("broken.png" in said or "truncated.jpg" in said)
    spec = json.loads((out / "config.json").read_text())["dataset_spec"]
    assert spec["train_size"] + len(load_split(spec["name"], "test")[1]) == 16 + 4  # 20 decoded of 22
