"""Fault injection: a real SIGKILL, or a full disk, at every write boundary of a training run (see
fault_driver.py), then a resume; and read-only destinations for every command that writes."""

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from zoo.cli import main

DRIVER = Path(__file__).with_name("fault_driver.py")


@pytest.fixture(scope="module")
def small_mnist(tmp_path_factory):
    from zoo.data.fake import write_fake_dataset
    return write_fake_dataset("mnist", tmp_path_factory.mktemp("mnist"), n_train=200, n_test=1000)


# Every boundary under ZOO_SLOW=1; otherwise a fixed-seed sample of them (the first and last always), which keeps
# the suite's cost down while every kind of boundary (temp file, fsync, rename, save, append) stays in reach.
SAMPLE = None if os.environ.get("ZOO_SLOW") == "1" else 32


def _drive(mode: str, data: Path, work: Path) -> dict:
    extra = [f"sample={SAMPLE}"] if SAMPLE else []
    r = subprocess.run([sys.executable, str(DRIVER), mode, str(data), str(work), *extra], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_sigkill_at_every_write_boundary_resumes_to_the_same_run(small_mnist, tmp_path):
    result = _drive("kill", small_mnist, tmp_path)
    cases = result["cases"]
    assert result["boundaries"] >= 80 and len(cases) == (SAMPLE or result["boundaries"])  # 96 on torch 2.14
    assert result["expected"]["best_ok"] and result["expected"]["summary"] and len(result["expected"]["metrics"]) == 2
    killed = [c for c in cases if c["code"] == -9]
    assert len(killed) == len(cases)  # every boundary was reached and killed there
    assert [c["k"] for c in cases if not c["same"] or c["resumed"] != 0 or c["tracebacks"]] == []


def test_a_full_disk_at_every_write_boundary_is_one_line_leaves_nothing_half_written(small_mnist, tmp_path):
    cases = _drive("enospc", small_mnist, tmp_path)["cases"]
    failed = [c for c in cases if c["code"] == 2]
    # every write that can fail did (a boundary *after* a write injects nothing): 40+ of 96, about half a sample
    assert len(failed) >= (40 if SAMPLE is None else SAMPLE // 4)
    assert all(c["errors"] == ["zoo: error: No space left on device; nothing half-written is left: free space or "
                               "choose another --out, then run the command again with --resume"]
               for c in failed)
    assert [c["k"] for c in cases if c["code"] not in (0, 2) or c["temps_after_fault"] or c["tracebacks"]
            or not c["same"]] == []


@pytest.fixture
def read_only(monkeypatch, tmp_path):
    """A folder that refuses writes as a read-only mount would (permission bits do not stop root)."""
    ro = tmp_path / "ro"
    ro.mkdir()

    def guard(path):
        if path is not None and str(path).startswith(str(ro)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))

    real_mkdir, real_mkstemp, real_ntf = Path.mkdir, tempfile.mkstemp, tempfile.NamedTemporaryFile
    monkeypatch.setattr(Path, "mkdir", lambda self, *a, **k: (guard(self), real_mkdir(self, *a, **k))[1])
    monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: (guard(k.get("dir")), real_mkstemp(*a, **k))[1])
    monkeypatch.setattr(tempfile, "NamedTemporaryFile",
                        lambda *a, **k: (guard(k.get("dir")), real_ntf(*a, **k))[1])
    return ro


@pytest.mark.parametrize("command", [
    ["train", "mlp", "mnist", "--epochs", "1", "--precision", "fp32", "--compile", "off", "--out", "{ro}/run"],
    ["export", "mlp", "mnist", "--random", "--out", "{ro}/onnx"],
    ["bench", "mlp", "mnist", "--random", "--no-eager", "--repeat", "2", "--warmup", "0", "--out", "{ro}/b"],
    ["report", "{report}", "--out", "{ro}/r"],
])
def test_read_only_destinations_are_one_line(command, read_only, fake_root, tmp_path, capsys):
    report = tmp_path / "rep"
    if command[0] == "report":
        assert main(["bench", "mlp", "mnist", "--random", "--no-eager", "--repeat", "2", "--warmup", "0",
                     "--data-dir", str(fake_root), "--no-verify", "--out", str(report)]) == 0
        capsys.readouterr()
    argv = [a.format(ro=read_only, report=report) for a in command]
    assert main([*argv, *(["--data-dir", str(fake_root), "--no-verify"] if command[0] != "report" else [])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Read-only file system" in err and str(read_only) in err, err
    assert list(read_only.iterdir()) == []
