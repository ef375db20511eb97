"""Deploy on the fastest runtime that keeps accuracy: the recommendation rule, its cache and its key, and
`zoo predict --runtime auto` with and without a recommendation."""

import json
import re

import pytest

from zoo.bench.recommend import MAX_LOSS, line, recommend
from zoo.core import deploy
from zoo.core.cards import BenchRow


def row(runtime="onnxruntime", precision="fp32", p50=1.0, img_s=1000.0, change=0.0, agree=100.0, flags=(), **kw):
    return BenchRow("resnet20", "cifar10", precision, "cpu", runtime, latency_ms_p50=p50, throughput_img_s=img_s,
                    throughput_batch=256, torch_top1_change=change, torch_agreement=agree, flags=list(flags),
                    weights_sha256="ab" * 32, export_revision=7, **kw)


def test_the_fastest_row_that_keeps_accuracy_is_chosen_and_faster_ones_are_explained():
    rows = [row(), row("openvino (bf16)", p50=0.4, img_s=5000, change=-(MAX_LOSS + 0.1)),
            row("onnxruntime", "int8", p50=0.5, img_s=2000, change=-0.1, agree=99.5),
            row("openvino (f32)", "int8", p50=0.6, img_s=3000, agree=98.0), row("torch-compile", p50=0.1, img_s=9000)]
    rec = recommend(rows)["resnet20.cifar10"]
    assert (rec["latency"]["runtime"], rec["latency"]["precision"]) == ("onnxruntime", "int8")
    assert (rec["throughput"]["runtime"], rec["throughput"]["precision"]) == ("onnxruntime", "int8")
    assert rec["throughput"]["speedup"] == pytest.approx(2.0) and rec["latency"]["speedup"] == pytest.approx(2.0)
    said = " ".join(rec["passed_over"])
    assert "openvino (bf16) fp32 (batch 256): loses 0.40 pt" in said and "agrees with PyTorch on 98.00%" in said
    assert "torch-compile fp32 (batch 1): not a runtime zoo predict runs" in said
    assert line("resnet20.cifar10", rec).startswith("resnet20.cifar10: batch 1 onnxruntime int8 (0.500 ms, 2.00x")


def test_noise_bars_only_the_batch_1_choice_and_busy_bars_both():
    rows = [row(), row("openvino (bf16)", p50=0.4, img_s=5000, flags=["noisy (IQR 40% of p50)"]),
            row("opencv", p50=0.3, img_s=8000, flags=["busy (others used 50% of the CPU)"])]
    rec = recommend(rows)["resnet20.cifar10"]
    assert rec["latency"]["runtime"] == "onnxruntime" and rec["throughput"]["runtime"] == "openvino (bf16)"
    assert any("opencv fp32 (batch 256): timed busy" in p for p in rec["passed_over"])


def test_ties_go_to_the_default_and_a_single_runtime_has_nothing_to_choose():
    rec = recommend([row("opencv"), row()])["resnet20.cifar10"]
    assert rec["latency"]["runtime"] == "onnxruntime" and rec["throughput"]["runtime"] == "onnxruntime"
    assert recommend([row()]) == {}


def test_a_row_exactly_at_the_limits_is_deployable():
    """3 images of 1,000 lost is 0.3 point, which float subtraction makes 0.30000000000001: still at the limit."""
    at_limit = row("openvino (f32)", "int8", p50=0.5, img_s=3000, change=90.1 - 90.4, agree=100 * 990 / 1000)
    rec = recommend([row(), at_limit])["resnet20.cifar10"]
    assert rec["latency"]["runtime"] == rec["throughput"]["runtime"] == "openvino (f32)", rec


ORT = {"runtime": "onnxruntime", "precision": "fp32"}


def test_no_row_fit_to_deploy_is_said():
    """Busy rows still give a (provisional) choice; rows that lose accuracy never do."""
    busy = ["busy (others used 50% of the CPU)"]
    rec = recommend([row(change=-1.0), row("opencv", change=-1.0, flags=busy)])
    assert "no recommendation" in line("resnet20.cifar10", rec["resnet20.cifar10"])
    rec = recommend([row(change=-1.0), row("opencv", flags=busy, load=0.5)])["resnet20.cifar10"]
    assert rec["throughput"]["runtime"] == "opencv" and "50%" in rec["provisional"]


def test_the_cache_key_holds_only_on_its_machine_and_versions(monkeypatch):
    sha = "cd" * 32
    deploy.remember(deploy.deploy_key(sha, 7, 2), {"model": "m", "latency": ORT, "throughput": ORT})
    assert deploy.recall(sha, 7, 2)[0] is not None and deploy.unused_here(deploy.deploy_key(sha, 7, 2)) == ""
    older = deploy.deploy_key(sha, 7, 2).replace(" tta none", "")  # keys before they named the TTA
    assert deploy.unused_here(older) == "written by an older zoo: bench again"
    assert deploy.recall(sha, 6, 2)[0] is None  # another export revision
    entry, note = deploy.recall(sha, 7, 1)
    assert entry is None and "measured elsewhere" in note and "1 threads" in note
    here = deploy.deploy_key(sha, 7, 2)
    monkeypatch.setattr(deploy, "machine_id", lambda: "another CPU")
    entry, note = deploy.recall(sha, 7, 2)
    assert entry is None and "measured elsewhere" in note
    assert deploy.unused_here(here) == "another machine: not used here"
    assert deploy.recall("ef" * 32, 7, 2) == (None, "no recommendation for these weights on this machine yet")


def test_the_cache_key_names_the_test_time_augmentation_in_the_graph():
    """One set of weights exported with six passes per image and with one (zoo export --tta) is two files whose
    fastest runtime is measured apart: a recommendation for one is not the other's."""
    sha = "ab" * 32
    deploy.remember(deploy.deploy_key(sha, 7, 2, "flip-shift"), {"model": "m", "latency": ORT, "throughput": ORT})
    assert deploy.recall(sha, 7, 2, "flip-shift")[0] is not None
    for other in ("", "flip"):
        assert deploy.recall(sha, 7, 2, other) == (None, "no recommendation for these weights on this machine yet")


def test_predict_auto_uses_the_recommendation_and_says_how_to_get_one(capsys, tmp_path):
    from zoo.cli import main
    from zoo.predict.predictor import Predictor

    said = []
    p = Predictor("cnn", "mnist", log=said.append)
    assert p.runtime == "onnxruntime" and "zoo bench cnn mnist --runtime all --precision fp32,int8" in said[0]
    pytest.importorskip("openvino", reason="OpenVINO (an optional runtime) is not installed")
    rec = {"model": "cnn.mnist", "latency": {"runtime": "openvino (f32)", "precision": "fp32"},
           "throughput": {"runtime": "onnxruntime", "precision": "int8"}}
    deploy.remember(deploy.deploy_key(p.meta["weights_sha256"], p.meta["export_revision"], None), rec)
    few = Predictor("cnn", "mnist", images=3, log=said.append)
    assert (few.runtime_label, few.precision) == ("openvino (f32)", "fp32")
    many = Predictor("cnn", "mnist", images=500, log=said.append)
    assert (many.runtime, many.precision) == ("onnxruntime", "int8") and many.path.name == "cnn.mnist-int8.onnx"
    from PIL import Image
    import numpy as np
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "x.png")
    assert main(["predict", "cnn", "mnist", str(tmp_path / "x.png"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out[0]["runtime"], out[0]["precision"]) == ("openvino (f32)", "fp32")


def test_bench_over_runtimes_recommends_remembers_lists_and_predict_uses_it(tmp_path, fake_root, capsys,
                                                                            monkeypatch):
    """End to end through the CLI: the key bench remembers under is the one predict looks up."""
    import zoo.bench.measure
    from helpers import train_fast
    from zoo.cli import main
    from zoo.predict.predictor import Predictor

    monkeypatch.setattr(zoo.bench.measure, "BUSY", 1.01)  # the other test worker's load must not bar every row
    run = tmp_path / "run"
    train_fast("mlp", "mnist", run, fake_root, epochs=1, batch_size=20)
    assert main(["bench", "mlp", "mnist", "--weights", str(run), "--precision", "fp32,int8", "--data-dir",
                 str(fake_root), "--no-verify", "--warmup", "2", "--repeat", "5", "--batch", "16", "--out",
                 str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert "mlp.mnist" in report["recommendation"] and "recommended: mlp.mnist" in out
    assert "## Recommended" in (tmp_path / "b" / "report.md").read_text()
    assert "<h2>Recommended</h2>" in (tmp_path / "b" / "report.html").read_text()
    rec = report["recommendation"]["mlp.mnist"]
    assert not rec.get("none") and rec["tta"] == "", rec
    assert main(["list", "--deploy"]) == 0
    listed = capsys.readouterr().out
    assert re.search(r"mlp\.mnist \[[^]]+\]: batch 1", listed)
    assert "not used" not in listed and "older zoo" not in listed
    said = []
    p = Predictor(str(run), images=500, log=said.append)
    assert (p.runtime_label, p.precision) == (rec["throughput"]["runtime"], rec["throughput"]["precision"])
    assert "zoo bench's choice" in said[-1], said


def test_a_recommendation_measured_elsewhere_is_ignored_and_said():
    from zoo.predict.predictor import Predictor

    p = Predictor("cnn", "mnist")
    rec = {"model": "cnn.mnist", "latency": {"runtime": "opencv", "precision": "fp32"},
           "throughput": {"runtime": "opencv", "precision": "fp32"}}
    deploy.remember(deploy.deploy_key(p.meta["weights_sha256"], p.meta["export_revision"], 1), rec)
    said = []
    q = Predictor("cnn", "mnist", threads=2, log=said.append)
    assert q.runtime == "onnxruntime" and len(said) == 1
    assert "measured elsewhere" in said[0] and "zoo bench cnn mnist --runtime all --precision fp32,int8" in said[0]


def test_export_format_ort_is_gated_and_predict_reads_it(tmp_path, fake_root, capsys):
    from zoo.cli import main

    assert main(["export", "mlp", "mnist", "--random", "--format", "onnx,ort", "--out", str(tmp_path),
                 "--data-dir", str(fake_root), "--no-verify"]) == 0
    assert "ORT format: " in capsys.readouterr().out and (tmp_path / "mlp.mnist.ort").is_file()
    from PIL import Image
    import numpy as np
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "x.png")
    outs = []
    for f in ("mlp.mnist.onnx", "mlp.mnist.ort"):
        assert main(["predict", str(tmp_path / f), str(tmp_path / "x.png"), "--json"]) == 0
        outs.append(json.loads(capsys.readouterr().out)[0]["top"])
    assert outs[0][0]["class"] == outs[1][0]["class"]
    assert abs(outs[0][0]["probability"] - outs[1][0]["probability"]) < 1e-4
    assert main(["predict", str(tmp_path / "mlp.mnist.ort"), str(tmp_path / "x.png"), "--runtime", "opencv"]) == 2
    assert "in onnxruntime's own format; --runtime opencv reads the .onnx file" in capsys.readouterr().err
    assert main(["export", "mlp", "mnist", "--random", "--format", "onnx,tflite", "--out", str(tmp_path)]) == 2
    assert "unknown format(s) tflite" in capsys.readouterr().err


def test_export_format_openvino_is_gated_carries_the_metadata_and_predict_reads_it(tmp_path, fake_root, capsys):
    pytest.importorskip("openvino", reason="OpenVINO (an optional runtime) is not installed")
    import numpy as np
    from PIL import Image

    from zoo.cli import main
    from zoo.core.sessions import IrSession

    assert main(["export", "cnn", "mnist", "--pretrained", "--format", "onnx,openvino", "--out", str(tmp_path),
                 "--data-dir", str(fake_root), "--no-verify"]) == 0
    assert "OpenVINO IR: " in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.mnist.bin", "cnn.mnist.onnx", "cnn.mnist.xml"]
    meta = IrSession(tmp_path / "cnn.mnist.xml").metadata()
    assert meta["class_names"][:2] == ["0", "1"] and meta["input_shape"] == ["batch", 1, 28, 28]
    assert meta["parity"]["openvino_agreement"] == 100.0
    for i in range(3):  # light digits on dark, as MNIST's
        a = np.zeros((28, 28), np.uint8)
        a[4:24, 10 + i:14 + i] = 255
        Image.fromarray(a).save(tmp_path / f"x{i}.png")
    images = [str(tmp_path / f"x{i}.png") for i in range(3)]
    outs = []
    for f in ("cnn.mnist.onnx", "cnn.mnist.xml"):
        assert main(["predict", str(tmp_path / f), *images, "--json", "--runtime", "auto"]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert [r["top"][0]["class"] for r in outs[0]] == [r["top"][0]["class"] for r in outs[1]]
    assert max(abs(a["top"][0]["probability"] - b["top"][0]["probability"]) for a, b in zip(*outs)) < 1e-4
    assert outs[1][0]["runtime"] == "openvino (f32)"  # the precision it was gated at
    assert main(["predict", str(tmp_path / "cnn.mnist.xml"), *images, "--runtime", "onnxruntime"]) == 2
    assert "in openvino's own format; --runtime onnxruntime reads the .onnx file" in capsys.readouterr().err
    (tmp_path / "cnn.mnist.bin").write_bytes(b"short")  # its weights damaged: one line
    assert main(["predict", str(tmp_path / "cnn.mnist.xml"), *images]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: ") and err.count("\n") == 1



def test_an_int8_ir_is_gated_as_the_int8_file_is(tmp_path, capsys):
    """OpenVINO's int8 kernels round otherwise than onnxruntime's: the int8 IR passes on its accuracy against
    fp32 (the int8 gate), not on 100% agreement with the int8 .onnx file. On the shipped real sample."""
    pytest.importorskip("openvino", reason="OpenVINO (an optional runtime) is not installed")
    from zoo.cli import main
    from zoo.core.sessions import IrSession

    assert main(["export", "cnn", "mnist", "--pretrained", "--precision", "int8", "--format", "onnx,openvino",
                 "--out", str(tmp_path), "--data-dir", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("zoo: exporting cnn.mnist: the weights shipped with zoo")
    assert "pt of top-1 against fp32" in out
    parity = IrSession(tmp_path / "cnn.mnist-int8.xml").metadata()["parity"]
    assert parity["openvino_acc_change"] >= -1.0 and parity["openvino_agreement"] >= 90.0


def test_a_file_runs_at_its_own_precision_and_says_so_whatever_bench_chose():
    from zoo.export.cachekey import shipped_exports
    from zoo.predict.predictor import Predictor

    f = next(shipped_exports().rglob("cnn.mnist.onnx"))  # an fp32 file
    p = Predictor(f)
    rec = {"model": "cnn.mnist", "latency": {"runtime": "onnxruntime", "precision": "int8"},
           "throughput": {"runtime": "onnxruntime", "precision": "int8"}}
    deploy.remember(deploy.deploy_key(p.meta["weights_sha256"], p.meta["export_revision"], None), rec)
    said = []
    q = Predictor(f, images=500, log=said.append)
    assert (q.runtime, q.precision) == ("onnxruntime", "fp32") and q.path == f
    assert "running onnxruntime fp32: zoo bench's choice is onnxruntime int8, and cnn.mnist.onnx is fp32" in said[0]


def test_a_slower_runtime_is_never_recommended_over_a_noisy_default():
    """onnxruntime fp32 timed noisy at batch 1 (0.047 ms) and OpenCV clean but slower (0.076 ms): the batch-1
    choice stays onnxruntime fp32, not the slower runtime that happened to be timed quietly."""
    rows = [row(p50=0.047, img_s=9000, flags=["noisy (IQR 40% of p50)"]), row("opencv", p50=0.076, img_s=5000)]
    rec = recommend(rows)["resnet20.cifar10"]
    assert rec["latency"]["runtime"] == "onnxruntime" and rec["throughput"]["runtime"] == "onnxruntime"


def test_an_entry_measured_with_other_threads_is_marked_with_how_to_use_it():
    import os

    sha = "cd" * 32
    key = deploy.deploy_key(sha, 7, 1)
    assert deploy.unused_here(key) == ("" if os.cpu_count() == 1 else
                                       "measured with 1 threads: used by zoo predict --threads 1")
    assert deploy.unused_here(deploy.deploy_key(sha, 7, None)) == ""
