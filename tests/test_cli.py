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
