import json
import subprocess
import sys

from zoo.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], capture_output=True, text=True)


def test_list_paper_json(capsys):
    assert main(["list", "--paper", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 16
    row = next(r for r in rows if r["model"] == "mlp" and r["dataset"] == "mnist")
    assert row["params"] == 238_510 and abs(row["size_mb"] - 0.954) < 0.01 and row["macs"] == 238_200
    kmnist = [r for r in rows if r["dataset"] == "kmnist"]
    assert all("not offline" in r["weights_note"] or r["pretrained"] for r in kmnist)


def test_list_table_and_filters(capsys):
    assert main(["list", "resnet*", "--dataset", "cifar10"]) == 0
    out = capsys.readouterr().out
    assert "resnet20" in out and "269,722" in out and "mlp" not in out


def test_unknown_model_one_line_error():
    r = run_cli("list", "resnet2")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "did you mean resnet20" in r.stderr


def test_unknown_dataset_one_line_error():
    r = run_cli("list", "--dataset", "cifar")
    assert r.returncode == 2 and "cifar10, cifar100" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------- what a new user trips on
import os  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def zoo_cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "zoo.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def test_resume_mismatch_is_refused_in_words_before_any_probing(fake_root, tmp_path):
    out, cache = tmp_path / "run", {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    data = ["--data-dir", fake_root, "--no-verify"]
    assert zoo_cli("train", "mlp", "mnist", "--recipe", "fast", "--epochs", "1", "--precision", "fp32",
                   "--compile", "off", "--out", out, *data).returncode == 0
    r = zoo_cli("train", "--resume", "--out", out, "--epochs", "2", "--set", "label_smoothing=0", *data, env=cache)
    assert r.returncode == 2 and r.stdout == ""  # no "fast path: ..." probe lines: refused before it
    assert r.stderr == (f"zoo: error: this run ({out}) was started with --epochs 1 --set label_smoothing=0.1, not "
                        f"--epochs 2 --set label_smoothing=0.0; resume it with its own recipe (zoo train --resume "
                        f"--out {out}) or start another --out\n")
    assert not (tmp_path / "cache").exists()


def test_missing_data_is_said_before_probing(tmp_path):
    r = zoo_cli("train", "cnn", "kmnist", "--data-dir", tmp_path / "none", "--out", tmp_path / "run",
                env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith("zoo: error: kmnist not found in ")
    assert r.stderr.count("\n") == 1 and not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", [["train", "resnt20", "cifar10"], ["export", "resnt20", "cifar10", "--pretrained"],
                                     ["bench", "resnt20", "cifar10"], ["list", "resnt20"]])
def test_one_message_for_an_unknown_model_everywhere(command, tmp_path):
    r = zoo_cli(*command, "--out" if command[0] != "list" else "--json", *([tmp_path / "o"] if command[0] != "list"
                                                                          else []))
    assert r.returncode == 2
    assert r.stderr == "zoo: error: unknown model 'resnt20'; did you mean resnet20, resnet18, timm/resnet18?\n"


def test_every_option_is_documented_with_its_default_and_every_command_has_examples():
    import argparse

    from zoo.cli import EXAMPLES, build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        assert len(EXAMPLES[name]) >= 2 and all(e in p.format_help() for e in EXAMPLES[name])
        for a in p._actions:
            assert a.help, f"zoo {name} {a.dest}: no help"
            switch = a.nargs == 0  # --no-eager: off unless given, nothing to show
            if a.option_strings and a.default not in (None, False, (), argparse.SUPPRESS) and not switch:
                assert "default" in p._get_formatter()._get_help_string(a), f"zoo {name} {a.dest}: default not shown"


def test_progress_bar_fits_80_columns_and_shows_the_lr_range():
    import io

    from rich.console import Console

    from zoo.train.loop import EpochSums
    from zoo.train.progress import EpochProgress

    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=True, color_system=None)
    with EpochProgress(console=console) as bar:
        bar.start_epoch(0, 1, 196, 0)
        bar.step(EpochSums(loss=460.0, correct=200, seen=22_000, step=85, seconds=4.0), 0.19, 1)
        bar.end_epoch({"lr": 0.008, "lr_min": 0.008, "lr_max": 0.2, "train_loss": 1.5, "train_acc": 40.0,
                       "test_loss": 1.2, "test_acc": 55.0, "images_per_s": 5500.0, "wall_s": 12.0})
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    lines = [ln for ln in re.split(r"[\r\n]", text) if ln.strip()]
    assert all(len(ln) <= 80 and "…" not in ln for ln in lines), lines
    assert any("85/196" in ln and "epoch 1/1" in ln for ln in lines)
    assert "epoch 1/1  lr 0.008-0.2  train loss 1.5000" in text


def test_curves_come_from_any_run_folder_and_say_which(fake_root, tmp_path, capsys):
    from helpers import train_fast

    from zoo.bench.plots import training_curves

    train_fast("mlp", "mnist", tmp_path / "runs" / "c1", fake_root, recipe="paper", epochs=1)
    (tmp_path / "runs" / "notes").mkdir()
    paths = training_curves(tmp_path / "runs", tmp_path)
    assert [p.name for p in paths] == ["curves_mnist.png"]
    assert capsys.readouterr().out == (f"training curves from 1 run in {tmp_path / 'runs'}: mlp (paper, c1); "
                                       f"skipped notes (no config.json)\n")


def test_importing_from_above_a_checkout_named_zoo_says_what_happened(tmp_path):
    (tmp_path / "zoo").symlink_to(REPO, target_is_directory=True)
    code = ("import zoo, zoo.core.names as n; print(zoo.list_models()[:2], zoo.__file__ == zoo.__spec__.origin, "
            "n.__file__.startswith(zoo.__path__[0]), zoo.__file__)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    # one identity: the package inside, by its own file and spec, its submodules beside it
    assert r.returncode == 0 and r.stdout == f"['mlp', 'cnn'] True True {tmp_path / 'zoo' / 'zoo' / '__init__.py'}\n"
    assert r.stderr == (f"zoo: note: `import zoo` found the checkout folder {tmp_path / 'zoo'} (Python runs in the "
                        f"folder above it), not an installed zoo; using the package inside it, "
                        f"{tmp_path / 'zoo' / 'zoo'}\n")


def test_training_bar_in_a_real_80_column_terminal(fake_root, tmp_path):
    """`zoo train` on a pseudo-terminal 80 columns wide: the bar's lines fit, nothing is cut to '…'."""
    import pty
    import select

    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "80", "LINES": "24", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "zoo.cli", "train", "mlp", "mnist", "--recipe", "fast", "--epochs",
                             "2", "--batch-size", "20", "--precision", "fp32", "--compile", "off", "--data-dir",
                             str(fake_root), "--no-verify", "--out", str(tmp_path / "run")],
                            stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))
    lines = [ln for ln in re.split(r"[\r\n]", text) if ln.strip()]
    assert proc.returncode == 0 and any(ln.startswith("epoch 2/2  lr ") for ln in lines), text[-2000:]
    bar = [ln for ln in lines if not ln.startswith("mlp.mnist: best")]  # the last line is a plain print
    assert all(len(ln) <= 80 for ln in bar) and "…" not in text, [ln for ln in bar if len(ln) > 80 or "…" in ln]


def test_skip_reasons_name_a_variable_not_a_path_outside_the_repository():
    sources = [p.read_text() for p in (REPO / "tests").glob("*.py")]
    reasons = [m for s in sources for m in re.findall(r"pytest\.skip\((.*?)\)", s)]
    assert reasons and not [r for r in reasons if "../" in r or "shared" in r]
    assert any("ZOO_DATA" in r for r in reasons)


def test_output_piped_into_a_reader_that_stops_ends_quietly():
    """`zoo list | head`: when the reader closes the pipe, zoo ends as cat does (SIGPIPE's status, no message),
    not with an error about a full disk."""
    spew = ("import sys, zoo.cli as cli\n"
            "cli.cmd_list = lambda args: [print('x' * 1000) for _ in iter(int, 1)]\n"
            "sys.exit(cli.main(['list', '--deploy']))")
    proc = subprocess.Popen([sys.executable, "-c", spew], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(4096)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == ""
