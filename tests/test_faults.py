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


@pytest.mark.e2e
def test_sigkill_at_every_write_boundary_resumes_to_the_same_run(small_mnist, tmp_path):
    result = _drive("kill", small_mnist, tmp_path)
    cases = result["cases"]
    assert result["boundaries"] >= 80 and len(cases) == (SAMPLE or result["boundaries"])  # 96 on torch 2.14
    assert result["expected"]["best_ok"] and result["expected"]["summary"] and len(result["expected"]["metrics"]) == 2
    killed = [c for c in cases if c["code"] == -9]
    assert len(killed) == len(cases)  # every boundary was reached and killed there
    assert [c["k"] for c in cases if not c["same"] or c["resumed"] != 0 or c["tracebacks"]] == []


@pytest.mark.e2e
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


# ---------------------------------------------------------------- zoo deletes only what it wrote
USER_FILES = ["holiday.png", "notes.txt", "previous/holiday.png", "previous/notes.txt", ".report-mine/keep.txt",
              ".report-1/keep.txt", ".export-99999999999999999999/keep.txt", ".export-x/keep.txt", ".ir-1-a/keep.txt",
              ".tmp-1/keep.txt"]


def _user_files(root: Path) -> dict:
    for i, name in enumerate(USER_FILES):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"the user's own {i}")
    return {name: (root / name).read_text() for name in USER_FILES}


def test_bench_and_export_leave_a_users_files_of_every_colliding_name(fake_root, tmp_path, capsys):
    out = tmp_path / "out"
    mine = _user_files(out)
    bench = ["bench", "mlp", "mnist", "--random", "--no-eager", "--repeat", "2", "--warmup", "0", "--batch", "8",
             "--data-dir", str(fake_root), "--no-verify", "--out", str(out)]
    for _ in range(3):  # the second moves the first set to previous/, the third replaces that one
        assert main(bench) == 0
    assert main(["export", "mlp", "mnist", "--random", "--data-dir", str(fake_root), "--no-verify", "--out",
                 str(out)]) == 0
    assert {name: (out / name).read_text() for name in USER_FILES} == mine
    assert (out / "report.json").is_file() and (out / "previous" / "report.json").is_file()
    assert (out / "mlp.mnist.onnx").is_file()


def test_a_report_is_not_written_over_a_users_file_of_its_name(fake_root, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("my notes")
    capsys.readouterr()
    assert main(["bench", "mlp", "mnist", "--random", "--no-eager", "--data-dir", str(fake_root), "--no-verify",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "report.md, which zoo did not write" in err and err.count("\n") == 1
    assert (out / "report.md").read_text() == "my notes" and not (out / "report.json").exists()


def test_a_report_file_changed_by_its_user_is_theirs(tmp_path):
    from zoo.bench.report import replace_set

    out, new = tmp_path / "out", tmp_path / "new"
    out.mkdir(), new.mkdir()
    for name in ("report.json", "plot.png"):
        (new / name).write_text("zoo's")
    replace_set(new, out, keep=False)
    (out / "plot.png").write_text("edited by its user")
    (new / "report.json").write_text("zoo's, again")
    replace_set(new, out, keep=True)  # the new set lacks plot.png: zoo's would go; the edited one stays
    assert (out / "plot.png").read_text() == "edited by its user"
    assert (out / "report.json").read_text() == "zoo's, again" and (out / "previous" / "report.json").is_file()


def test_a_sweep_takes_only_marked_folders_whose_writer_is_gone(tmp_path):
    """The owner's lock, not its PID: a live writer in another process (another PID namespace or host alike)
    keeps its folder; a killed one's is swept; an unmarked folder of the same name is never touched."""
    from zoo.core.owned import OWNER, sweep

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom zoo.core.owned import owned_tempdir\n"
        f"with owned_tempdir({str(tmp_path)!r}, '.export') as d:\n    print(d, flush=True)\n    time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    live = Path(holder.stdout.readline().strip())
    dead = subprocess.run([sys.executable, "-c", (
        "import os\nfrom zoo.core.owned import owned_tempdir\n"
        f"with owned_tempdir({str(tmp_path)!r}, '.export') as d:\n    print(d, flush=True)\n    os._exit(9)")],
        capture_output=True, text=True).stdout.strip()
    (tmp_path / ".export-99999999999999999999").mkdir()
    (tmp_path / ".export-fake").mkdir()
    (tmp_path / ".export-fake" / OWNER).write_text("not zoo's marker")
    try:
        assert Path(dead).is_dir() and sweep(tmp_path, ".export") == [Path(dead)]
        assert live.is_dir() and (tmp_path / ".export-99999999999999999999").is_dir()
        assert (tmp_path / ".export-fake").is_dir()
    finally:
        holder.kill()
        holder.wait()
    assert sweep(tmp_path, ".export") == [live]  # its writer is gone now
