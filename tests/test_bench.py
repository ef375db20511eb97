import csv
import json
import math
import platform
import subprocess
import sys

import numpy as np
import pytest

from zoo.bench.report import from_json, load_report
from zoo.cli import main
from zoo.core.errors import ZooError

QUICK = ["--warmup", "2", "--repeat", "5", "--batch", "16"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # export cache per test


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, fake_root):
    out = tmp_path_factory.mktemp("bench")
    import os
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(out / "cache")
    try:
        with pytest.MonkeyPatch.context() as mp:  # the tests run beside each other: their load is not the point here
            import zoo.bench.harness as harness
            import zoo.bench.measure as measure
            mp.setattr(measure, "BUSY", 2.0)
            mp.setattr(harness, "BUSY", 2.0)
            assert main(["bench", "mlp", "mnist", "--random", "--precision", "fp32,int8", "--null", "--data-dir",
                         str(fake_root), "--out", str(out / "r"), *QUICK[:-1], "4,16"]) == 0  # a batch sweep
    finally:
        os.environ.pop("XDG_CACHE_HOME") if old is None else os.environ.__setitem__("XDG_CACHE_HOME", old)
    return out / "r"


def test_report_schema(report_dir):
    report = json.loads((report_dir / "report.json").read_text())
    from_json(report)  # every row reads back as a BenchRow
    env = report["environment"]
    assert {"cpu", "threads", "onnxruntime", "torch", "git_sha", "date", "providers"} <= set(env)
    assert env["freed_memory_kept"] is (platform.libc_ver()[0] == "glibc")  # eager's allocator (core/memory.py)
    rows = report["rows"]
    assert {(r["precision"], r["provider"]) for r in rows} == {("fp32", "cpu"), ("int8", "cpu"), ("-", "null")}
    fp32 = next(r for r in rows if r["precision"] == "fp32")
    assert fp32["params"] == 238_510 and fp32["onnx_mb"] > 0.9 and fp32["top1"] is not None
    assert fp32["latency_ms_p50"] <= fp32["latency_ms_p90"] <= fp32["latency_ms_p99"]
    assert fp32["eager_latency_ms_p50"] > 0 and fp32["speedup_vs_eager"] > 0
    assert fp32["eval_set"].startswith("test split")
    assert fp32["throughput_batch"] == 16 and set(fp32["throughput_by_batch"]) == {"4", "16"}
    assert fp32["throughput_by_batch"]["16"] == fp32["throughput_img_s"]
    if sys.platform == "linux":  # the peak from /proc/self/status
        assert fp32["peak_mb"] is not None and fp32["peak_mb"] >= 0
    int8 = next(r for r in rows if r["precision"] == "int8")
    assert int8["top1_change"] == pytest.approx(int8["top1"] - fp32["top1"])
    null = next(r for r in rows if r["provider"] == "null")
    assert null["latency_ms_p50"] < fp32["latency_ms_p50"]  # the harness costs less than the model


def test_rendered_files(report_dir):
    md = (report_dir / "report.md").read_text()
    assert "| model | dataset |" in md and "CPU:" in md and "freed memory kept (glibc): " in md
    rows = list(csv.DictReader((report_dir / "report.csv").open()))
    assert len(rows) == 3 and rows[0]["arch"] == "mlp"
    for png in ("accuracy_vs_latency.png", "accuracy_vs_size.png"):
        assert (report_dir / png).read_bytes()[:4] == b"\x89PNG"
    page = (report_dir / "report.html").read_text()
    assert "img/s by batch" in page and page.count("data:image/png;base64,") >= 2 and "4: " in page


def test_the_method_line_says_how_many_calls_were_timed():
    from zoo.bench.report import method_line

    automatic = method_line({"warmup": 20, "runs": None, "batch": 256})
    assert "200-1,000 timed (as many as fit in 1 s" in automatic and "None" not in automatic
    assert "5 timed; throughput at batch 16" in method_line({"warmup": 2, "runs": 5, "batch": 16})


def test_report_rerenders_without_measuring(report_dir, tmp_path, monkeypatch, capsys):
    import zoo.bench.harness as harness
    monkeypatch.setattr(harness, "bench_target", lambda *a, **k: pytest.fail("zoo report must not measure"))
    assert main(["report", str(report_dir), "--out", str(tmp_path), "--runs", str(tmp_path / "none")]) == 0
    assert (tmp_path / "report.md").read_text() == (report_dir / "report.md").read_text()
    assert "mlp" in capsys.readouterr().out


def test_report_rejects_foreign_json(tmp_path):
    (tmp_path / "report.json").write_text('{"rows": []}')
    with pytest.raises(ZooError, match="not a zoo report"):
        load_report(tmp_path)


def test_dataset_absent_and_no_sample_is_an_error_row(tmp_path, capsys):
    # KMNIST ships no evaluation sample: without its files no real image can gate the export, and a gate on
    # generated images would prove nothing, so nothing is measured; the row and the error say what data it needs.
    assert main(["bench", "mlp", "kmnist", "--random", "--data-dir", str(tmp_path / "nodata"), "--out",
                 str(tmp_path / "r"), *QUICK]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mlp.kmnist: the parity gate needs 1000 real kmnist images" in err
    row = json.loads((tmp_path / "r" / "report.json").read_text())["rows"][0]
    assert row["error"].startswith("the parity gate needs 1000 real kmnist images") and "--data-dir" in row["error"]
    assert row["latency_ms_p50"] is None and "mlp.kmnist: not measured" in (tmp_path / "r" / "report.md").read_text()


def test_dataset_absent_uses_the_shipped_sample(tmp_path):
    assert main(["bench", "mlp", "mnist", "--random", "--no-eager", "--data-dir", str(tmp_path / "nodata"),
                 "--out", str(tmp_path / "r"), *QUICK]) == 0
    row = json.loads((tmp_path / "r" / "report.json").read_text())["rows"][0]
    assert row["eval_set"] == "shipped sample (1000)" and row["top1"] is not None


def test_demanded_cuda_without_gpu_is_an_error(tmp_path, fake_root):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = subprocess.run([sys.executable, "-m", "zoo.cli", "bench", "mlp", "mnist", "--random", "--provider", "cuda",
                        "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "no CUDA device is usable" in r.stderr and r.stderr.count("\n") == 1


def test_corrupt_onnx_is_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    r = subprocess.run([sys.executable, "-m", "zoo.cli", "bench", "--onnx", str(bad), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "is not a valid ONNX model" in r.stderr and r.stderr.count("\n") == 1


def test_damaged_cache_is_rebuilt(tmp_path, fake_root):
    args = ["bench", "mlp", "mnist", "--random", "--no-eager", "--data-dir", str(fake_root), *QUICK]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    cached = next((tmp_path / "cache" / "zoo" / "exports").rglob("*.onnx"))
    cached.write_bytes(b"broken")
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert cached.stat().st_size > 1000


def test_cache_is_keyed_on_export_revision(tmp_path, fake_root, monkeypatch):
    import zoo.export.cachekey as ex
    args = ["bench", "mlp", "mnist", "--random", "--no-eager", "--data-dir", str(fake_root), *QUICK]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    monkeypatch.setattr(ex, "EXPORT_REVISION", ex.EXPORT_REVISION + 1)  # the exporter changed: export again
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    folders = sorted(p.name.rsplit("-r", 1)[1] for p in (tmp_path / "cache" / "zoo" / "exports").iterdir())
    assert folders == [str(ex.EXPORT_REVISION - 1), str(ex.EXPORT_REVISION)]


def test_bench_an_exported_file(tmp_path, fake_root):
    from zoo.data import DataOptions
    from zoo.export import export
    r = export("lenet5", "mnist", out=tmp_path / "e", data=DataOptions(fake_root, verify=False))
    assert main(["bench", "--onnx", str(r.path), "--data-dir", str(fake_root), "--out", str(tmp_path / "o"),
                 *QUICK]) == 0
    row = json.loads((tmp_path / "o" / "report.json").read_text())["rows"][0]
    assert row["arch"] == "lenet5" and row["precision"] == "fp32" and row["eager_latency_ms_p50"] is None


def test_unwritable_output(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert main(["bench", "mlp", "mnist", "--random", "--out", str(tmp_path / "f" / "x")]) == 2
    assert "cannot write to output folder" in capsys.readouterr().err


def test_nothing_to_bench_says_what_to_do(tmp_path, monkeypatch, capsys):
    import zoo.core.shipped
    monkeypatch.setattr(zoo.core.shipped, "manifest", lambda: {})
    assert main(["bench", "--runs", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nothing to bench" in err and "--random" in err


def test_failed_gate_is_a_note_not_a_crash(tmp_path, fake_root, monkeypatch):
    import zoo.export.gate as gate
    monkeypatch.setitem(gate.GATES, "int8", {"atol": 0.0, "min_agree": 100.1})
    (tmp_path / "w").mkdir()
    from safetensors.torch import save_file
    from zoo.models import create_model
    save_file(create_model("mlp", "mnist").state_dict(), str(tmp_path / "w" / "m.safetensors"))
    assert main(["bench", "mlp", "mnist", "--weights", str(tmp_path / "w" / "m.safetensors"), "--precision",
                 "fp32,int8", "--no-eager", "--data-dir", str(fake_root), "--out", str(tmp_path / "r"), *QUICK]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [r["precision"] for r in report["rows"]] == ["fp32"]
    assert any("mlp.mnist int8: not measured: parity gate failed" in n for n in report["notes"])


def test_cache_is_keyed_on_the_weights_bytes(tmp_path, fake_root):
    """Random weights first, then trained cardless weights for the same pair: each is exported and measured
    from its own bytes (the cache once keyed both on the pair alone and reported one as the other)."""
    from helpers import train_fast

    train_fast("cnn", "mnist", tmp_path / "run", fake_root, epochs=3, batch_size=25)
    bare = tmp_path / "w.safetensors"
    bare.write_bytes((tmp_path / "run" / "best.safetensors").read_bytes())  # no card beside it
    args = ["bench", "cnn", "mnist", "--no-eager", "--data-dir", str(fake_root), *QUICK]
    assert main([*args, "--random", "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--weights", str(bare), "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / x / "report.json").read_text())["rows"][0]["top1"] for x in "ab")
    assert b > a + 20  # trained vs random (10 classes: ~10%)
    assert len(list((tmp_path / "cache" / "zoo" / "exports").iterdir())) == 2


def test_one_bad_shipped_weight_does_not_sink_the_report(tmp_path, fake_root, monkeypatch, capsys):
    import shutil

    import zoo.core.shipped as shipped

    folder = tmp_path / "w"
    shutil.copytree(shipped.weights_dir(), folder, ignore=shutil.ignore_patterns("*.npz"))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["weights"] = [c for c in manifest["weights"] if c["dataset"] == "mnist" and c["arch"] in ("mlp", "cnn")]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    bad = next(c for c in manifest["weights"] if c["arch"] == "cnn")
    (folder / bad["file"]).write_bytes(b"\0" * 100)
    monkeypatch.setattr(shipped, "weights_dir", lambda: folder)
    shipped.manifest.cache_clear()
    try:
        code = main(["bench", "--no-eager", "--data-dir", str(fake_root), "--out", str(tmp_path / "r"), *QUICK])
    finally:
        shipped.manifest.cache_clear()
    assert code == 1
    rows = json.loads((tmp_path / "r" / "report.json").read_text())["rows"]
    assert [(r["arch"], r["error"] is None) for r in rows] == [("mlp", True), ("cnn", False)]
    assert "the file is corrupt: reinstall zoo" in rows[1]["error"]
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: cnn.mnist: weights file") and err.count("\n") == 1


def test_missing_onnx_file_is_not_called_invalid(tmp_path, capsys):
    assert main(["bench", "--onnx", str(tmp_path / "nope.onnx"), "--out", str(tmp_path / "o")]) == 2
    missing = tmp_path / "nope.onnx"
    assert capsys.readouterr().err == f"zoo: error: --onnx {missing}: no such file or folder; check the path\n"


def test_a_missing_dataset_is_said_loudly(tmp_path, capsys):
    assert main(["bench", "mlp", "mnist", "--random", "--no-eager", "--data-dir", str(tmp_path / "nodata"),
                 "--out", str(tmp_path / "r"), *QUICK]) == 0
    out = capsys.readouterr().out
    note = (f"mnist: accuracy measured on zoo's shipped 1,000-image sample, not the test split: mnist not found "
            f"in {tmp_path / 'nodata' / 'MNIST'}")
    first, second = out.splitlines()[:2]  # before anything is measured: which weights, then where the images are
    assert first == "zoo: benching mlp.mnist: random weights" and second.startswith(f"zoo: warning: {note}")
    md = (tmp_path / "r" / "report.md").read_text().splitlines()
    assert md[4].startswith(f"**{note}") and md[6].startswith("| model |")  # the header, above the table


def test_rows_timed_under_load_or_with_noise_are_flagged(tmp_path, fake_root, monkeypatch):
    import zoo.bench.harness as harness

    class Busy:  # other processes used 85% of the machine while each row was timed
        def __init__(self, min_window_s=0.0):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.share = 0.85

    monkeypatch.setattr(harness, "OthersWatch", Busy)
    assert main(["bench", "mlp", "mnist", "--random", "--no-eager", "--data-dir", str(fake_root), "--out",
                 str(tmp_path / "r"), *QUICK]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    row = report["rows"][0]
    assert row["load"] == 0.85 and row["flags"][0] == "busy (others used 85% of the CPU)"
    assert row["latency_iqr_rel"] >= 0
    assert "re-measure such rows on an idle machine" in (tmp_path / "r" / "report.md").read_text()


def virtual_clock(monkeypatch):
    """measure.py's clock, advanced only by the fake backends' calls (deterministic: no sleeping, no load)."""
    from zoo.bench import measure

    class Clock:
        t = 0.0
        spin_until = 0.0  # a backend's worker threads use one core until then (process CPU time)
        cpu = 0.0

        @staticmethod
        def perf_counter():
            return Clock.t

        @staticmethod
        def process_time():
            return Clock.cpu

        @staticmethod
        def sleep(seconds):  # the pause between two runtimes' turns: no call is timed across it
            Clock.cpu += max(0.0, min(Clock.t + seconds, Clock.spin_until) - Clock.t)
            Clock.t += seconds

    monkeypatch.setattr(measure, "time", Clock)
    return Clock


def test_warm_up_runs_until_stable_and_is_bounded(monkeypatch):
    """On a virtual clock that the backends advance (deterministic: no sleeping, no load sensitivity)."""
    from zoo.bench import measure

    Clock = virtual_clock(monkeypatch)

    class Settling:  # 5 ms falling to 1 ms over 40 calls (caches, JIT), then flat
        calls = 0

        def predict(self, x):
            self.calls += 1
            Clock.t += max(0.001, 0.005 - 0.0001 * self.calls)

    # flat from call 40: two equal windows later; the last window's median is the settled 1 ms
    assert measure.warm_up(Settling(), None, min_calls=10) == (60, pytest.approx(1.0))
    monkeypatch.setattr(measure, "MAX_WARMUP_S", 0.05)

    class Drifting:  # 10% slower every call: never stable
        ms = 2.0

        def predict(self, x):
            Drifting.ms *= 1.1
            Clock.t += Drifting.ms / 1e3

    assert measure.warm_up(Drifting(), None, min_calls=10_000)[0] < 100  # stops at the bound
    assert measure.flags({"iqr_rel": 0.2}, 0.0) == ["noisy (IQR 20% of p50)"] and measure.flags({"iqr_rel": 0.01},
                                                                                                 0.1) == []


def test_latency_calls_enough_for_p99_when_they_fit(monkeypatch):
    """Without --repeat, a 0.05 ms runtime gets 1,000 timed calls (p99 over 10), a 2 ms one the 500 that fit in
    1 s, a 10 ms one 200; an explicit count is kept. Each runtime's percentiles say how many calls they rest on."""
    from zoo.bench import measure

    Clock = virtual_clock(monkeypatch)

    class Runtime:
        def __init__(self, ms):
            self.ms = ms

        def predict(self, x):
            Clock.t += self.ms / 1e3

    stats = measure.latency_rounds([Runtime(0.05), Runtime(2), Runtime(10)], None, warmup=20, runs=None)
    assert [s["calls"] for s in stats] == [1000, 500, 200]
    assert [s["calls"] for s in measure.latency_rounds([Runtime(0.05), Runtime(2)], None, 20, runs=7)] == [7, 7]


def test_runtimes_timed_in_rounds_share_a_drifting_machine_alike(monkeypatch):
    """A transient slowdown (another process: 3x slower calls for 100 calls) lands on whichever runtime is timed
    then when runtimes are timed one after the other, and on all of them alike in interleaved rounds. On a
    virtual clock, over every position of the slowdown, the ratio of two runtimes' mean latency (truly 2x)
    is off by up to 2.8x timed apart, and by at most 1.35x in rounds (a turn is a fifth of the calls)."""
    import math

    from zoo.bench import measure

    Clock = virtual_clock(monkeypatch)
    calls, window = [0], [0, 0]

    class Runtime:
        def __init__(self, ms):
            self.ms = ms

        def predict(self, x):
            calls[0] += 1
            Clock.t += self.ms / 1e3 * (3 if window[0] < calls[0] <= window[1] else 1)

    def error(stats):  # how far the measured ratio is from the true 2x, as a log
        return abs(math.log(stats[1]["mean"] / stats[0]["mean"] / 2))

    worst_apart = worst_together = 0.0
    for start in range(0, 400, 25):
        window[:] = [start, start + 100]
        calls[0] = 0
        worst_apart = max(worst_apart, error([measure.latency_ms(Runtime(ms), None, 0, 100) for ms in (1, 2)]))
        calls[0] = 0
        worst_together = max(worst_together, error(measure.latency_rounds([Runtime(1), Runtime(2)], None, 0, 100)))
    assert worst_together < math.log(1.35) and worst_apart > math.log(2.5)


def test_throughput_turns_start_with_an_untimed_call_and_long_calls_warm_up_briefly(monkeypatch):
    """A turn of short calls starts with one untimed call, a turn of calls >= 0.25 s does not (measure.py's
    LONG_CALL_S says why); the warm-up stops after one 0.3 s call, and a first call of 0.6 s is the whole
    warm-up; 0.8 ms calls fill a 50 ms turn. Every rate is exact on a virtual clock."""
    from zoo.bench import measure

    Clock = virtual_clock(monkeypatch)

    class Runtime:
        def __init__(self, seconds):
            self.seconds, self.calls = seconds, 0

        def predict(self, x):
            self.calls += 1
            Clock.t += self.seconds

    slower, slow, fast = Runtime(0.6), Runtime(0.3), Runtime(0.0008)
    x = np.zeros((256, 1))
    assert measure.throughput_rounds([slower, slow, fast], x, warmup=20, runs=5) == pytest.approx(
        [256 / 0.6, 256 / 0.3, 320_000])
    assert slower.calls == 1 + 5  # one warm-up call, then a timed call per round
    assert slow.calls == 2 + 5  # two warm-up calls, then the same
    assert fast.calls == 3 + 5 * (1 + 63)  # warm-up, then per round an untimed call and a 50 ms turn


def test_turns_wait_until_the_previous_runtimes_threads_stop_spinning(monkeypatch):
    """settle() sleeps until the process's CPU use falls quiet: just past a 40 ms spin (onnxruntime's, measured),
    at once when nothing spins, and never longer than its bound when something always does."""
    from zoo.bench import measure

    Clock = virtual_clock(monkeypatch)
    Clock.spin_until = 0.040
    waited = measure.settle()
    assert 0.040 <= waited <= 0.040 + (measure.QUIET_SLICES + 1) * measure.SETTLE_SLICE_S
    assert measure.settle() == pytest.approx(measure.QUIET_SLICES * measure.SETTLE_SLICE_S)
    Clock.spin_until = math.inf
    assert measure.settle() == pytest.approx(measure.SETTLE_MAX_S, abs=measure.SETTLE_SLICE_S)


def test_other_runtimes_get_rows_with_accuracy_and_agreement(tmp_path, fake_root):
    pytest.importorskip("openvino", reason="OpenVINO not installed (pip install 'zoo-classifiers[openvino]')")
    pytest.importorskip("cv2", reason="OpenCV not installed (pip install 'zoo-classifiers[opencv]')")
    from helpers import train_fast

    train_fast("mlp", "mnist", tmp_path / "run", fake_root, epochs=2, batch_size=25)
    assert main(["bench", "mlp", "mnist", "--weights", str(tmp_path / "run"), "--runtime",
                 "onnxruntime,openvino,opencv", "--precision", "fp32,int8", "--no-eager", "--data-dir",
                 str(fake_root), "--out", str(tmp_path / "r"), *QUICK]) == 0
    rows = json.loads((tmp_path / "r" / "report.json").read_text())["rows"]
    got = {(r["precision"], r["runtime"].split(" (")[0]) for r in rows}
    assert got == {("fp32", "onnxruntime"), ("fp32", "openvino"), ("fp32", "opencv"), ("int8", "onnxruntime"),
                   ("int8", "openvino")}
    assert {r["runtime"] for r in rows if r["runtime"].startswith("openvino") and r["precision"] == "fp32"} \
        >= {"openvino (f32)"}  # the like-for-like row, besides OpenVINO's default precision
    fp32 = [r for r in rows if r["precision"] == "fp32"]
    assert all(r["torch_agreement"] >= 99.0 and abs(r["torch_top1_change"]) <= 1.0 and r["load_s"] > 0 for r in fp32)


def test_a_runtime_asked_for_by_name_must_be_there(tmp_path, monkeypatch, capsys):
    import zoo.bench.harness as harness

    monkeypatch.setattr(harness, "missing_runtime", lambda r: "openvino is not installed (pip install "
                        "'zoo-classifiers[openvino]')" if r == "openvino" else None)
    assert main(["bench", "mlp", "mnist", "--random", "--runtime", "openvino", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == ("zoo: error: --runtime openvino: openvino is not installed (pip install "
                                       "'zoo-classifiers[openvino]')\n")


@pytest.mark.slow
def test_torch_compile_rows(tmp_path, fake_root):
    assert main(["bench", "mlp", "mnist", "--random", "--runtime", "onnxruntime,torch-compile", "--no-eager",
                 "--data-dir", str(fake_root), "--out", str(tmp_path / "r"), *QUICK]) == 0
    rows = json.loads((tmp_path / "r" / "report.json").read_text())["rows"]
    compiled = next(r for r in rows if r["runtime"] == "torch-compile")
    assert compiled["torch_agreement"] == 100.0 and compiled["onnx_mb"] is None and compiled["load_s"] > 0


@pytest.mark.e2e
def test_ctrl_c_still_works_after_a_report_with_several_openvino_models(tmp_path, fake_root):
    """OpenVINO installs an alternate signal stack per compiled model and restores the previous one when the model
    is freed; freed out of load order they leave a stack that is no longer mapped, and the next Ctrl-C crashed
    the process (a training run's, in the same test process). OpenVinoBackend.close, last loaded first."""
    pytest.importorskip("openvino", reason="OpenVINO not installed (pip install 'zoo-classifiers[openvino]')")
    code = ("import os, signal, sys\nfrom zoo.cli import main\n"
            "assert main(['bench', 'mlp', 'mnist', '--random', '--runtime', 'onnxruntime,openvino', '--no-eager',"
            " '--data-dir', sys.argv[1], '--out', sys.argv[2], '--repeat', '20', '--warmup', '2']) == 0\n"
            "signal.signal(signal.SIGINT, lambda *a: print('handled'))\nos.kill(os.getpid(), signal.SIGINT)\n"
            "print('alive')\n")
    out = subprocess.run([sys.executable, "-c", code, str(fake_root), str(tmp_path / "r")], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.splitlines()[-2:] == ["handled", "alive"], out.stderr[-500:]


def test_phases_are_told_as_they_start(fake_root):
    """The progress bar names what a slow target is doing: its export, each runtime's accuracy pass, the timing."""
    from zoo.bench.harness import BenchConfig, bench_target
    from zoo.core.sources import Target
    from zoo.data import DataOptions

    told = []
    cfg = BenchConfig(precisions=("fp32", "int8"), warmup=2, runs=5, batch=16)
    bench_target(Target("mlp", "mnist"), cfg, ["cpu"], DataOptions(str(fake_root)), log=lambda *a: None,
                 phase=told.append)
    assert told[0].startswith("accuracy: PyTorch eager, ")  # the reference first
    assert [p.split(",")[0] for p in told if p.startswith("export")] == ["export fp32", "export int8"]
    assert "fp32 onnxruntime: loading, then accuracy on" in " ".join(told)
    assert told[-1] == "timing 3 runtimes"  # eager, fp32 and int8 onnxruntime


def test_cuda_counts_as_usable_only_where_the_driver_sees_a_device(monkeypatch):
    """onnxruntime-gpu lists CUDA on every machine; without torch (the light install) the CUDA driver is asked,
    as torch's own check does: no driver, or a driver that sees no device, is no GPU."""
    import sys

    import onnxruntime as ort

    from zoo.core import sessions
    from zoo.core.sessions import cuda_device

    class Driver:
        def __init__(self, devices):
            self.devices = devices

        def cuInit(self, flags):
            return 0

        def cuDeviceGetCount(self, count):
            count._obj.value = self.devices
            return 0

        def cuDeviceGet(self, device, ordinal):
            return 0

        def cuDeviceGetName(self, buf, size, device):
            buf.value = b"Test GPU"
            return 0

    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])

    monkeypatch.setattr(sessions, "_cuda_driver", lambda: None)  # no NVIDIA driver
    assert cuda_device() is None
    for devices, name in ((0, None), (1, "Test GPU")):
        monkeypatch.setattr(sessions, "_cuda_driver", lambda d=devices: Driver(d))
        assert cuda_device() == name
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert cuda_device() is None
