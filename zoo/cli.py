"""`zoo` command line: a thin layer over the Python API. Heavy imports happen inside each command."""

from __future__ import annotations

import argparse
import json
import sys

from zoo.errors import ZooError
from zoo.publish import STORAGE  # light: stdlib only at import time


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="dataset root (default: $ZOO_DATA, else ~/.cache/zoo/data)")
    p.add_argument("--download", action="store_true", help="download missing datasets (needs internet)")
    p.add_argument("--no-verify", dest="verify", action="store_false", default=None,
                   help="skip torchvision's md5 check of CIFAR files (known-good re-encodings); also ZOO_VERIFY=0")


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes >= 0 (e.g. 10, 0.5; 0 turns it off)")
    return value


# ---------------------------------------------------------------- list
def list_rows(pattern: str | None, dataset: str | None, paper: bool) -> list[dict]:
    from zoo.models import PAPER_MATRIX, create_model, list_pairs
    from zoo.models.stats import fp32_size_mb, macs_per_image, num_params
    from zoo.data import get_dataset_spec
    from zoo.weights import get_card, no_weights_reason

    if dataset:
        get_dataset_spec(dataset)  # unknown dataset -> ZooError with close names
    pairs = list_pairs(include=pattern, dataset=dataset, paper=paper)
    if pattern and not pairs:
        from zoo.models import get_model_entry
        get_model_entry(pattern)  # a plain unknown name -> error with close matches
    rows = []
    for arch, ds in pairs:
        model = create_model(arch, ds)
        card = get_card(arch, ds)
        rows.append({
            "model": arch, "dataset": ds, "paper": (arch, ds) in PAPER_MATRIX,
            "paper_top1": PAPER_MATRIX.get((arch, ds)),
            "params": num_params(model), "size_mb": round(fp32_size_mb(model), 3),
            "macs": macs_per_image(model, get_dataset_spec(ds).input_shape),
            "pretrained": card is not None,
            "top1": card.metrics.get("top1") if card else None,
            "weights_note": "" if card else no_weights_reason(arch, ds),
        })
    return rows


def cmd_list(args) -> int:
    rows = list_rows(args.pattern, args.dataset, args.paper)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    from rich.table import Table

    from zoo.ui import console

    table = Table(title=f"zoo models ({len(rows)})")
    for col, just in [("model", "left"), ("dataset", "left"), ("paper %", "right"), ("params", "right"),
                      ("MB fp32", "right"), ("MMAC/img", "right"), ("weights top-1 %", "right")]:
        table.add_column(col, justify=just, no_wrap=True)
    for r in rows:
        table.add_row(r["model"], r["dataset"], f"{r['paper_top1']:.1f}" if r["paper"] else "",
                      f"{r['params']:,}", f"{r['size_mb']:.2f}", f"{r['macs'] / 1e6:.2f}",
                      f"{r['top1']:.2f}" if r["top1"] is not None else
                      "[dim]no data offline[/dim]" if "offline" in r["weights_note"] else "[dim]-[/dim]")
    table.caption = "paper %: the paper's test accuracy; weights: shipped pretrained weights (top-1 by onnxruntime)"
    console()(table)
    return 0


# ---------------------------------------------------------------- train
def cmd_train(args) -> int:
    if args.matrix:
        return _train_matrix(args)
    if not (args.model and args.dataset):
        raise ZooError("zoo train needs MODEL DATASET (e.g. zoo train resnet20 cifar10) or --matrix paper")
    return _train_one(args, args.model, args.dataset, args.out, args.resume)


def _train_one(args, arch: str, dataset: str, out, resume: bool) -> int:
    """Train one pair; 130 after a Ctrl-C, 143 after a SIGTERM (the step was saved), else 0."""
    from zoo.train import train
    from zoo.train.loop import Interrupted

    try:
        s = train(arch, dataset, recipe=args.recipe, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  seed=args.seed, device=args.device, precision=args.precision, compile=args.compile,
                  data_dir=args.data_dir, download=args.download, verify=args.verify, out=out, resume=resume,
                  save_every_s=args.save_every * 60 if args.save_every > 0 else None, init=args.init)
    except Interrupted as e:
        print(f"zoo: {e}", file=sys.stderr)
        return e.exit_code
    done = f"already finished its {s['epochs']} epochs; " if s.get("already_finished") else ""
    print(f"{s['model']}.{s['dataset']}: {done}best test accuracy {s['best_test_acc']:.2f}% -> {s['out']}")
    return 0


def _train_matrix(args) -> int:
    """Train every pair of the matrix in turn: skip finished ones, resume an interrupted one."""
    import fnmatch
    from pathlib import Path

    from zoo.data import dataset_available, get_dataset_spec
    from zoo.models import list_pairs
    from zoo.train import get_recipe
    from zoo.train.checkpoint import finished, read_last
    from zoo.train.runner import default_out

    if args.matrix != "paper":
        raise ZooError(f"unknown matrix {args.matrix!r}; choose paper")
    pairs = [(a, d) for a, d in list_pairs(paper=True) if fnmatch.fnmatchcase(f"{a}.{d}", args.only or "*")]
    if not pairs:
        raise ZooError(f"--only {args.only!r} matches none of the paper's pairs (names like resnet20.cifar10)")
    for arch, ds in pairs:
        cfg = get_recipe(args.recipe, get_dataset_spec(ds), arch, epochs=args.epochs)
        out = Path(args.out or "runs") / default_out(arch, ds, args.recipe).name
        last = read_last(out)
        if finished(last, cfg.epochs):
            print(f"{arch}.{ds}: done ({last['metrics'].get('test_acc', float('nan')):.2f}%), skipping")
            continue
        if not dataset_available(ds, args.data_dir, verify=args.verify):
            print(f"{arch}.{ds}: skipped, dataset not found (see `zoo train {arch} {ds}` for where it looks)")
            continue
        code = _train_one(args, arch, ds, out, resume=last is not None)
        if code:
            return code
    return 0


# ---------------------------------------------------------------- export
def cmd_export(args) -> int:
    from zoo.export import export

    kw = dict(out=args.out, opset=args.opset, precision=args.precision, calib_size=args.calib_size,
              exporter=args.exporter, eval_images=args.eval_images, int8_max_drop=args.int8_max_drop,
              data_dir=args.data_dir, verify=args.verify)
    if args.matrix:
        jobs = _export_matrix_jobs(args)
    elif args.model and args.dataset:
        if not (args.weights or args.pretrained or args.random):
            raise ZooError("say which weights to export: --weights RUN_OR_FILE, --pretrained, or --random")
        jobs = [(args.model, args.dataset, args.weights, args.pretrained)]
    else:
        raise ZooError("zoo export needs MODEL DATASET (e.g. zoo export resnet20 cifar10 --pretrained) "
                       "or --matrix paper")
    for arch, ds, weights, pretrained in jobs:
        r = export(arch, ds, weights=weights, pretrained=pretrained, **kw)
        p = r.parity
        extra = f", int8 accuracy change {p['acc_change']:+.2f} pt" if "acc_change" in p else ""
        print(f"{r.path}  {r.size_bytes / 1e6:.3f} MB  {r.seconds:.1f} s  max|diff| {p['max_abs_diff']:.2e}  "
              f"top-1 agreement {p['top1_agreement']:.2f}% on {p['eval_set']}{extra}")
    return 0


def _export_matrix_jobs(args) -> list:
    """Every paper pair with a trained run (best test accuracy across recipes) or shipped weights."""
    from zoo.models import list_pairs
    from zoo.weights import get_card

    if args.matrix != "paper":
        raise ZooError(f"unknown matrix {args.matrix!r}; choose paper")
    jobs = []
    for arch, ds in list_pairs(paper=True):
        run = best_run(args.runs, arch, ds)
        if run is not None:
            jobs.append((arch, ds, str(run), False))
        elif get_card(arch, ds) is not None:
            jobs.append((arch, ds, None, True))
        else:
            print(f"{arch}.{ds}: no trained run in {args.runs} and no shipped weights, skipping")
    return jobs


def best_run(runs_dir, arch: str, dataset: str):
    """The run folder under runs_dir for arch.dataset (any recipe) with the best test accuracy."""
    from pathlib import Path

    best, best_acc = None, -1.0
    for card in Path(runs_dir).glob(f"{arch.replace('/', '_')}.{dataset}.*/best.json"):
        acc = json.loads(card.read_text()).get("metrics", {}).get("test_acc", -1.0)
        if acc > best_acc:
            best, best_acc = card.parent, acc
    return best


# ---------------------------------------------------------------- bench / report
def _split(v: str | None) -> tuple[str, ...]:
    return tuple(x for x in (v or "").replace(" ", "").split(",") if x)


def bench_targets(args) -> list:
    from pathlib import Path

    from zoo.bench.api import Target
    from zoo.models import list_pairs
    from zoo.weights import get_card, manifest

    if args.onnx:
        from zoo.bench.api import check_onnx
        targets = []
        for f in args.onnx:
            meta = check_onnx(Path(f))
            targets.append(Target(meta["model"], meta["dataset"], onnx=f))
        return targets
    if args.model or args.dataset:
        if not (args.model and args.dataset):
            raise ZooError("zoo bench takes MODEL DATASET together (e.g. zoo bench resnet20 cifar10)")
        if not (args.weights or args.random) and get_card(args.model, args.dataset) is None:
            run = best_run(args.runs, args.model, args.dataset)
            if run is None:
                raise ZooError(f"no shipped weights or trained run ({args.runs}/) for {args.model}.{args.dataset}; "
                               f"pass --weights, --random, or train it with zoo train")
            return [Target(args.model, args.dataset, str(run))]
        return [Target(args.model, args.dataset, args.weights, not (args.weights or args.random))]
    if args.matrix and args.matrix != "paper":
        raise ZooError(f"unknown matrix {args.matrix!r}; choose paper")
    targets = []
    for arch, ds in list_pairs(paper=True):
        run = best_run(args.runs, arch, ds) if args.matrix else None
        if run is not None:
            targets.append(Target(arch, ds, str(run)))
        elif get_card(arch, ds) is not None:
            targets.append(Target(arch, ds, None, True))
        elif args.random:
            targets.append(Target(arch, ds))
    if not targets:
        where = f"shipped weights ({len(manifest())}) or trained runs in {args.runs}/"
        raise ZooError(f"nothing to bench: no {where}; train with `zoo train`, or pass --random "
                       f"to bench latency and size with random weights")
    return targets


def cmd_bench(args) -> int:
    from pathlib import Path

    from zoo.bench.api import BenchConfig, bench_target, environment, resolve_providers
    from zoo.bench.plots import render_plots
    from zoo.bench.report import print_table, write_reports
    from zoo.export.exporter import _writable_dir

    out = _writable_dir(Path(args.out))
    cfg = BenchConfig(precisions=_split(args.precision) or ("fp32",), providers=_split(args.provider),
                      threads=args.threads or BenchConfig.threads, warmup=args.warmup, runs=args.repeat,
                      batch=args.batch, eager=not args.no_eager, null=args.null)
    for p in cfg.precisions:
        if p not in ("fp32", "fp16", "int8"):
            raise ZooError(f"unknown precision {p!r}; choose from fp32, fp16, int8")
    targets = bench_targets(args)
    providers, notes = resolve_providers(cfg)
    if "fp16" in cfg.precisions and "cuda" not in providers:
        notes.append("fp16 not measured: it is a GPU precision and no CUDA provider runs here")
    rows = []
    for t in targets:
        rows += bench_target(t, cfg, providers, data_dir=args.data_dir, verify=args.verify, notes=notes)
    report = {"environment": environment(cfg, providers), "rows": rows, "notes": notes}
    paths = write_reports(report, out) + render_plots(report, out, Path(args.runs))
    print_table(report)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_report(args) -> int:
    from pathlib import Path

    from zoo.bench.plots import render_plots
    from zoo.bench.report import load_report, print_table, write_reports

    report = load_report(Path(args.report))
    out = Path(args.out or (args.report if Path(args.report).is_dir() else Path(args.report).parent))
    paths = write_reports(report, out) + render_plots(report, out, Path(args.runs))
    print_table(report)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


# ---------------------------------------------------------------- publish
def cmd_publish(args) -> int:
    from pathlib import Path

    from zoo.publish import publish, write_eval_samples

    dest = Path(args.dest) if args.dest else None
    if args.eval_samples:
        from zoo.weights import weights_dir
        write_eval_samples(dest or weights_dir(), {"mnist": 100, "cifar10": 100, "cifar100": 10},
                           data_dir=args.data_dir, verify=args.verify)
    for run in args.runs:
        publish(run, dest, data_dir=args.data_dir, verify=args.verify, storage=args.storage,
                force=args.force)
    if not (args.runs or args.eval_samples):
        raise ZooError("zoo publish needs run folders (e.g. runs/resnet20.cifar10.paper) or --eval-samples")
    return 0


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from zoo import __version__

    parser = argparse.ArgumentParser(prog="zoo", description="Small image classifiers: train, export to ONNX, "
                                     "benchmark in onnxruntime.")
    parser.add_argument("--version", action="version", version=f"zoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="the model registry: params, size, MACs, pretrained accuracy")
    p.add_argument("pattern", nargs="?", help="model name or shell wildcard, e.g. 'resnet*'")
    p.add_argument("--dataset", help="only models that build for this dataset")
    p.add_argument("--paper", action="store_true", help="only the paper's 16 seed pairs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("train", help="train a model on a dataset (the paper's recipe by default)")
    p.add_argument("model", nargs="?", help="architecture, e.g. resnet20 (see zoo list)")
    p.add_argument("dataset", nargs="?", help="mnist, kmnist, cifar10 or cifar100")
    p.add_argument("--matrix", help="train a whole matrix: 'paper' = the 16 seed pairs (skips finished ones)")
    p.add_argument("--only", help="with --matrix: a wildcard over MODEL.DATASET names, e.g. '*.mnist'")
    p.add_argument("--recipe", default="paper", help="paper (default) or fast")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=int, help="override the recipe's batch size (global, all processes)")
    p.add_argument("--lr", type=float, help="override the recipe's peak learning rate")
    p.add_argument("--seed", type=int, help="override the recipe's seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--precision", default="auto", help="auto (measured per model, remembered), fp32 or bf16")
    p.add_argument("--compile", default="auto", help="torch.compile: auto, on or off")
    p.add_argument("--out", help="run folder (default runs/MODEL.DATASET.RECIPE; with --matrix, the parent)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--init", metavar="WEIGHTS",
                   help="fine-tune from trained weights instead of random ones: pretrained (shipped, this pair), "
                        "pretrained:DATASET (this model's shipped weights for another dataset; the classifier "
                        "starts fresh), or a run folder / .safetensors file")
    p.add_argument("--save-every", type=_minutes, default=10.0, metavar="MIN",
                   help="also checkpoint mid-epoch every MIN minutes (default 10; 0 = only at epoch ends)")
    _add_data_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="export to ONNX (fp32/fp16/int8), gated on parity with PyTorch")
    p.add_argument("model", nargs="?")
    p.add_argument("dataset", nargs="?")
    p.add_argument("--weights", help="a run folder written by zoo train, a checkpoint folder or a .safetensors file")
    p.add_argument("--pretrained", action="store_true", help="the weights shipped with zoo")
    p.add_argument("--random", action="store_true", help="random initialization (for latency and tests)")
    p.add_argument("--matrix", help="'paper': every seed pair that has a trained run (see --runs) or shipped weights")
    p.add_argument("--runs", default="runs", help="where --matrix looks for trained runs (default runs/)")
    p.add_argument("--out", default="exports", help="output folder (default exports/)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--precision", default="fp32", help="fp32 (default), fp16 (GPUs) or int8 (static QDQ, CPUs)")
    p.add_argument("--calib-size", type=int, default=256, help="training images used to calibrate int8")
    p.add_argument("--exporter", default="dynamo", help="dynamo (default) or torchscript")
    p.add_argument("--eval-images", type=int, default=1000, help="images in the top-1 agreement check (>= 1000)")
    p.add_argument("--int8-max-drop", type=float, default=1.0,
                   help="int8 gate: most top-1 points int8 may lose against fp32 (default 1.0)")
    _add_data_args(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bench", help="accuracy, size and latency in onnxruntime (default: the shipped weights)")
    p.add_argument("model", nargs="?")
    p.add_argument("dataset", nargs="?")
    p.add_argument("--matrix", help="'paper': the 16 seed pairs, trained runs first, then shipped weights")
    p.add_argument("--weights", help="a run folder or .safetensors file (with MODEL DATASET)")
    p.add_argument("--random", action="store_true", help="random weights: latency and size only make sense")
    p.add_argument("--onnx", nargs="+", help="bench these files written by zoo export, as they are")
    p.add_argument("--runs", default="runs", help="folder of training runs (default runs/)")
    p.add_argument("--precision", default="fp32", help="comma list of fp32, int8 (CPU), fp16 (CUDA)")
    p.add_argument("--provider", help="comma list of cpu, cuda (default: cpu, plus cuda when usable)")
    p.add_argument("--threads", type=int, help="intra-op threads (default: all cores)")
    p.add_argument("--warmup", type=int, default=20, help="untimed batch-1 calls")
    p.add_argument("--repeat", type=int, default=200, help="timed batch-1 calls")
    p.add_argument("--batch", type=int, default=256, help="batch size for throughput")
    p.add_argument("--no-eager", action="store_true", help="skip the PyTorch eager comparison")
    p.add_argument("--null", action="store_true", help="add the null backend (harness overhead)")
    p.add_argument("--out", default="bench", help="report folder (default bench/)")
    _add_data_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("publish", help="(maintainers) ship a trained run's weights in weights/, accuracy by ORT")
    p.add_argument("runs", nargs="*", help="run folders written by zoo train")
    p.add_argument("--eval-samples", action="store_true",
                   help="also write the shipped evaluation samples (1000 stratified test images per dataset)")
    p.add_argument("--dest", help="weights folder (default: the package's, i.e. weights/ in a checkout)")
    p.add_argument("--storage", default="fp32", choices=STORAGE,
                   help="fp16 halves the file; refused if it costs >= 0.1 top-1 point (default fp32)")
    p.add_argument("--force", action="store_true",
                   help="replace the pair's shipped weights even if these measure lower")
    _add_data_args(p)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("report", help="re-render tables and plots from a saved report.json (no measuring)")
    p.add_argument("report", nargs="?", default="bench", help="report.json or its folder (default bench/)")
    p.add_argument("--runs", default="runs", help="training runs for the curves (default runs/)")
    p.add_argument("--out", help="where to write (default: beside the report)")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except ZooError as e:
        print(f"zoo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
