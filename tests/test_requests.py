"""One resolution per stage: the command line builds each stage's request from options whose defaults, checks
and help are the request's own fields, so `zoo train/export/bench` and the Python API agree byte for byte."""

import argparse
import dataclasses
import json

import pytest

from zoo.bench.options import BenchOptions
from zoo.core.options import cli_fields
from zoo.data import DataOptions, FolderOptions, get_dataset_spec
from zoo.export.options import ExportOptions
from zoo.predict.options import PredictOptions
from zoo.serve.limits import Limits, Listen
from zoo.train.options import RuntimeRequest, TrainRequest

from test_folder import write_digits

REQUESTS = {"train": (TrainRequest, RuntimeRequest, DataOptions, FolderOptions),
            "export": (ExportOptions, FolderOptions), "bench": (BenchOptions, FolderOptions),
            "predict": (PredictOptions,), "serve": (Listen, Limits)}


def test_the_command_line_takes_its_defaults_and_help_from_the_stage_requests():
    """Each command's option for a request field has the field's default and help: a default stated once."""
    from zoo.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command, requests in REQUESTS.items():
        actions = {a.dest: a for a in sub.choices[command]._actions}
        for request in requests:
            for f in cli_fields(request):
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                assert actions[f.name].default == default, (command, f.name)
                assert actions[f.name].help == f.metadata["help"], (command, f.name)


def test_a_value_given_from_python_is_checked_as_the_command_line_checks_it(tmp_path):
    from zoo.core.errors import ZooError
    from zoo.export import export

    with pytest.raises(ZooError, match="--opset: must be >= 7, got 3"):
        export("cnn", "mnist", pretrained=True, out=tmp_path, opset=3)
    with pytest.raises(ZooError, match="--tta: 'twice' is not one of the choices"):
        export("cnn", "mnist", pretrained=True, out=tmp_path, tta="twice")
    assert not list(tmp_path.iterdir())


@pytest.mark.e2e
def test_train_export_and_bench_record_the_same_through_the_cli_and_the_api(tmp_path, monkeypatch):
    """The same folder and options through `zoo train/export/bench` and through zoo.train.train, zoo.export.export
    and zoo.bench.session.bench: the run's config.json is the same file, the exports' metadata the same but for
    the run folder's path, the bench rows the same but for the timings."""
    from zoo.bench.session import bench
    from zoo.cli import main
    from zoo.core.sources import Target
    from zoo.export import export, read_metadata
    from zoo.train import train

    monkeypatch.chdir(tmp_path)
    root = write_digits(tmp_path / "digits", limit=200, size=28)
    opts = ["--init", "pretrained:mnist", "--epochs", "1", "--seed", "3", "--set", "label_smoothing=0.05",
            "--val-fraction", "0.2", "--precision", "fp32", "--compile", "off"]
    assert main(["train", "cnn", str(root), *opts, "--out", "cli"]) == 0
    train("cnn", str(root), init="pretrained:mnist", epochs=1, seed=3, label_smoothing=0.05, out="api",
          folder=FolderOptions(val_fraction=0.2), runtime=RuntimeRequest(precision="fp32", compile="off"),
          progress=False)
    assert (tmp_path / "cli" / "config.json").read_bytes() == (tmp_path / "api" / "config.json").read_bytes()

    assert main(["export", "cnn", str(root), "--weights", "cli", "--out", "ecli", "--val-fraction", "0.2"]) == 0
    spec = get_dataset_spec(str(root), "api", FolderOptions(val_fraction=0.2))  # a stage takes a spec as a path
    r = export("cnn", spec, weights="api", out="eapi")
    cli_file = next((tmp_path / "ecli").glob("*.onnx"))
    assert cli_file.name == r.path.name
    a, b = read_metadata(cli_file), read_metadata(r.path)
    assert {k for k in a if a[k] != b[k]} <= {"weights", "created"}, {k: (a[k], b[k]) for k in a if a[k] != b[k]}

    bench_opts = ["--threads", "1", "--warmup", "1", "--repeat", "3", "--batch", "8", "--no-eager"]
    assert main(["bench", "--onnx", str(cli_file), "--out", "bcli", *bench_opts]) == 0
    report = bench([Target(a["model"], a["dataset"], onnx=str(r.path))],
                   BenchOptions(threads=1, warmup=1, repeat=3, batch=8, eager=False, out="bapi"))
    timing = ("latency", "throughput", "p50", "p90", "p99", "mean", "ms", "per_s", "load", "busy", "peak", "flags",
              "weights")  # measured figures, and the run folder's path
    rows_cli = json.loads((tmp_path / "bcli" / "report.json").read_text())["rows"]
    rows_api = json.loads((tmp_path / "bapi" / "report.json").read_text())["rows"]
    assert len(rows_cli) == len(rows_api) == len(report["rows"])
    for x, y in zip(rows_cli, rows_api):
        assert {k: v for k, v in x.items() if not any(t in k for t in timing)} == \
            {k: v for k, v in y.items() if not any(t in k for t in timing)}
    from zoo.targets import bench_targets

    assert bench_targets("cnn", spec, weights="api") == [Target("cnn", spec.name, "api")]  # bench takes a spec too


def test_a_matrix_is_one_request_per_pair_with_the_options_given(fake_root, tmp_path):
    """zoo train --matrix: each pair of the matrix is the same request for its own model, dataset and folder;
    a pair whose dataset is missing is skipped, said."""
    from zoo.targets import matrix_requests

    req = TrainRequest(epochs=1, seed=3, out=str(tmp_path), data=DataOptions(fake_root, verify=False))
    [(job, one)] = list(matrix_requests(req, "paper", "mlp.mnist"))
    assert (one.model, one.dataset, one.recipe, one.epochs, one.seed, one.resume) == \
        ("mlp", "mnist", "paper", 1, 3, False)
    assert one.out == tmp_path / "mlp.mnist.paper" and job.skip is None
    [(job, one)] = list(matrix_requests(dataclasses.replace(req, data=DataOptions(tmp_path / "none")), "paper",
                                        "mlp.mnist"))
    assert one is None and "dataset not found" in job.skip
