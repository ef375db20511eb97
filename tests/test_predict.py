"""`zoo predict`: every image mode from real Pillow-written files, the torch-free path, the self-contained
graph's gate, the Python API, torch.hub, and every bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import data, error_lines, train_fast
from PIL import Image

from zoo.cli import main
from zoo.predict.preprocess import ImageSpec, to_pixels

REPO = Path(__file__).resolve().parents[1]
RGB = ImageSpec(3, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
GREY = ImageSpec(1, 28, (0.5,), (0.25,))


@pytest.fixture(scope="module")
def run(fake_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("p") / "run"
    train_fast("cnn", "cifar10", out, fake_root, epochs=3, batch_size=25)
    return out


@pytest.fixture(scope="module")
def onnx_files(run, fake_root, tmp_path_factory):
    from zoo.export import export

    out = tmp_path_factory.mktemp("onnx")
    plain = export("cnn", "cifar10", weights=run, out=out, data=data(fake_root))
    image = export("cnn", "cifar10", weights=run, out=out, data=data(fake_root), image_input=True)
    return plain, image


@pytest.fixture(scope="module")
def test_images(fake_root, tmp_path_factory):
    """The first 40 generated CIFAR-10 test images as PNG files, named by index and label."""
    from zoo.data import load_split

    x, y = load_split("cifar10", "test", data(fake_root))
    folder = tmp_path_factory.mktemp("imgs")
    (folder / "sub").mkdir()
    for i in range(40):
        where = folder / ("sub" if i % 2 else ".")
        Image.fromarray(x[i].permute(1, 2, 0).numpy()).save(where / f"{i:03d}_{int(y[i])}.png")
    return folder


# ---------------------------------------------------------------- image modes
def _save(tmp_path, name, img, **kw):
    img.save(tmp_path / name, **kw)
    with Image.open(tmp_path / name) as f:
        return to_pixels(f, RGB), to_pixels(f, GREY)


def test_every_mode_becomes_the_models_channels(tmp_path):
    rgb = Image.new("RGB", (32, 32), (200, 100, 50))
    cases = {
        "rgb.png": (rgb, {}), "l.png": (rgb.convert("L"), {}), "p.gif": (rgb.convert("P"), {}),
        "cmyk.jpg": (rgb.convert("CMYK"), {"quality": 100}), "bilevel.bmp": (Image.new("1", (32, 32), 1), {}),
        "i16.png": (Image.fromarray(np.full((32, 32), 65535, np.uint16)), {}),
        "float.tiff": (Image.fromarray(np.full((32, 32), 255.0, np.float32)), {}),
        "rgb.webp": (rgb, {"lossless": True}), "rgb.tiff": (rgb, {}),
    }
    for name, (img, kw) in cases.items():
        pix_rgb, pix_grey = _save(tmp_path, name, img, **kw)
        assert pix_rgb.shape == (32, 32, 3) and pix_rgb.dtype == np.uint8, name
        assert pix_grey.shape == (28, 28, 1), name
    assert tuple(_save(tmp_path, "x.png", rgb)[0][0, 0]) == (200, 100, 50)
    assert _save(tmp_path, "w.png", Image.fromarray(np.full((32, 32), 65535, np.uint16)))[1].min() == 255  # 16-bit
    assert abs(int(_save(tmp_path, "c.jpg", rgb.convert("CMYK"), quality=100)[0][0, 0, 0]) - 200) <= 3


def test_transparency_is_composited_over_black(tmp_path):
    rgba = Image.new("RGBA", (32, 32), (255, 255, 255, 0))
    rgba.paste((255, 0, 0, 255), (0, 0, 16, 32))  # left half opaque red, right half transparent white
    pix, _ = _save(tmp_path, "a.png", rgba)
    assert tuple(pix[5, 5]) == (255, 0, 0) and tuple(pix[5, 28]) == (0, 0, 0)
    la = Image.new("LA", (32, 32), (255, 0))
    assert _save(tmp_path, "la.png", la)[1].max() == 0
    p = Image.new("P", (32, 32), 1)
    p.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    p.info["transparency"] = 1
    assert _save(tmp_path, "pt.png", p, transparency=1)[0].max() == 0


def test_exif_orientation_and_first_frame(tmp_path):
    tall = Image.new("RGB", (32, 64), (0, 0, 0))
    tall.paste((255, 255, 255), (0, 0, 32, 32))  # white on top
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display: the white half ends on the right
    tall.save(tmp_path / "o.jpg", exif=exif, quality=100)
    with Image.open(tmp_path / "o.jpg") as f:
        pix = to_pixels(f, RGB)
    assert pix[16, 28].mean() > 200 and pix[16, 3].mean() < 50
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with Image.open(tmp_path / "anim.gif") as f:
        assert tuple(to_pixels(f, RGB)[0, 0]) == (255, 0, 0)


def test_resize_policy_is_shorter_side_then_centre_crop(tmp_path):
    img = Image.new("RGB", (96, 64), (0, 0, 0))
    img.paste((255, 255, 255), (16, 0, 80, 64))  # a centred 64x64 white square
    pix = to_pixels(img, RGB)  # resized to 48x32, then the centre 32x32: all white but the antialiased edges
    assert pix.shape == (32, 32, 3) and pix[:, 1:-1].min() == 255


def test_transforms_match_predicts_numbers(test_images):
    import zoo
    from zoo.data import get_dataset_spec
    from zoo.predict.preprocess import normalize_pixels

    t = zoo.transforms("cnn", "cifar10")
    spec = ImageSpec.from_dataset(get_dataset_spec("cifar10"))
    with Image.open(next(test_images.glob("*.png"))) as img:
        ours = normalize_pixels(to_pixels(img, spec)[None], spec)[0]
        theirs = t(img)
    assert isinstance(theirs, torch.Tensor) and theirs.shape == (3, 32, 32)
    assert np.array_equal(theirs.numpy(), ours)


# ---------------------------------------------------------------- running models
def _predict_json(*argv):
    return main(["predict", *map(str, argv), "--json"])


def test_predict_sources_agree(run, onnx_files, test_images, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    plain, image = onnx_files
    outs = []
    for source in ([plain.path], [image.path], [run]):
        assert _predict_json(*source, test_images, "--top-k", "3") == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert len(outs[0]) == 40 and [r["file"] for r in outs[0]] == sorted(r["file"] for r in outs[0])
    assert all(len(r["top"]) == 3 and abs(sum(t["probability"] for t in r["top"])) <= 1 + 1e-6 for r in outs[0])
    top1 = [[r["top"][0]["class"] for r in o] for o in outs]
    assert top1[0] == top1[1] == top1[2]  # the float file, the self-contained graph, the run folder
    labels = [int(Path(r["file"]).stem.split("_")[1]) for r in outs[0]]
    from zoo.data import get_dataset_spec
    names = get_dataset_spec("cifar10").class_names
    assert np.mean([names[y] == c for y, c in zip(labels, top1[0])]) > 0.5  # a trained model on its own test images


@pytest.mark.parametrize("runtime", ["openvino", "opencv"])
def test_predict_runs_the_same_file_in_other_runtimes(onnx_files, test_images, capsys, runtime):
    """zoo predict --runtime: the float file and the self-contained graph in OpenVINO or OpenCV DNN give
    onnxruntime's top-1 on every image (probabilities within float error)."""
    from zoo.core.runtimes import missing_runtime
    if missing_runtime(runtime):
        pytest.skip(missing_runtime(runtime))
    for f in onnx_files:
        outs = []
        for rt in ("onnxruntime", runtime):
            assert _predict_json(f.path, test_images, "--top-k", "1", "--runtime", rt) == 0
            outs.append(json.loads(capsys.readouterr().out))
        assert [r["top"][0]["class"] for r in outs[0]] == [r["top"][0]["class"] for r in outs[1]]
        assert max(abs(a["top"][0]["probability"] - b["top"][0]["probability"])
                   for a, b in zip(*outs)) < 0.02  # OpenVINO's default may run bf16


def test_an_unknown_or_missing_runtime_is_one_line(onnx_files, test_images, capsys, monkeypatch):
    import zoo.core.backends as backends
    assert main(["predict", str(onnx_files[0].path), str(test_images), "--runtime", "tensorrt"]) == 2
    assert "unknown runtime 'tensorrt'; choose from auto, onnxruntime, openvino, opencv" in capsys.readouterr().err
    monkeypatch.setattr(backends, "missing_runtime", lambda name: "openvino is not installed (pip install x)")
    assert main(["predict", str(onnx_files[0].path), str(test_images), "--runtime", "openvino"]) == 2
    assert "--runtime openvino: openvino is not installed" in capsys.readouterr().err


def test_predict_csv_and_table(onnx_files, test_images, capsys):
    assert main(["predict", str(onnx_files[0].path), str(test_images / "sub"), "--csv", "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "file,class1,probability1,class2,probability2,inverted,runtime,precision" and len(lines) == 21
    assert main(["predict", str(onnx_files[0].path), str(test_images / "000_*.png")]) == 0
    assert "zoo predict — 1 image (onnxruntime fp32)" in capsys.readouterr().out


def test_the_onnx_path_never_imports_torch(onnx_files, test_images):
    code = ("import sys; sys.modules['torch'] = None  # any `import torch` now fails\n"
            "from zoo.cli import main\n"
            f"sys.exit(main(['predict', {str(onnx_files[0].path)!r}, {str(test_images)!r}, '--json']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(json.loads(r.stdout)) == 40


@pytest.mark.parametrize("source", ["run folder", "shipped"])
def test_a_sealed_cached_export_is_used_without_torch(source, run, test_images, tmp_path, monkeypatch):
    """Weights exported before (a run folder's, shipped ones) are predicted from the cached file without
    importing torch; a cached file whose bytes changed goes the long way (checked, rebuilt)."""
    from zoo.core.sources import Target
    from zoo.export.cachekey import sealed_export

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the child processes' cache, too
    argv = [str(run)] if source == "run folder" else ["cnn", "cifar10"]
    target = Target("cnn", "cifar10", str(run)) if source == "run folder" else Target("cnn", "cifar10", pretrained=True)

    def predict(block_torch: bool):
        code = ("import sys\n" + ("sys.modules['torch'] = None  # any `import torch` fails\n" if block_torch else "")
                + "from zoo.cli import main\n"
                f"sys.exit(main(['predict', *{argv!r}, {str(test_images)!r}, '--json', '--runtime', 'onnxruntime']))")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    first = predict(block_torch=False)  # exports into the cache, checks and seals the file
    assert first.returncode == 0, first.stderr[-2000:]
    again = predict(block_torch=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout) == json.loads(first.stdout)
    cached = next((tmp_path / "cache" / "zoo" / "exports").rglob("*.onnx"))
    assert sealed_export(target, "fp32") == cached and sealed_export(target, "int8") is None
    cached.write_bytes(cached.read_bytes()[:-1] + b"x")  # one byte changed: not used as it is
    assert sealed_export(target, "fp32") is None
    assert predict(block_torch=True).returncode != 0  # the long way needs torch: it checks, and rebuilds
    rebuilt = predict(block_torch=False)
    assert rebuilt.returncode == 0 and json.loads(rebuilt.stdout) == json.loads(first.stdout)
    assert sealed_export(target, "fp32") == cached


def test_python_api_and_torch_hub(onnx_files, test_images):
    import zoo

    p = zoo.Predictor(onnx_files[1].path)
    files = sorted(test_images.glob("*.png"))[:3]
    results = p.predict(files, top_k=2)
    assert [r.path for r in results] == [str(f) for f in files] and all(len(r.top) == 2 for r in results)
    with Image.open(files[0]) as img:
        assert p.predict_images([img], top_k=1)[0][0][0] == results[0].top[0][0]
    model = torch.hub.load(str(REPO), "resnet20", dataset="cifar10", pretrained=True, source="local")
    assert not model.training and model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_image_input_graph_passes_its_gate(onnx_files):
    import onnxruntime as ort

    image = onnx_files[1]
    assert image.path.name == "cnn.cifar10-image.onnx"
    fig = image.parity
    assert fig["images"] >= 1000 and fig["top1_agreement"] == 100.0 and fig["max_abs_diff_rel"] <= 1e-4
    sess = ort.InferenceSession(str(image.path))
    (inp,), outs = sess.get_inputs(), sess.get_outputs()
    assert inp.type == "tensor(uint8)" and inp.shape[1:] == [32, 32, 3]
    assert [o.name for o in outs] == ["logits", "probabilities"]


# ---------------------------------------------------------------- bad input
def test_bad_images_are_one_line_each_and_the_rest_are_classified(onnx_files, test_images, tmp_path, capsys,
                                                                  monkeypatch):
    good = next(test_images.glob("*.png"))
    raw = good.read_bytes()
    files = {"truncated.png": raw[: len(raw) // 2], "empty.png": b"", "notes.txt": b"hello",
             "garbage.jpg": bytes(range(256)) * 4}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    Image.new("RGB", (4, 4)).save(tmp_path / "tiny.png")
    Image.new("RGB", (400, 400)).save(tmp_path / "bomb.png")
    (tmp_path / "ok.png").write_bytes(raw)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # bomb.png (160,000 px) is over the limit
    argv = ["predict", str(onnx_files[0].path), *(str(tmp_path / n) for n in [*files, "tiny.png", "bomb.png",
                                                                              "ok.png", "missing.png"]), "--json"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert [r["file"] for r in json.loads(out)] == [str(tmp_path / "ok.png")]
    lines = error_lines(err)
    assert len(lines) == 7 and all(ln.startswith("zoo: error: ") for ln in lines)
    reasons = dict(ln[len("zoo: error: "):].split(": ", 1) for ln in lines)
    assert reasons[str(tmp_path / "missing.png")] == "no such file or folder"
    assert "cannot decode it" in reasons[str(tmp_path / "truncated.png")]
    assert reasons[str(tmp_path / "empty.png")].startswith("not an image zoo reads")
    assert reasons[str(tmp_path / "notes.txt")].startswith("not an image zoo reads")
    assert reasons[str(tmp_path / "tiny.png")] == "image too small (4x4; at least 8x8 pixels)"
    assert "decompression bomb" in reasons[str(tmp_path / "bomb.png")]


def test_an_unreadable_folder_is_one_line(onnx_files, test_images, monkeypatch, capsys):
    import zoo.data.images as images

    def refuse(folder):
        raise PermissionError(13, "Permission denied", str(folder))
        yield

    monkeypatch.setattr(images, "_walk", refuse)
    assert main(["predict", str(onnx_files[0].path), str(test_images), str(next(test_images.glob("*.png")))]) == 1
    said = error_lines(capsys.readouterr().err)
    assert said == [f"zoo: error: {test_images}: cannot read the folder (Permission denied)"]


def test_a_foreign_onnx_file_is_one_line(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["logits"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9),
              str(tmp_path / "foreign.onnx"))
    Image.new("RGB", (32, 32)).save(tmp_path / "x.png")
    assert main(["predict", str(tmp_path / "foreign.onnx"), str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lacks zoo's metadata (class_names, mean, std, input_shape)" in err


def test_opencv_dnn_runs_the_self_contained_graph(onnx_files, test_images):
    cv2 = pytest.importorskip("cv2", reason="OpenCV not installed (pip install 'zoo-classifiers[opencv]')")
    import onnxruntime as ort

    path = str(onnx_files[1].path)
    x = np.stack([np.asarray(Image.open(f)) for f in sorted(test_images.glob("*.png"))])  # uint8 [N, 32, 32, 3]
    net = cv2.dnn.readNetFromONNX(path)
    net.setInput(x)
    names = net.getUnconnectedOutLayersNames()
    got = dict(zip(names, net.forward(names)))
    ref = dict(zip(["logits", "probabilities"], ort.InferenceSession(path).run(None, {"input": x})))
    assert set(names) == {"logits", "probabilities"}
    assert (got["logits"].argmax(1) == ref["logits"].argmax(1)).all()
    assert np.abs(got["logits"] - ref["logits"]).max() <= 1e-4 * max(1.0, np.abs(ref["logits"]).max())


def test_the_bench_it_suggests_measures_the_same_weights(run, onnx_files, fake_root):
    """From a run folder, the suggestion names that folder (zoo bench MODEL DATASET alone would bench the
    best run of that dataset in runs/, or the shipped weights); from a file, that file."""
    from zoo.data import DataOptions
    from zoo.predict.predictor import Predictor

    said = []
    Predictor(str(run), data=DataOptions(fake_root, verify=False), log=said.append)
    assert f"zoo bench cnn cifar10 --weights {run} --runtime all" in said[0]
    said.clear()
    Predictor(str(onnx_files[0].path), log=said.append)
    assert f"zoo bench --onnx {onnx_files[0].path} --runtime all" in said[0]
