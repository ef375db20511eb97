"""`zoo` command line: parses arguments and prints; the stages and zoo.targets hold the policy.

Nothing heavy is imported at start-up (`zoo --help` answers without torch): each command imports its stage.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys

from zoo.core.errors import ZooError, plural, set_command_flags
from zoo.core.names import check_dataset, check_model, check_pair
from zoo.core.version import __version__


def _data(args):
    from zoo.data import DataOptions
    return DataOptions(args.data_dir, getattr(args, "download", False), args.verify)


def _folder(args):
    from zoo.data import FolderOptions
    return FolderOptions(args.val_fraction, 0, args.channels, args.size, args.allow_outside_paths)


def _dataset(args, weights: str | None = None) -> str | None:
    """The DATASET argument as a registered name: built in, recorded in the weights' card, or a folder opened."""
    from zoo.data import spec_of
    return spec_of(args.dataset, weights, _folder(args)).name if args.dataset else None


def _split(v: str | None) -> tuple[str, ...]:
    return tuple(x for x in (v or "").replace(" ", "").split(",") if x)


def _at_least(low: int):
    """An argparse type: an integer >= low (the range is also stated in --help)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def _non_negative(unit: str, example: str):
    """An argparse type: a number of `unit` >= 0 (NaN refused)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value >= 0:  # also NaN
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit} >= 0 (e.g. {example})")
        return value
    parse.__name__ = f"{unit} >= 0"
    return parse


def _fraction(text: str) -> float:
    """An argparse type: a fraction in (0, 0.5]."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 0.5:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction in (0, 0.5] (e.g. 0.1)")
    return value


def _batches(text: str) -> list[int]:
    """An argparse type: one batch size or a comma list of them, each >= 1."""
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a batch size or a comma list of them (e.g. 1,16,256)") \
            from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {text!r}")
    return values


_points = _non_negative("points", "0.5")
_minutes = _non_negative("minutes", "10, 0.5; 0 turns it off")


# ---------------------------------------------------------------- list
def cmd_list(args) -> int:
    if args.fastpath:
        return _list_fastpath(args)
    if args.deploy:
        return _list_deploy(args)
    if args.pattern and not set("*?[") & set(args.pattern):
        check_model(args.pattern)
    if args.dataset:
        check_dataset(args.dataset)
    from zoo.core.catalog import listed_rows

    rows = listed_rows(args.pattern, args.dataset, args.paper)  # shipped figures: no torch, no model built
    if not rows:  # a folder's pairs, or an error to word as the registry does
        from zoo.models.catalog import list_rows

        rows = list_rows(args.pattern, args.dataset, args.paper)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    from rich.table import Table

    from zoo.core.ui import console

    table = Table(title=f"zoo models ({len(rows)})")
    for col, just in [("model", "left"), ("dataset", "left"), ("paper %", "right"), ("params", "right"),
                      ("MB fp32", "right"), ("MMAC/img", "right"), ("weights top-1 %", "right")]:
        table.add_column(col, justify=just, no_wrap=True)
    for r in rows:
        table.add_row(r["model"], r["dataset"], f"{r['paper_top1']:.1f}" if r["paper"] else "",
                      f"{r['params']:,}", f"{r['size_mb']:.2f}", f"{r['macs'] / 1e6:.2f}",
                      f"{r['top1']:.2f}" if r["top1"] is not None else
                      "[dim]-[/dim]" if r["data_offline"] else "[dim]no data offline[/dim]")
    table.caption = "paper %: the paper's test accuracy; weights: shipped pretrained weights (top-1 by onnxruntime)"
    console()(table)
    return 0


def _list_deploy(args) -> int:
    """The remembered deployment recommendations (zoo bench over several runtimes), per weights and machine."""
    from zoo.bench.recommend import line
    from zoo.core.deploy import cache_file, entries, machine_id, unused_here

    rows = entries()
    if args.json:
        print(json.dumps([{"key": k, **v} for k, v in rows], indent=1))
        return 0
    here = machine_id()
    print(f"deployment recommendations ({len(rows)}) in {cache_file()}; this machine: {here}")
    for key, rec in rows:
        why = unused_here(key)
        name = rec.get("model", "?") + (f" (tta {rec['tta']})" if rec.get("tta") else "") + \
            (f" [{rec['weights']}]" if isinstance(rec.get("weights"), str) and rec["weights"] else "")
        print(f"- {line(name, rec)}  ({rec.get('measured', '')[:16]}){f'  [{why}]' if why else ''}")
    return 0


def _list_fastpath(args) -> int:
    """The remembered fast-path decisions: what was chosen, at what speed, how noisy, when, how busy."""
    from zoo.train.fastpath import cache_file, decisions

    rows = decisions()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    from rich.table import Table

    from zoo.core.ui import console

    table = Table(title=f"fast-path decisions ({len(rows)}) in {cache_file()}")
    for col in ("model.dataset", "batch", "machine", "choice", "img/s", "noise", "others", "measured", "candidates"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["pair"], r["batch"], r["machine"], r["choice"] + (" (provisional)" if r["provisional"] else ""),
                      f"{r['images_per_s']:.0f}", f"{r['noise']:.1%}", f"{r['others']:.0%}", r["measured"][:16],
                      ", ".join(f"{k} {v:.0f}" for k, v in r["candidates"].items()))
    table.caption = "others: share of the CPU other processes used during the probe; provisional: measured again " \
                    "by the next run; zoo train --reprobe measures again"
    console()(table)
    return 0


# ---------------------------------------------------------------- train
def _recipe_and_pair(args):
    """(arch, dataset, TrainConfig, recorded init): from --config, from the run being resumed, or from the
    named recipe; --epochs/--batch-size/--lr/--seed and every --set override it."""
    from pathlib import Path

    from zoo.train import default_recipe, get_recipe, parse_overrides, read_config, recipe_from
    from zoo.train.dataset import resolve_start

    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                 "freeze_backbone": args.freeze_backbone or None, **parse_overrides(args.set or [])}
    record = args.config or (args.out if args.resume and args.out and (Path(args.out) / "config.json").is_file()
                             else None)
    if record:
        arch, dataset, fields, _ = read_config(record)
        if (args.model or arch, _recorded_name(args.dataset, dataset)) != (arch, dataset):
            raise ZooError(f"{record} is a run of {arch} on {dataset}, not {args.model} on {args.dataset}; "
                           f"drop MODEL DATASET or choose another --out")
        if args.recipe and args.recipe != fields.get("recipe"):
            fields = {"recipe": args.recipe}  # another named recipe: start from it, not from the record
        return arch, dataset, recipe_from(fields, dataset, arch, **overrides)
    if not (args.model and args.dataset):
        raise ZooError("zoo train needs MODEL DATASET (e.g. zoo train resnet20 cifar10), --config FILE, "
                       "--resume --out RUN_FOLDER, or --matrix paper")
    args.init, spec = resolve_start(args.model, args.dataset, args.init, _folder(args),
                                    log=lambda line: print(line, flush=True))  # --init auto: the start chosen
    name = args.recipe
    if name is None:
        name, why = default_recipe(spec, args.init)
        if spec.source is not None:  # a folder: say which recipe and why (the study's datasets take `paper`)
            print(f"zoo: recipe {name} ({why}; --recipe to choose another)", flush=True)
    return args.model, spec.name, get_recipe(name, spec, args.model, **overrides)


def _recorded_name(given: str | None, recorded: str) -> str:
    """The dataset argument as a run records it: a folder given by its path is the folder dataset of that path."""
    from zoo.data import find_dataset
    from zoo.data.folder import same_path

    spec = find_dataset(recorded)  # read_config registered the run's folder dataset
    if given and spec is not None and spec.source is not None and same_path(given, spec.source.path):
        return recorded
    return given or recorded


def cmd_train(args) -> int:
    if args.matrix:
        return _train_matrix(args)
    if not (args.config or args.resume):
        check_pair(args.model, args.dataset)
    arch, dataset, cfg = _recipe_and_pair(args)
    return _train_one(args, arch, dataset, cfg, args.out, args.resume)


def _train_one(args, arch: str, dataset: str, cfg, out, resume: bool) -> int:
    """Train one pair; 130 after a Ctrl-C, 143 after a SIGTERM (the step was saved), else 0."""
    from zoo.train import RuntimeRequest, train
    from zoo.train.loop import Interrupted

    rt = RuntimeRequest(args.device, args.precision, args.compile, reprobe=args.reprobe)
    try:
        s = train(arch, dataset, cfg, rt, out=out, resume=resume, init=args.init, data=_data(args),
                  save_every_s=args.save_every * 60 if args.save_every > 0 else None,
                  tensorboard=args.tensorboard, head=args.head)
    except Interrupted as e:
        print(f"zoo: {e}", file=sys.stderr)
        return e.exit_code
    done = f"already finished its {plural(s['epochs'], 'epoch')}; " if s.get("already_finished") else ""
    start, probe, best = s.get("init_test_acc"), s.get("init_probe_acc"), s["best_test_acc"]
    versus = ""
    if start is not None:
        versus = f" ({_points(best - start)} on the --init weights' {start:.2f}%" + (
            f", {_points(best - probe)} on a linear probe of their features' {probe:.2f}%)" if probe is not None
            else ")")
    if start is not None and start >= best:  # said before the result, so that the result is the last line
        print("zoo: note: no epoch improved on the --init weights on these held-out images, so the run keeps them "
              "as its best (they may already fit this data): try --freeze-backbone, which trains the classifier "
              "alone, or a lower --lr", file=sys.stderr, flush=True)
    print(f"{s['arch']}.{s['dataset']}: {done}best test accuracy {best:.2f}%{versus} -> {s['out']}", flush=True)
    return 0


def _points(diff: float) -> str:
    """+1.25 pt; a difference that rounds to nothing is +0.00, never -0.00."""
    return f"{round(diff, 2) + 0.0:+.2f} pt"


def _train_matrix(args) -> int:
    """Train every pair of the matrix in turn: skip finished ones, resume an interrupted one."""
    from zoo.data import get_dataset_spec
    from zoo.targets import train_plan
    from zoo.train import get_recipe, parse_overrides

    recipe = args.recipe or "paper"
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                 **parse_overrides(args.set or [])}
    for job in train_plan(args.matrix, args.only, recipe, args.epochs, args.out or "runs", _data(args)):
        if job.skip:
            print(f"{job.arch}.{job.dataset}: {job.skip}")
            continue
        cfg = get_recipe(recipe, get_dataset_spec(job.dataset), job.arch, **overrides)
        code = _train_one(args, job.arch, job.dataset, cfg, job.out, job.resume)
        if code:
            return code
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
    for t in targets:
        print(f"zoo: exporting {t.describe()}", flush=True)
        r = export(t.arch, t.dataset, weights=t.weights, pretrained=t.pretrained, out=args.out, opset=args.opset,
                   precision=args.precision, calib_size=args.calib_size, exporter=args.exporter,
                   eval_images=args.eval_images, int8_max_drop=args.int8_max_drop, data=_data(args),
                   image_input=args.image_input, formats=tuple(args.format.split(",")),
                   tta=None if args.tta == "recipe" else args.tta.replace("none", ""))
        p = r.parity
        extra = f", int8 accuracy change {p['acc_change']:+.2f} pt" if "acc_change" in p else ""
        diff = f"max|diff| {p['max_abs_diff_rel']:.2e} (relative)  " if "max_abs_diff_rel" in p else ""
        print(f"{r.path}  {r.size_bytes / 1e6:.3f} MB  {r.seconds:.1f} s  {diff}top-1 agreement "
              f"{p['top1_agreement']:.2f}% on {p['eval_set']}{extra}")
        for n in r.notes:
            print(f"  note: {n}")
    return 0


# ---------------------------------------------------------------- bench / report
def cmd_bench(args) -> int:
    check_pair(args.model, None if args.weights else args.dataset)
    from zoo.bench.harness import BenchConfig, bench_target, environment, resolve_providers
    from zoo.bench.recommend import recommend
    from zoo.core.cards import BenchRow
    from zoo.core.env import other_load
    from zoo.core.io import writable_dir
    from zoo.targets import bench_targets

    load_before = other_load()
    out = writable_dir(args.out)
    _check_report_folder(out)
    cfg = BenchConfig(precisions=_split(args.precision) or ("fp32",), providers=_split(args.provider),
                      threads=args.threads or BenchConfig.threads, warmup=args.warmup, runs=args.repeat,
                      batch=max(args.batch), sweep=tuple(args.batch) if len(args.batch) > 1 else (),
                      eager=not args.no_eager, null=args.null,
                      runtimes=_runtimes(args.runtime)).validate()
    targets = bench_targets(args.model, _dataset(args, args.weights), weights=args.weights, random=args.random,
                            onnx=args.onnx, matrix=args.matrix, runs_dir=args.runs)
    for t in targets[:1] if len(targets) == 1 else ():
        print(f"zoo: benching {t.describe()}", flush=True)
    providers, notes = resolve_providers(cfg)
    if "fp16" in cfg.precisions and "cuda" not in providers:
        notes.append("fp16 not measured: it is a GPU precision and no CUDA provider runs here")
    rows = []
    with _Bar(len(targets)) as bar:
        for t in targets:  # one target that fails is a row with its error; the others are still measured
            bar.show(t.name)
            try:
                rows += bench_target(t, cfg, providers, data=_data(args), notes=notes, log=bar.print,
                                     phase=lambda what, name=t.name: bar.show(f"{name}: {what}"))
            except ZooError as e:
                rows.append(BenchRow(t.arch, t.dataset, "-", "-", error=str(e)))
                bar.print(f"zoo: error: {t.name}: {e}", err=True)
            bar.done()
    report = {"environment": environment(cfg, providers, load_before), "rows": rows, "notes": notes,
              "recommendation": recommend(rows, accept_busy=args.accept_busy)}
    _remember(report["recommendation"], cfg.threads)
    _render(report, out, args.runs, keep=True)
    return 1 if any(r.error for r in rows) else 0


def _check_report_folder(out) -> None:
    """Before minutes of measuring: a report's fixed names in `out` that zoo did not write are refused now."""
    from zoo.bench.report import foreign_files

    clash = foreign_files(out, ["report.json", "report.md", "report.csv", "report.html"])
    if clash:
        raise ZooError(f"{out} holds {', '.join(clash)}, which zoo did not write; a report would replace it: move "
                       f"it, or choose another --out")


def _runtimes(arg: str | None) -> tuple[str, ...]:
    """--runtime: a comma list, or `all`: every runtime installed here (onnxruntime always)."""
    asked = _split(arg) or ("onnxruntime",)
    if asked != ("all",):
        return asked
    from zoo.core.runtimes import missing_runtime

    return ("onnxruntime", *(r for r in ("openvino", "opencv") if not missing_runtime(r)), "torch-compile")


def _remember(recs: dict, threads: int | None) -> None:
    """Each model's recommendation, for zoo predict --runtime auto on this machine (zoo.core.deploy)."""
    from zoo.core.deploy import deploy_key, remember

    for name, rec in recs.items():
        if rec.get("weights_sha256") and not rec.get("none"):
            key = deploy_key(rec["weights_sha256"], rec["export_revision"], threads, rec.get("tta") or "")
            if not remember(key, {"model": name, **rec}):
                print(f"zoo: {name}: kept the recommendation measured on a quieter machine; this one was timed "
                      f"busy (--accept-busy to take it)")


class _Bar:
    """A progress bar over bench targets on a terminal (each finished row printed above it as it is measured);
    plain lines when the output is not a terminal."""

    def __init__(self, total: int):
        self.total, self.progress, self.task = total, None, None

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), transient=True)
            self.progress.start()
            self.task = self.progress.add_task("bench", total=self.total)
        return self

    def show(self, name: str) -> None:
        if self.progress:
            self.progress.update(self.task, description=f"bench {name}")

    def print(self, line: str, err: bool = False) -> None:
        if self.progress:
            self.progress.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=sys.stderr if err else sys.stdout, flush=True)

    def done(self) -> None:
        if self.progress:
            self.progress.advance(self.task)

    def __exit__(self, *exc) -> None:
        if self.progress:
            self.progress.stop()


def _render(report: dict, out, runs: str, keep: bool = False, adopt: tuple[str, ...] = ()) -> None:
    """report.md/json/csv, the plots and report.html into `out`, all at once, then the table: zoo bench and zoo
    report alike. The set is rendered in a temporary folder inside `out` and moved in whole (an interrupted or
    out-of-space render leaves the old set as it was); with `keep`, the old set moves to out/previous/. Only
    files zoo wrote are moved or replaced (zoo.bench.report.replace_set)."""
    from pathlib import Path

    from zoo.bench.html import write_html
    from zoo.bench.plots import render_plots
    from zoo.bench.report import print_table, replace_set, write_reports
    from zoo.core.owned import owned_tempdir

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with owned_tempdir(out, ".report") as tmp:  # a killed render's folder is swept first
        plots = render_plots(report, tmp, Path(runs))
        write_reports(report, tmp), write_html(report, tmp, plots)
        paths, prev = replace_set(tmp, out, keep, adopt)
    if prev is not None:
        print(f"zoo: the previous report in {out} moved to {prev}")
    print_table(report)
    print("wrote " + ", ".join(str(p) for p in paths))


def cmd_report(args) -> int:
    from pathlib import Path

    from zoo.bench.report import load_report

    report = load_report(Path(args.report))
    source = Path(args.report) / "report.json" if Path(args.report).is_dir() else Path(args.report)
    out = Path(args.out or source.parent)
    in_place = source.name == "report.json" and out.resolve() == source.parent.resolve()
    _render(report, out, args.runs, adopt=("report.json",) if in_place else ())  # the file it read is rewritten
    return 0


# ---------------------------------------------------------------- predict
def _predict_source(items: list[str]) -> tuple[str, str | None, list[str]]:
    """SOURCE [DATASET] IMAGE...: an .onnx file or a run folder, else MODEL DATASET."""
    from pathlib import Path

    if not items:
        raise ZooError("zoo predict needs a model and images (e.g. zoo predict resnet20 cifar10 photos/)")
    first = Path(items[0])
    if first.suffix in (".onnx", ".ort", ".xml") or first.is_dir():
        return items[0], None, items[1:]
    if len(items) < 2:
        raise ZooError(f"{items[0]} is not an .onnx file or a run folder; for shipped weights give MODEL DATASET")
    check_pair(items[0], items[1])
    return items[0], items[1], items[2:]


def cmd_predict(args) -> int:
    source, dataset, image_args = _predict_source(args.items)
    from zoo.data.images import EXTENSIONS, find_images  # numpy and Pillow: the paths are checked before any model

    image_args = image_args or _samples(source, dataset)
    paths, problems = find_images(image_args)
    if not paths:
        raise ZooError("; ".join(f"{_printable(p.path)}: {p.reason}" for p in problems) if problems else
                       f"no images in {', '.join(image_args)}; give files or folders of "
                       f"{', '.join(sorted(EXTENSIONS))} images")
    from zoo.predict.predictor import Predictor

    _say_first_export(source, dataset)
    # which weights and which runtime: said once the model is open, so that an error stays one line
    said = [f"zoo: predicting with {_predict_weights(source, dataset)}"]
    predictor = Predictor(source, dataset, threads=args.threads, batch=args.batch, runtime=args.runtime,
                          data=_data(args) if dataset or not source.endswith((".onnx", ".ort", ".xml")) else None,
                          invert=args.invert, images=len(paths), log=said.append)
    print("\n".join(said), file=sys.stderr, flush=True)
    if hasattr(sys.stdout, "reconfigure"):  # a name that is not UTF-8 is written as its own bytes in CSV
        sys.stdout.reconfigure(errors="surrogateescape")
    args.top_k = min(args.top_k, len(predictor.classes))  # a model has no more answers than classes
    results = _run_with_progress(predictor, paths, args.top_k)
    problems += [r for r in results if not hasattr(r, "top")]
    found = [r for r in results if hasattr(r, "top")]
    if found or args.json or args.csv:  # no empty table above the errors
        _print_predictions(found, args, (predictor.runtime_label, predictor.precision))
    for p in problems:
        print(f"zoo: error: {_printable(p.path)}: {p.reason}", file=sys.stderr)
    return 1 if problems else 0


def _samples(source: str, dataset: str | None) -> list[str]:
    """No images named: the real test images shipped for the model's dataset (zoo.core.shipped.sample_images)."""
    from pathlib import Path

    from zoo.core.shipped import sample_images

    if dataset is None and Path(source).is_dir():
        from zoo.core.sources import card_at

        card = card_at(Path(source))
        dataset = card.dataset if card else None
    folder = sample_images(dataset)
    if folder is None:
        raise ZooError("no images given: name files, folders or globs after the model (zoo ships sample images "
                       "for mnist, cifar10 and cifar100 only: e.g. zoo predict resnet20 cifar10)")
    print(f"zoo: no images given: classifying the sample {dataset} test images shipped with zoo ({folder})",
          file=sys.stderr)
    return [str(folder)]


def _say_first_export(source: str, dataset: str | None) -> None:
    """On a terminal: the weights are exported once before the first prediction (seconds); say so before."""
    from pathlib import Path

    if not sys.stderr.isatty() or Path(source).suffix in (".onnx", ".ort", ".xml"):
        return
    from zoo.core.sources import Target, card_at
    from zoo.export.cachekey import sealed_export

    card = card_at(Path(source)) if Path(source).is_dir() else None
    target = Target(card.arch, card.dataset, source) if card else Target(source, dataset or "", pretrained=True)
    if (card or dataset) and sealed_export(target, "fp32") is None:
        print(f"zoo: exporting {target.name} once into zoo's cache (later predictions start at once)",
              file=sys.stderr, flush=True)


def _predict_weights(source: str, dataset: str | None) -> str:
    """The weights zoo predict uses, in words."""
    from zoo.core.sources import Target

    if dataset:
        return Target(source, dataset, pretrained=True).describe()
    return f"the {'run folder' if not source.endswith(('.onnx', '.ort', '.xml')) else 'exported file'} {source}"


def _printable(name: str) -> str:
    """A file name for the terminal: control characters (escape sequences) and undecodable bytes shown as
    escapes, never sent raw."""
    if name.isprintable():
        return name
    return name.encode("utf-8", "backslashreplace").decode("utf-8").encode("unicode_escape").decode("ascii")


def _run_with_progress(predictor, paths, top_k: int):
    if len(paths) <= PROGRESS_FROM or not sys.stderr.isatty():
        return predictor.predict(paths, top_k, errors="return")
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("classifying", total=len(paths))
        return predictor.predict(paths, top_k, on_batch=lambda n: bar.advance(task, n), errors="return")


PROGRESS_FROM = 200  # images: fewer finish before a bar would help


def _print_predictions(found, args, ran: tuple[str, str]) -> None:
    runtime, precision = ran
    if args.json:
        print(json.dumps([{"file": r.path, "top": [{"class": c, "probability": p} for c, p in r.top],
                           "inverted": r.inverted, "runtime": runtime, "precision": precision} for r in found],
                         indent=1))
        return
    if args.csv:
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(["file", *[f"{k}{i + 1}" for i in range(args.top_k) for k in ("class", "probability")],
                    "inverted", "runtime", "precision"])
        for r in found:
            w.writerow([r.path, *[v for c, p in r.top for v in (c, f"{p:.6f}")], "yes" if r.inverted else "no",
                        runtime, precision])
        return
    from rich.markup import escape
    from rich.table import Table

    from zoo.core.ui import console

    t = Table(title=f"zoo predict — {plural(len(found), 'image')} ({runtime} {precision})")
    t.add_column("file", overflow="fold")
    t.add_column("class")
    t.add_column("p", justify="right")
    if args.top_k > 1:
        t.add_column(f"next {args.top_k - 1}")
    inverted = any(r.inverted for r in found)
    if inverted:
        t.add_column("inverted")
    for r in found:
        (c, p), rest = r.top[0], r.top[1:]
        others = [", ".join(f"{c2} {p2:.3f}" for c2, p2 in rest)] if args.top_k > 1 else []
        t.add_row(escape(_printable(r.path)), c, f"{p:.3f}", *others,
                  *(["yes" if r.inverted else ""] if inverted else []))
    if inverted:
        t.caption = "inverted: drawn the other way round from the model's training images (light ink on dark " \
                    "for digits); read inverted (--invert no to turn off)"
    console()(t)


# ---------------------------------------------------------------- serve
def cmd_serve(args) -> int:
    source, dataset, rest = _predict_source(args.items)
    if rest:
        raise ZooError(f"zoo serve takes a model, not images: {rest[0]} (send images to POST /v1/predict)")
    import ipaddress

    from zoo.serve import run, service
    from zoo.serve.app import Limits

    limits = Limits(args.max_body_mb, args.max_images, args.max_batch, args.max_wait_ms, args.queue, args.timeout,
                    os.environ.get("ZOO_SERVE_TOKEN") or None).validate()
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback and limits.token is None:
        print(f"zoo: note: listening on {args.host}, beyond this machine, with no token: anyone who can reach it "
              f"can use it (set ZOO_SERVE_TOKEN to require one)", file=sys.stderr)
    svc = service(source, dataset, runtime=args.runtime, threads=args.threads, limits=limits,
                  data=_data(args) if dataset or not source.endswith((".onnx", ".ort", ".xml")) else None,
                  log=lambda line: print(line, file=sys.stderr, flush=True))
    run(svc, args.host, args.port, log=lambda line: print(line, flush=True))
    return 0


# ---------------------------------------------------------------- publish
def cmd_publish(args) -> int:
    from pathlib import Path

    from zoo.core.shipped import weights_dir
    from zoo.publish import publish, write_eval_samples, write_sample_images, write_shipped_exports

    if not (args.runs or args.eval_samples):
        raise ZooError("zoo publish needs run folders (e.g. runs/resnet20.cifar10.paper) or --eval-samples")
    dest = Path(args.dest) if args.dest else None
    if args.eval_samples:
        write_eval_samples(dest or weights_dir(), {"mnist": 100, "cifar10": 100, "cifar100": 10}, data=_data(args))
        write_sample_images(dest or weights_dir())
        write_shipped_exports(dest or weights_dir(), data=_data(args))
    for run in args.runs:
        publish(run, dest, data=_data(args), storage=args.storage, force=args.force)
    return 0


# ---------------------------------------------------------------- parser
class _Help(argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help line (unless the help already says it), examples kept as written."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line, like every other zoo error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
    return sub.add_parser(name, help=help, description=help, epilog=epilog, formatter_class=_Help)


def _add_data_args(p: argparse.ArgumentParser, download: bool = True) -> None:
    p.add_argument("--data-dir", help="dataset root (default: $ZOO_DATA, else ~/.cache/zoo/data)")
    if download:
        p.add_argument("--download", action="store_true", help="download missing datasets (needs internet)")
    p.add_argument("--no-verify", dest="verify", action="store_false", default=None,
                   help="skip torchvision's md5 check of CIFAR files (known-good re-encodings); also ZOO_VERIFY=0")


def _add_folder_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("a dataset given as a path (a folder of class folders, or a CSV of path,label)")
    g.add_argument("--val-fraction", type=_fraction, default=0.1,
                   help="held out per class when the folder has no val/ or test/ (0 < F <= 0.5)")
    g.add_argument("--channels", type=int, choices=(1, 3), help="1 (grey) or 3 (RGB) (default: from the images)")
    g.add_argument("--size", type=_at_least(8),
                   help="pixels per side (default: 28 for grey, 32 for RGB, or --init's dataset's)")
    g.add_argument("--allow-outside-paths", action="store_true",
                   help="a CSV may name images outside its own folder (../ or absolute paths)")


def _add_pair(p: argparse.ArgumentParser, model_help: str, dataset_help: str) -> None:
    p.add_argument("model", nargs="?", help=model_help)
    p.add_argument("dataset", nargs="?", help=dataset_help)


def _add_sources(p: argparse.ArgumentParser, matrix_help: str) -> None:
    """Where export's and bench's weights come from."""
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
    p.add_argument("--recipe", help="paper, fast, finetune (small datasets from --init weights), record (fast, "
                                    "longer, EMA) or speedrun (zoonet's) (default: paper for the study's datasets; "
                                    "for a folder, finetune "
                                    "with --init, else fast; with --resume or --config, the recorded one)")
    p.add_argument("--config", metavar="FILE",
                   help="replay a run: its config.json (or a TOML file of that shape); flags override it")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override any recipe field, e.g. --set lr=0.1 --set augment=crop,flip (repeatable)")
    p.add_argument("--epochs", type=_at_least(1), help="override the recipe's epochs (>= 1)")
    p.add_argument("--batch-size", type=_at_least(1),
                   help="override the recipe's batch size (global, all processes; >= 1)")
    p.add_argument("--lr", type=float, help="override the recipe's peak learning rate")
    p.add_argument("--seed", type=int, help="override the recipe's seed (the recipes' default: 0)")
    _add_runtime_args(p)
    p.add_argument("--out", help="run folder (default runs/MODEL.DATASET.RECIPE; with --matrix, the parent)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (model, dataset, recipe from its config)")
    p.add_argument("--init", metavar="WEIGHTS",
                   help="fine-tune from trained weights instead of random ones: pretrained (shipped, this pair), "
                        "pretrained:DATASET (this model's shipped weights for another dataset; the classifier's "
                        "rows follow the class names, see --head), auto (for a folder: the shipped weights of "
                        "MODEL whose linear probe on your images is best), or a run folder / .safetensors file")
    p.add_argument("--head", choices=("map", "keep", "fresh"), default="map",
                   help="with --init: the classifier's rows by class name (map: classes without a match start "
                        "fresh), in order (keep), or all fresh")
    p.add_argument("--freeze-backbone", action="store_true",
                   help="with --init: train the classifier alone (linear probing); the rest keeps its weights")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write the metrics as TensorBoard scalars in OUT/tensorboard (pip install "
                        "'zoo-classifiers[tensorboard]')")
    p.add_argument("--save-every", type=_minutes, default=10.0, metavar="MIN",
                   help="also checkpoint mid-epoch every MIN minutes (default 10; 0 = only at epoch ends)")
    _add_data_args(p)
    _add_folder_args(p)
    p.set_defaults(func=cmd_train)


def _add_runtime_args(p: argparse.ArgumentParser) -> None:
    """How zoo train executes: the device and the fast path's choices."""
    g = p.add_argument_group("execution (auto: measured per model on this machine, remembered; see zoo list "
                             "--fastpath)")
    g.add_argument("--device", default="cpu", help="cpu or cuda")
    g.add_argument("--precision", default="auto", help="auto, fp32 or bf16")
    g.add_argument("--compile", default="auto", help="torch.compile: auto, on or off")
    g.add_argument("--reprobe", action="store_true",
                   help="measure the fast path again instead of using the remembered decision")


def _add_export(sub) -> None:
    p = _command(sub, "export", "export to ONNX (fp32/fp16/int8), gated on parity with PyTorch")
    _add_pair(p, "architecture, e.g. resnet20 (see zoo list)",
              "the dataset it was trained on, e.g. cifar10 or the folder it was trained on")
    p.add_argument("--pretrained", action="store_true", help="the weights shipped with zoo")
    _add_sources(p, "'paper': every seed pair that has a trained run (see --runs) or shipped weights")
    p.add_argument("--out", default="exports", help="output folder")
    p.add_argument("--opset", type=_at_least(7), default=18, help="ONNX opset (the dynamo exporter needs >= 18)")
    p.add_argument("--precision", default="fp32", help="fp32, fp16 (GPUs) or int8 (static QDQ, CPUs)")
    p.add_argument("--calib-size", type=_at_least(1), default=256, help="training images used to calibrate int8 (>= 1)")
    p.add_argument("--exporter", default="dynamo", help="dynamo or torchscript")
    p.add_argument("--eval-images", type=_at_least(1000), default=1000,
                   help="real images in the top-1 agreement check (>= 1000)")
    p.add_argument("--format", default="onnx",
                   help="onnx, and beside it ort (onnxruntime's ORT format, NAME.ort, optimized once) and/or openvino "
                        "(OpenVINO's IR, NAME.xml + NAME.bin, zoo's metadata in its rt_info); each gated against the "
                        ".onnx file, each read by zoo predict. e.g. onnx,ort,openvino")
    p.add_argument("--image-input", action="store_true",
                   help="a self-contained graph: uint8 images [N, H, W, C] in, logits and probabilities out "
                        "(cast, scaling, normalization and layout inside; fp32)")
    p.add_argument("--int8-max-drop", type=_points, default=1.0,
                   help="int8 gate: most top-1 points int8 may lose against fp32")
    p.add_argument("--tta", choices=("recipe", "none", "flip", "flip-shift"), default="recipe",
                   help="test-time augmentation inside the graph: the recipe's (default), or another for fewer "
                        "passes and lower latency at another accuracy (named in the file: NAME-tta-flip.onnx; "
                        "zoo bench --onnx measures it)")
    _add_data_args(p, download=False)
    _add_folder_args(p)
    p.set_defaults(func=cmd_export)


def _add_bench(sub) -> None:
    p = _command(sub, "bench", "accuracy, size and latency in onnxruntime (default: the shipped weights)")
    _add_pair(p, "architecture, e.g. resnet20 (default: every shipped pair)", "its dataset, e.g. cifar10")
    _add_sources(p, "'paper': the 16 seed pairs, trained runs first, then shipped weights")
    p.add_argument("--onnx", nargs="+", help="bench these files written by zoo export, as they are")
    p.add_argument("--precision", default="fp32", help="comma list of fp32, int8 (CPU), fp16 (CUDA)")
    p.add_argument("--provider", help="comma list of cpu, cuda (default: cpu, plus cuda when usable)")
    p.add_argument("--runtime", default="onnxruntime",
                   help="comma list of onnxruntime, openvino (f32 and its default precision; int8), opencv, "
                        "torch-compile, or all (every one installed): each runs the same model and gets rows of "
                        "its own; over several, the fastest that keeps accuracy is recommended and remembered "
                        "for zoo predict")
    p.add_argument("--threads", type=_at_least(1), help="intra-op threads (>= 1; default: all cores)")
    p.add_argument("--warmup", type=_at_least(0), default=20, help="untimed batch-1 calls (>= 0)")
    p.add_argument("--repeat", type=_at_least(1),
                   help="timed batch-1 calls (>= 1; default: 200, or up to 1,000 while they fit in 1 s, so that "
                        "p99 rests on >= 10 calls)")
    p.add_argument("--batch", type=_batches, default=[256],
                   help="batch size(s) for throughput: 256 (the default) or a sweep such as 1,16,64,256 (each >= 1)")
    p.add_argument("--accept-busy", action="store_true",
                   help="recommend from figures timed while other processes used the CPU as if clean (by default "
                        "they give a provisional recommendation, replaced by the next bench on a quieter machine)")
    p.add_argument("--no-eager", action="store_true", help="skip the PyTorch eager comparison")
    p.add_argument("--null", action="store_true", help="add the null backend (harness overhead)")
    p.add_argument("--out", default="bench", help="report folder")
    _add_data_args(p, download=False)
    _add_folder_args(p)
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
    p.add_argument("--top-k", type=_at_least(1), default=5, help="classes shown per image (>= 1)")
    p.add_argument("--json", action="store_true", help="JSON on stdout")
    p.add_argument("--csv", action="store_true", help="CSV on stdout")
    p.add_argument("--batch", type=_at_least(1), default=64, help="images per forward pass (>= 1)")
    p.add_argument("--threads", type=_at_least(1), help="intra-op threads (>= 1; default: all cores)")
    p.add_argument("--runtime", default="auto",
                   help="auto (the runtime and precision zoo bench --runtime all found fastest without losing "
                        "accuracy for this model on this machine; else onnxruntime), onnxruntime, openvino (its "
                        "default precision: bf16 on AMX/AVX512-BF16 CPUs) or opencv")
    p.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                   help="auto: an image drawn the other way round from the model's training images (dark ink on "
                        "light for a digit model) is inverted first, and said; yes: invert every image; no: never")
    _add_data_args(p, download=False)
    p.set_defaults(func=cmd_predict)


def _add_serve(sub) -> None:
    p = _command(sub, "serve", "serve a model over HTTP: batching, limits, metrics and a page (loopback by default)")
    p.add_argument("items", nargs="+", metavar="SOURCE [DATASET]",
                   help="an .onnx/.ort/.xml file written by zoo export, a run folder, or MODEL DATASET")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=_at_least(1), default=8000, help="port (default 8000)")
    p.add_argument("--runtime", default="auto", help="auto (zoo bench's throughput choice here), onnxruntime, "
                                                     "openvino or opencv")
    p.add_argument("--threads", type=_at_least(1), help="intra-op threads (>= 1; default: all cores)")
    p.add_argument("--max-batch", type=_at_least(1), default=32, help="images run through the model together")
    p.add_argument("--max-wait-ms", type=_non_negative("milliseconds", "5"), default=0.0,
                   help="how long a batch waits for more requests after its first (default 0: a batch takes the "
                        "requests that came while the previous one ran)")
    p.add_argument("--queue", type=_at_least(1), default=256,
                   help="images that may wait for the model; beyond, 503 with Retry-After")
    p.add_argument("--timeout", type=_non_negative("seconds", "30"), default=30.0,
                   help="a request's wait for its answer; beyond, 504")
    p.add_argument("--max-body-mb", type=_non_negative("megabytes", "8"), default=8.0, help="a request's body")
    p.add_argument("--max-images", type=_at_least(1), default=64, help="images in one request")
    _add_data_args(p, download=False)
    p.set_defaults(func=cmd_serve)


def command_flags(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """Each command's options, e.g. {"train": {"--out", ...}, ...}."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: {o for a in p._actions for o in a.option_strings} for name, p in sub.choices.items()}


def wrong_advice(message: str, flags: dict[str, set[str]], command: str) -> list[str]:
    """The options a message advises that the command they are advised for does not have: those inside a quoted
    `zoo CMD ...` (or "zoo CMD --flag", up to a `;`, `)` or backquote) are CMD's, the others the running one's."""
    wrong = []
    for cmd, rest in re.findall(r"zoo (" + "|".join(flags) + r")\b([^`);]*)", message):
        wrong += [f"zoo {cmd} {f}" for f in re.findall(r"--[a-z][a-z0-9-]*", rest) if f not in flags[cmd]]
    bare = re.sub(r"zoo (" + "|".join(flags) + r")\b[^`);]*", "", message)
    return wrong + [f"zoo {command} {f}" for f in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", bare)
                    if f not in flags[command]]


def _fail(message: str, flags: dict[str, set[str]], command: str) -> int:
    """The one-line error. Under the tests (ZOO_CHECK_ADVICE=1), advice naming an option the command lacks fails
    the test that met it, whichever error it is."""
    if os.environ.get("ZOO_CHECK_ADVICE") == "1" and wrong_advice(message, flags, command):
        raise AssertionError(f"advice names options that do not exist: {wrong_advice(message, flags, command)} "
                             f"in: {message}")
    print(f"zoo: error: {message}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="zoo", description="Small image classifiers: train, export to ONNX, benchmark in "
                     "onnxruntime.", epilog="run `zoo COMMAND --help` for a command's options and examples")
    parser.add_argument("--version", action="version", version=f"zoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
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


TRAIN_EXTRA = ("torch", "torchvision", "timm", "onnx", "onnxscript", "matplotlib")  # pyproject.toml's `train`


def _run(args, flags: dict[str, set[str]]) -> int:
    try:
        _check_paths(args)
        return args.func(args) or 0
    except ZooError as e:
        return _fail(str(e), flags, args.command)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in TRAIN_EXTRA:
            raise
        return _fail(f"zoo {args.command} needs {e.name.split('.')[0]}, which the light install leaves out: pip "
                     f"install 'zoo-classifiers[train]' (zoo predict and zoo serve on exported files need none of "
                     f"it)", flags, args.command)
    except BrokenPipeError:  # `zoo list | head`: the reader has what it wanted; end quietly, as cat and ls do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 128 + 13  # what a shell reports for a command ended by SIGPIPE
    except OSError as e:  # a full disk, a read-only or vanished folder: the system's words, the file, what to do
        where = f" ({e.filename})" if e.filename else ""
        out = {"publish": " or choose another --dest"}.get(
            args.command, " or choose another --out" if "--out" in flags[args.command] else "")
        again = " with --resume" if args.command == "train" else ""
        todo = {errno.ENOENT: "it was removed while zoo worked (by another process?)",
                errno.EACCES: "zoo may not write there", errno.EROFS: "that file system is read-only"}.get(e.errno)
        if todo:  # not a full disk: the advice says what happened, not "free space"
            other = out.replace(" or ", "", 1) if out and e.errno != errno.ENOENT else ""
            step = f"{other}, then run the command again" if other else "run the command again"
            return _fail(f"{e.strerror}{where}: {todo}; nothing half-written is left: {step}{again}", flags,
                         args.command)
        return _fail(f"{e.strerror or e}{where}; nothing half-written is left: free space{out}, then run the command "
                     f"again{again}", flags, args.command)
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
