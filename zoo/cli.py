"""`zoo` command line: parses arguments and prints. Each stage owns its options (their defaults, checks and help
are the fields of its request: zoo.core.options) and its policy; a command builds the stage's request from the
parsed options, calls the stage, and prints what came back. So `zoo train` and `zoo.train.train` resolve alike.

Nothing heavy is imported at start-up (`zoo --help` answers without torch): each command imports its stage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from zoo.bench.options import BenchOptions
from zoo.core.catalog import listed_rows, models_table
from zoo.core.errors import ZooError, missing_extra, os_error_message, set_command_flags, wrong_advice
from zoo.core.names import check_dataset, check_model, check_pair
from zoo.core.options import Help, Parser, add_options, at_least, command_flags, values
from zoo.core.version import __version__
from zoo.data.options import DataOptions, FolderOptions
from zoo.export.options import ExportOptions
from zoo.predict.options import PredictOptions
from zoo.serve.limits import Limits, Listen
from zoo.train.options import RuntimeRequest, TrainRequest


def _data(args) -> DataOptions:
    return values(DataOptions, args)


def _folder(args) -> FolderOptions:
    return values(FolderOptions, args)


def _dataset(args, weights: str | None = None) -> str | None:
    """The DATASET argument as a registered name: built in, recorded in the weights' card, or a folder opened."""
    from zoo.data import get_dataset_spec
    return get_dataset_spec(args.dataset, weights, _folder(args)).name if args.dataset else None


# ---------------------------------------------------------------- list
def cmd_list(args) -> int:
    from zoo.core.ui import console

    if args.fastpath:  # the remembered fast-path decisions: what was chosen, at what speed, how noisy, when
        from zoo.train.fastpath import decisions, decisions_table

        rows, show = decisions(), lambda rows: console()(decisions_table(rows))
    elif args.deploy:  # the remembered deployment recommendations, per weights and machine
        from zoo.bench.recommend import listing
        from zoo.core.deploy import entries

        rows, show = [{"key": k, **v} for k, v in entries()], lambda rows: print("\n".join(listing(rows)))
    else:
        rows, show = _models(args), lambda rows: console()(models_table(rows))
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        show(rows)
    return 0


def _models(args) -> list[dict]:
    if args.pattern and not set("*?[") & set(args.pattern):
        check_model(args.pattern)
    if args.dataset:
        check_dataset(args.dataset)
    rows = listed_rows(args.pattern, args.dataset, args.paper)  # shipped figures: no torch, no model built
    if not rows:  # a folder's pairs, or an error to word as the registry does
        from zoo.models.catalog import list_rows

        rows = list_rows(args.pattern, args.dataset, args.paper)
    return rows


# ---------------------------------------------------------------- train
def cmd_train(args) -> int:
    if not (args.config or args.resume or args.matrix):
        check_pair(args.model, args.dataset)
    req = values(TrainRequest, args, model=args.model, dataset=args.dataset, runtime=values(RuntimeRequest, args),
                 folder=_folder(args), data=_data(args))
    if not args.matrix:
        return _train_one(req)
    from zoo.targets import matrix_requests

    for job, one in matrix_requests(req, args.matrix, args.only):  # finished pairs skipped, interrupted resumed
        if one is None:
            print(f"{job.arch}.{job.dataset}: {job.skip}")
        elif code := _train_one(one):
            return code
    return 0


def _train_one(req: TrainRequest) -> int:
    """Train one pair; 130 after a Ctrl-C, 143 after a SIGTERM (the step was saved), else 0."""
    from zoo.train.loop import Interrupted
    from zoo.train.request import outcome, run

    try:
        s = run(req, log=lambda line: print(line, flush=True))
    except Interrupted as e:
        print(f"zoo: {e}", file=sys.stderr)
        return e.exit_code
    note, result = outcome(s)
    if note:  # said before the result, so that the result is the last line
        print(note, file=sys.stderr, flush=True)
    print(result, flush=True)
    return 0


# ---------------------------------------------------------------- export
def cmd_export(args) -> int:
    if args.model and not args.matrix:
        check_pair(args.model, None if args.weights else args.dataset)  # a folder's name: its run's card knows it
    from zoo.core.sources import Target
    from zoo.export import export

    if args.matrix:
        from zoo.targets import export_targets
        targets, notes = export_targets(args.matrix, args.runs)
        for n in notes:
            print(n)
    elif args.model and args.dataset:
        if not (args.weights or args.pretrained or args.random):
            raise ZooError("say which weights to export: --weights RUN_OR_FILE, --pretrained, or --random")
        targets = [Target(args.model, _dataset(args, args.weights), args.weights, args.pretrained)]
    else:
        raise ZooError("zoo export needs MODEL DATASET (e.g. zoo export resnet20 cifar10 --pretrained) "
                       "or --matrix paper")
    options = values(ExportOptions, args)
    for t in targets:
        print(f"zoo: exporting {t.describe()}", flush=True)
        r = export(t.arch, t.dataset, weights=t.weights, pretrained=t.pretrained, options=options, data=_data(args),
                   folder=_folder(args))
        print("\n".join(r.lines()))
    return 0


# ---------------------------------------------------------------- bench / report
def cmd_bench(args) -> int:
    check_pair(args.model, None if args.weights else args.dataset)
    from zoo.bench.harness import bench_config
    from zoo.bench.session import finish, measure
    from zoo.core.ui import TargetProgress
    from zoo.targets import bench_targets

    options = values(BenchOptions, args)
    bench_config(options)  # an unknown precision, provider or runtime: said before any target is looked for
    targets = bench_targets(args.model, _dataset(args, args.weights), weights=args.weights, random=args.random,
                            onnx=args.onnx, matrix=args.matrix, runs_dir=args.runs)
    for t in targets[:1] if len(targets) == 1 else ():
        print(f"zoo: benching {t.describe()}", flush=True)
    with TargetProgress(len(targets)) as bar:
        report = measure(targets, options, _data(args), progress=bar)
    finish(report, options, args.runs)
    return 1 if any(r.error for r in report["rows"]) else 0


def cmd_report(args) -> int:
    from zoo.bench.session import rerender

    rerender(args.report, args.out, args.runs)
    return 0


# ---------------------------------------------------------------- predict
def cmd_predict(args) -> int:
    from zoo.predict.render import printable
    from zoo.predict.source import describe, export_pending, images_of, is_file, split_items

    source, dataset, image_args = split_items(args.items)
    paths, problems = images_of(source, dataset, image_args, log=lambda line: print(line, file=sys.stderr))
    from zoo.predict.predictor import Predictor
    from zoo.predict.render import classify, print_predictions

    pending = export_pending(source, dataset) if sys.stderr.isatty() else None
    if pending:  # on a terminal: the weights are exported once before the first prediction (seconds)
        print(f"zoo: exporting {pending} once into zoo's cache (later predictions start at once)", file=sys.stderr,
              flush=True)
    said = [f"zoo: predicting with {describe(source, dataset)}"]  # said once the model is open: errors stay one line
    opts = values(PredictOptions, args)
    predictor = Predictor(source, dataset, threads=opts.threads, batch=opts.batch, runtime=opts.runtime,
                          invert=opts.invert, data=_data(args) if dataset or not is_file(source) else None,
                          images=len(paths), log=said.append)
    print("\n".join(said), file=sys.stderr, flush=True)
    if hasattr(sys.stdout, "reconfigure"):  # a name that is not UTF-8 is written as its own bytes in CSV
        sys.stdout.reconfigure(errors="surrogateescape")
    args.top_k = min(args.top_k, len(predictor.classes))  # a model has no more answers than classes
    results = classify(predictor, paths, args.top_k)
    problems += [r for r in results if not hasattr(r, "top")]
    found = [r for r in results if hasattr(r, "top")]
    if found or args.json or args.csv:  # no empty table above the errors
        print_predictions(found, "json" if args.json else "csv" if args.csv else "table", args.top_k,
                          (predictor.runtime_label, predictor.precision))
    for p in problems:
        print(f"zoo: error: {printable(p.path)}: {p.reason}", file=sys.stderr)
    return 1 if problems else 0


# ---------------------------------------------------------------- serve
def cmd_serve(args) -> int:
    from zoo.predict.source import is_file, split_items

    source, dataset, rest = split_items(args.items)
    if rest:
        raise ZooError(f"zoo serve takes a model, not images: {rest[0]} (send images to POST /v1/predict)")
    from zoo.serve import run, run_workers, service

    limits = values(Limits, args, token=os.environ.get("ZOO_SERVE_TOKEN") or None).validate()
    listen = values(Listen, args)
    if not listen.loopback() and limits.token is None:
        print(f"zoo: note: listening on {listen.host}, beyond this machine, with no token: anyone who can reach it "
              f"can use it (set ZOO_SERVE_TOKEN to require one)", file=sys.stderr)
    data = _data(args) if dataset or not is_file(source) else None
    threads = listen.threads_each(args.threads)
    svc = service(source, dataset, runtime=args.runtime, threads=threads, limits=limits, data=data,
                  log=lambda line: print(line, file=sys.stderr, flush=True))  # also the one check before workers
    if listen.workers > 1:
        from zoo.serve.worker import spec_of

        del svc  # each worker loads its own
        run_workers(spec_of(source, dataset, args.runtime, threads, limits, data), listen.host, listen.port,
                    listen.workers, log=lambda line: print(line, flush=True))
    else:
        run(svc, listen.host, listen.port, log=lambda line: print(line, flush=True))
    return 0


# ---------------------------------------------------------------- publish
def cmd_publish(args) -> int:
    from zoo.publish import publish_all

    publish_all(args.runs, args.dest, eval_samples=args.eval_samples, data=_data(args), storage=args.storage,
                force=args.force)
    return 0


# ---------------------------------------------------------------- parser
EXAMPLES = {
    "list": ["zoo list 'resnet*' --dataset cifar10", "zoo list --paper --json", "zoo list --fastpath"],
    "train": ["zoo train resnet20 cifar10 --recipe fast --set label_smoothing=0",
              "zoo train cnn path/to/digits --init pretrained:mnist --epochs 2",
              "zoo train --resume --out runs/resnet20.cifar10.fast"],
    "export": ["zoo export resnet20 cifar10 --pretrained --precision int8",
               "zoo export cnn mnist --pretrained --image-input --out exports",
               "zoo export cnn digits --weights runs/cnn.digits.fast"],
    "bench": ["zoo bench", "zoo bench resnet20 cifar10 --precision fp32,int8 --threads 2"],
    "publish": ["zoo publish runs/resnet20.cifar10.fast --storage fp16", "zoo publish --eval-samples"],
    "report": ["zoo report bench", "zoo report bench/report.json --out site/"],
    "predict": ["zoo predict resnet20 cifar10                   # the sample images zoo ships",
                "zoo predict resnet20 cifar10 photos/ --top-k 3",
                "zoo predict exports/cnn.mnist.onnx 'digits/*.png' --json",
                "zoo predict exports/resnet20.cifar10.onnx photos/ --runtime openvino"],
    "serve": ["zoo serve resnet20 cifar10                     # http://127.0.0.1:8000/",
              "zoo serve runs/resnet20.my_photos.finetune --port 9000",
              "curl --data-binary @cat.png http://127.0.0.1:8000/v1/predict"],
}


def _command(sub, name: str, help: str) -> argparse.ArgumentParser:
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES[name])
    return sub.add_parser(name, help=help, description=help, epilog=epilog, formatter_class=Help)


def _add_data_args(p: argparse.ArgumentParser, download: bool = True) -> None:
    add_options(p, DataOptions, skip=() if download else ("download",))


def _add_pair(p: argparse.ArgumentParser, model_help: str, dataset_help: str) -> None:
    p.add_argument("model", nargs="?", help=model_help)
    p.add_argument("dataset", nargs="?", help=dataset_help)


def _add_sources(p: argparse.ArgumentParser, matrix_help: str) -> None:
    """Where export's and bench's weights come from (zoo.targets)."""
    p.add_argument("--weights", help="a run folder written by zoo train, a checkpoint folder or a .safetensors file")
    p.add_argument("--random", action="store_true", help="random initialization (latency and size only)")
    p.add_argument("--matrix", help=matrix_help)
    p.add_argument("--runs", default="runs", help="folder of training runs")


def _add_list(sub) -> None:
    p = _command(sub, "list", "the model registry: params, size, MACs, pretrained accuracy")
    p.add_argument("pattern", nargs="?", help="model name or shell wildcard, e.g. 'resnet*'")
    p.add_argument("--dataset", help="only models that build for this dataset")
    p.add_argument("--paper", action="store_true", help="only the paper's 16 seed pairs")
    p.add_argument("--fastpath", action="store_true",
                   help="the remembered fast-path decisions (zoo train's probe) with their figures and dates")
    p.add_argument("--deploy", action="store_true",
                   help="the remembered deployment recommendations (zoo bench --runtime all) per model and machine")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)


def _add_train(sub) -> None:
    p = _command(sub, "train", "train a model on a dataset (the paper's recipe by default)")
    _add_pair(p, "architecture, e.g. resnet20 (see zoo list)",
              "mnist, kmnist, cifar10, cifar100, or your own: a folder of class folders or a CSV of path,label")
    p.add_argument("--matrix", help="train a whole matrix: 'paper' = the 16 seed pairs (skips finished ones)")
    p.add_argument("--only", help="with --matrix: a wildcard over MODEL.DATASET names, e.g. '*.mnist'")
    for options in (TrainRequest, RuntimeRequest, DataOptions, FolderOptions):
        add_options(p, options)
    p.set_defaults(func=cmd_train)


def _add_export(sub) -> None:
    p = _command(sub, "export", "export to ONNX (fp32/fp16/int8), gated on parity with PyTorch")
    _add_pair(p, "architecture, e.g. resnet20 (see zoo list)",
              "the dataset it was trained on, e.g. cifar10 or the folder it was trained on")
    p.add_argument("--pretrained", action="store_true", help="the weights shipped with zoo")
    _add_sources(p, "'paper': every seed pair that has a trained run (see --runs) or shipped weights")
    add_options(p, ExportOptions)
    _add_data_args(p, download=False)
    add_options(p, FolderOptions)
    p.set_defaults(func=cmd_export)


def _add_bench(sub) -> None:
    p = _command(sub, "bench", "accuracy, size and latency in onnxruntime (default: the shipped weights)")
    _add_pair(p, "architecture, e.g. resnet20 (default: every shipped pair)", "its dataset, e.g. cifar10")
    _add_sources(p, "'paper': the 16 seed pairs, trained runs first, then shipped weights")
    p.add_argument("--onnx", nargs="+", help="bench these files written by zoo export, as they are")
    add_options(p, BenchOptions)
    _add_data_args(p, download=False)
    add_options(p, FolderOptions)
    p.set_defaults(func=cmd_bench)


def _add_publish_and_report(sub) -> None:
    p = _command(sub, "publish", "(maintainers) ship a trained run's weights in weights/, accuracy by ORT")
    p.add_argument("runs", nargs="*", help="run folders written by zoo train")
    p.add_argument("--eval-samples", action="store_true",
                   help="also write the shipped evaluation samples (1000 stratified test images per dataset)")
    p.add_argument("--dest", help="weights folder (default: the package's, i.e. weights/ in a checkout)")
    p.add_argument("--storage", default="fp32",
                   help="fp32 or fp16 (halves the file; refused if it costs >= 0.1 top-1 point)")
    p.add_argument("--force", action="store_true",
                   help="replace the pair's shipped weights even if these measure lower")
    _add_data_args(p, download=False)
    p.set_defaults(func=cmd_publish)

    p = _command(sub, "report", "re-render tables and plots from a saved report.json (no measuring)")
    p.add_argument("report", nargs="?", default="bench", help="report.json or its folder (default: bench/)")
    p.add_argument("--runs", default="runs", help="training runs for the curves")
    p.add_argument("--out", help="where to write (default: beside the report)")
    p.set_defaults(func=cmd_report)


def _add_predict(sub) -> None:
    p = _command(sub, "predict", "classify your own images: top-k classes with their probabilities")
    p.add_argument("items", nargs="+", metavar="SOURCE [DATASET] IMAGE",
                   help="an .onnx file written by zoo export, a run folder, or MODEL DATASET (shipped weights); "
                        "then image files, folders (searched recursively) or globs")
    p.add_argument("--top-k", type=at_least(1), default=5, help="classes shown per image (>= 1)")
    p.add_argument("--json", action="store_true", help="JSON on stdout")
    p.add_argument("--csv", action="store_true", help="CSV on stdout")
    add_options(p, PredictOptions)
    _add_data_args(p, download=False)
    p.set_defaults(func=cmd_predict)


def _add_serve(sub) -> None:
    p = _command(sub, "serve", "serve a model over HTTP: batching, limits, metrics and a page (loopback by default)")
    p.add_argument("items", nargs="+", metavar="SOURCE [DATASET]",
                   help="an .onnx/.ort/.xml file written by zoo export, a run folder, or MODEL DATASET")
    add_options(p, Listen)
    add_options(p, PredictOptions, skip=("batch", "invert"))  # the batch is the server's (--max-batch)
    add_options(p, Limits)
    _add_data_args(p, download=False)
    p.set_defaults(func=cmd_serve)


def _fail(message: str, flags: dict[str, set[str]], command: str) -> int:
    """The one-line error. Under the tests (ZOO_CHECK_ADVICE=1), advice naming an option the command lacks fails
    the test that met it, whichever error it is."""
    if os.environ.get("ZOO_CHECK_ADVICE") == "1" and wrong_advice(message, flags, command):
        raise AssertionError(f"advice names options that do not exist: {wrong_advice(message, flags, command)} "
                             f"in: {message}")
    print(f"zoo: error: {message}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="zoo", description="Small image classifiers: train, export to ONNX, benchmark in "
                     "onnxruntime.", epilog="run `zoo COMMAND --help` for a command's options and examples")
    parser.add_argument("--version", action="version", version=f"zoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in (_add_list, _add_train, _add_export, _add_bench, _add_predict, _add_serve, _add_publish_and_report):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    flags = command_flags(parser)
    set_command_flags(flags[args.command])  # advice names only this command's options (zoo.core.errors.has_flag)
    try:
        return _run(args, flags)
    finally:
        set_command_flags(())  # back to Python's advice for whatever runs next in this process


def _check_paths(args) -> None:
    """Every path an option names is there, before any model, export or heavy import: one line, at once."""
    from pathlib import Path

    init = getattr(args, "init", None)
    named = [("--weights", getattr(args, "weights", None)), ("--config", getattr(args, "config", None)),
             ("--init", init if init and init.split(":")[0] not in ("pretrained", "auto") else None),
             *(("--onnx", f) for f in getattr(args, "onnx", None) or ())]
    for flag, path in named:
        if path and not Path(path).expanduser().exists():
            where = "" if Path(path).expanduser().is_absolute() else f" (relative to {Path.cwd()})"
            raise ZooError(f"{flag} {path}: no such file or folder; check the path{where}")
        if flag == "--weights" and path and Path(path).suffix in (".onnx", ".ort", ".xml"):
            todo = f"zoo bench --onnx {path} measures it as it is" if args.command == "bench" else \
                f"it is exported already: `zoo bench --onnx {path}` measures it, and zoo predict reads it"
            raise ZooError(f"--weights takes a run folder or a .safetensors file, not an exported file; {todo}")


def _run(args, flags: dict[str, set[str]]) -> int:
    try:
        _check_paths(args)
        return args.func(args) or 0
    except ZooError as e:
        return _fail(str(e), flags, args.command)
    except ModuleNotFoundError as e:
        if not missing_extra(e, args.command):
            raise
        return _fail(missing_extra(e, args.command), flags, args.command)
    except BrokenPipeError:  # `zoo list | head`: the reader has what it wanted; end quietly, as cat and ls do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 128 + 13  # what a shell reports for a command ended by SIGPIPE
    except OSError as e:  # a full disk, a read-only or vanished folder: the system's words, the file, what to do
        out = {"publish": " or choose another --dest"}.get(
            args.command, " or choose another --out" if "--out" in flags[args.command] else "")
        return _fail(os_error_message(e, out, " with --resume" if args.command == "train" else ""), flags,
                     args.command)
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
