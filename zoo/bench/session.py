"""One `zoo bench` from its options to its report: measure each target, recommend, remember the
recommendations for `zoo predict --runtime auto`, and render the report set. `zoo bench` and the Python API
take the same path:

    from zoo.bench.session import bench
    from zoo.targets import bench_targets
    report = bench(bench_targets("resnet20", "cifar10"), BenchOptions(runtime="all"))
"""

from __future__ import annotations

from pathlib import Path

from zoo.bench.harness import bench_config, bench_target, environment, resolve_providers
from zoo.bench.options import BenchOptions
from zoo.bench.recommend import recommend
from zoo.bench.report import foreign_files, load_report, print_table, replace_set, write_reports
from zoo.core.cards import BenchRow
from zoo.core.tta import Tta
from zoo.core.env import other_load
from zoo.core.errors import ZooError
from zoo.core.io import writable_dir
from zoo.core.owned import owned_tempdir
from zoo.core.sources import Target
from zoo.data import DataOptions

REPORT_FILES = ["report.json", "report.md", "report.csv", "report.html"]


class Quiet:
    """What bench() tells as it goes (a progress bar on a terminal, see zoo.cli): here, lines to `log`."""

    def __init__(self, log=print):
        self.log = log

    def show(self, name: str) -> None:
        pass

    def print(self, line: str, err: bool = False) -> None:
        self.log(line)

    def done(self) -> None:
        pass


def bench(targets: list[Target], options: BenchOptions | None = None, data: DataOptions | None = None,
          progress=None, runs: str | Path = "runs") -> dict:
    """Measure `targets` (zoo.targets.bench_targets), recommend, remember, and write the report set into
    `options.out`: what `zoo bench` does; the report."""
    options = options or BenchOptions()
    report = measure(targets, options, data, progress)
    finish(report, options, runs, log=(progress or Quiet()).print)
    return report


def measure(targets: list[Target], options: BenchOptions, data: DataOptions | None = None, progress=None) -> dict:
    """The report of `targets`, with its recommendation: a target that fails is a row with its error; the others
    are still measured. The report folder is checked first (nothing is measured for a report that could not be
    written)."""
    progress = progress or Quiet()
    load_before = other_load()
    cfg = bench_config(options)
    check_report_folder(writable_dir(options.out))
    providers, notes = resolve_providers(cfg)
    if "fp16" in cfg.precisions and "cuda" not in providers:
        notes.append("fp16 not measured: it is a GPU precision and no CUDA provider runs here")
    rows = []
    for t in targets:
        progress.show(t.name)
        try:
            rows += bench_target(t, cfg, providers, data=data, notes=notes, log=progress.print,
                                 phase=lambda what, name=t.name: progress.show(f"{name}: {what}"))
        except ZooError as e:
            rows.append(BenchRow(t.arch, t.dataset, "-", "-", error=str(e)))
            progress.print(f"zoo: error: {t.name}: {e}", err=True)
        progress.done()
    return {"environment": environment(cfg, providers, load_before), "rows": rows, "notes": notes,
            "recommendation": recommend(rows, accept_busy=options.accept_busy)}


def finish(report: dict, options: BenchOptions, runs: str | Path = "runs", log=print) -> None:
    """Remember each recommendation for `zoo predict --runtime auto`, then write the report set (the old one
    moves to OUT/previous/)."""
    for line in remember(report["recommendation"], report["environment"]["threads"]):
        log(line)
    render(report, options.out, runs, keep=True, log=log)


def check_report_folder(out) -> None:
    """Before minutes of measuring: a report's fixed names in `out` that zoo did not write are refused now."""
    clash = foreign_files(out, REPORT_FILES)
    if clash:
        raise ZooError(f"{out} holds {', '.join(clash)}, which zoo did not write; a report would replace it: move "
                       f"it, or choose another --out")


def remember(recs: dict, threads: int | None) -> list[str]:
    """Each model's recommendation, for zoo predict --runtime auto on this machine (zoo.core.deploy); lines
    for those a quieter machine's measurement kept."""
    from zoo.core.deploy import deploy_key, remember as keep

    said = []
    for name, rec in recs.items():
        if rec.get("weights_sha256") and not rec.get("none"):
            key = deploy_key(rec["weights_sha256"], rec["export_revision"], threads, Tta.of(rec.get("tta")).value)
            if not keep(key, {"model": name, **rec}):
                said.append(f"zoo: {name}: kept the recommendation measured on a quieter machine; this one was "
                            f"timed busy (--accept-busy to take it)")
    return said


def render(report: dict, out, runs: str | Path, keep: bool = False, adopt: tuple[str, ...] = (), log=print) -> None:
    """report.md/json/csv, the plots and report.html into `out`, all at once, then the table: zoo bench and zoo
    report alike. The set is rendered in a temporary folder inside `out` and moved in whole (an interrupted or
    out-of-space render leaves the old set as it was); with `keep`, the old set moves to out/previous/. Only
    files zoo wrote are moved or replaced (zoo.bench.report.replace_set)."""
    from zoo.bench.html import write_html

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with owned_tempdir(out, ".report") as tmp:  # a killed render's folder is swept first
        plots = _plots(report, tmp, Path(runs), log)
        write_reports(report, tmp), write_html(report, tmp, plots)
        paths, prev = replace_set(tmp, out, keep, adopt)
    if prev is not None:
        log(f"zoo: the previous report in {out} moved to {prev}")
    print_table(report)
    log("wrote " + ", ".join(str(p) for p in paths))


def _plots(report: dict, out: Path, runs: Path, log) -> list[Path]:
    """The report's plots; none in the light install (matplotlib comes with the train extra), said once."""
    try:
        from zoo.bench.plots import render_plots
    except ImportError as e:
        log(f"zoo: no plots in this report: they need {e.name} (pip install 'zoo-classifiers[train]')")
        return []
    return render_plots(report, out, runs)


def rerender(report_path: str | Path, out: str | Path | None = None, runs: str | Path = "runs") -> None:
    """`zoo report`: render a saved report.json again (into `out`, default beside it); nothing is measured."""
    report = load_report(Path(report_path))
    source = Path(report_path) / "report.json" if Path(report_path).is_dir() else Path(report_path)
    out = Path(out or source.parent)
    in_place = source.name == "report.json" and out.resolve() == source.parent.resolve()
    render(report, out, runs, adopt=("report.json",) if in_place else ())  # the file it read is rewritten
