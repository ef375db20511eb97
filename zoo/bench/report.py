"""The report: rows + environment -> terminal table, report.md, report.json, report.csv (atomic writes).

A report is {"environment": dict, "rows": [BenchRow], "notes": [str]}; report.json stores rows as JSON.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import json
from pathlib import Path

from rich.table import Table
from rich.text import Text

from zoo.bench.measure import LATENCY_BUDGET_S, MIN_RUNS, TAIL_RUNS
from zoo.core.cards import BenchRow
from zoo.core.errors import ZooError
from zoo.core.io import atomic_write_bytes, read_json
from zoo.core.owned import OWNER, owned_files, write_manifest
from zoo.core.ui import console

# (key, header with units, format)
COLUMNS = [
    ("arch", "model", "{}"), ("dataset", "dataset", "{}"), ("precision", "prec", "{}"),
    ("provider", "EP", "{}"), ("runtime", "runtime", "{}"), ("top1", "top-1 %", "{:.2f}"),
    ("top1_change", "Δ pt", "{:+.2f}"), ("torch_agreement", "agree %", "{:.2f}"),
    ("onnx_mb", "MB", "{:.3f}"), ("params", "params", "{:,}"), ("macs", "MMAC", "{:.2f}"),
    ("latency_ms_p50", "p50 ms", "{:.3f}"), ("latency_ms_p90", "p90 ms", "{:.3f}"),
    ("latency_ms_p99", "p99 ms", "{:.3f}"), ("throughput_img_s", "img/s", "{:,.0f}"),
    ("eager_latency_ms_p50", "eager p50 ms", "{:.3f}"), ("speedup_vs_eager", "×eager", "{:.1f}"),
    ("throughput_by_batch", "img/s by batch", "{}"), ("load_s", "load s", "{:.2f}"), ("peak_mb", "peak MB", "{:.0f}"),
    ("latency_iqr_rel", "noise %", "{:.0%}"), ("flags", "flags", "{}"),
]

TERMINAL = {"arch", "dataset", "precision", "runtime", "top1", "torch_agreement", "latency_ms_p50", "throughput_img_s",
            "speedup_vs_eager", "flags"}  # the rest is in report.md / .csv / .json
FLAGS_NOTE = ("flags: busy = other processes used >= 15% of the machine's CPU while the row's latency was "
              "timed (measured from /proc/stat over that window): its timings read 'busy' here, the raw figures are "
              "in report.json; eager-busy = the same for the PyTorch eager reference (×eager); noisy = the batch-1 "
              "calls' IQR > 10% of their "
              "median (re-measure such rows on an idle machine before comparing them); accuracy = the runtime "
              "loses > 0.5 top-1 points against PyTorch fp32 on the same images. agree % = images whose top-1 "
              "equals PyTorch fp32 eager's.")
DATASET_ORDER = {"mnist": 0, "kmnist": 1, "cifar10": 2, "cifar100": 3}


TIMED = {"latency_ms_p50", "latency_ms_p90", "latency_ms_p99", "throughput_img_s", "throughput_by_batch",
         "speedup_vs_eager"}  # figures a busy machine makes wrong
EAGER = {"eager_latency_ms_p50", "speedup_vs_eager"}  # figures of the eager reference's own timing
ALWAYS = {"arch", "dataset", "precision", "runtime", "top1", "flags"}  # shown even when every row lacks them


def _flagged(row: BenchRow, flag: str) -> bool:
    return any(f.split(" ")[0] == flag for f in row.flags)


def cell(row: BenchRow, key: str, fmt: str, short: bool = False) -> str:
    """A row's figure as the terminal, Markdown and HTML show it: a figure timed while other processes held the
    CPU reads "busy" (the JSON and CSV keep the raw value)."""
    v = getattr(row, key)
    if v is None or v == [] or v == {}:
        return "-"
    if (key in TIMED and _flagged(row, "busy")) or (key in EAGER and _flagged(row, "eager-busy")):
        return "busy"
    if isinstance(v, dict):  # throughput by batch: "1: 1,650 · 16: 2,100 · 256: 2,196"
        return " · ".join(f"{b}: {x:,.0f}" for b, x in sorted(v.items(), key=lambda kv: int(kv[0])))
    if isinstance(v, list):  # flags: "busy (other load 2.4)"; the terminal shows "busy"
        return ", ".join(f.split(" (")[0].split(" ")[0] if short else f for f in v)
    if key == "macs":
        v = v / 1e6
    return fmt.format(v)


def shown_columns(rows: list[BenchRow], columns=None) -> list[tuple[str, str, str]]:
    """The columns that hold a figure in at least one row (no column of '-')."""
    return [c for c in (columns or COLUMNS) if c[0] in ALWAYS or any(cell(r, c[0], c[2]) != "-" for r in rows)]


def sort_rows(rows: list[BenchRow]) -> list[BenchRow]:
    return sorted(rows, key=lambda r: (DATASET_ORDER.get(r.dataset, 9), r.dataset, r.macs or 0, r.arch,
                                       r.provider, r.precision, r.runtime))


def environment_line(env: dict) -> str:
    """What the figures were measured on and with, for the reports' headers."""
    kept = env.get("freed_memory_kept")
    return (f"CPU: {env.get('cpu')}; GPU: {env.get('gpu') or 'none'}; providers: "
            f"{', '.join(env.get('providers', []))}; threads: {env.get('threads')}; onnxruntime "
            f"{env.get('onnxruntime')}, torch {env.get('torch')}, zoo "
            f"{env.get('zoo')}, git {env.get('git_sha') or '-'}; freed memory kept (glibc): "
            f"{'-' if kept is None else 'yes' if kept else 'no'}; other load before/after "
            f"{env.get('load_before', 0):.1f}/{env.get('load_after', 0):.1f}")


def method_line(cfg: dict) -> str:
    """How latency and throughput were taken, for the reports' headers."""
    runs = cfg.get("runs")
    timed = (f"{runs} timed" if runs is not None else f"{MIN_RUNS}-{TAIL_RUNS:,} timed (as many as fit in "
             f"{LATENCY_BUDGET_S:g} s; each row's count in report.json)")
    return (f"Latency: batch 1, after at least {cfg.get('warmup')} warm-up calls (until stable), {timed}; "
            f"throughput at batch {cfg.get('batch')}.")


def recommended_lines(report: dict) -> list[str]:
    """One line per model: the runtime and precision to deploy at batch 1 and at the largest batch
    (zoo.bench.recommend), with the reason a faster row was passed over."""
    from zoo.bench.recommend import line

    return [line(name, rec) for name, rec in (report.get("recommendation") or {}).items()]


def to_markdown(report: dict) -> str:
    env = report["environment"]
    cols = shown_columns(report["rows"])
    lines = [f"# zoo bench — {env['date']}", "", environment_line(env), "",
             *[f"**{n}**" for n in report.get("notes", []) if "accuracy measured" in n],
             "", "| " + " | ".join(h for _, h, _ in cols) + " | eval set |",
             "|" + "---|" * (len(cols) + 1)]
    for r in sort_rows(report["rows"]):
        lines.append("| " + " | ".join(cell(r, k, f) for k, _, f in cols) + f" | {r.eval_set} |")
    lines.append("")
    lines.append(f"{method_line(env.get('config', {}))} Δ top-1: against fp32 on the same eval set.")
    lines += [f"- {n}" for n in report.get("notes", []) if "accuracy measured" not in n]
    if any(r.flags for r in report["rows"]):
        lines.append(f"- {FLAGS_NOTE}")
    lines += [f"- {r.name}: not measured: {r.error}" for r in report["rows"] if r.error]
    recommended = recommended_lines(report)
    if recommended:
        lines += ["", "## Recommended", "", "Fastest without losing accuracy (≤ 0.3 pt and ≥ 99% agreement with "
                  "PyTorch fp32, not busy or noisy); `zoo predict` uses it on this machine.", "",
                  *[f"- {x}" for x in recommended]]
    return "\n".join(lines) + "\n"


def to_csv(report: dict) -> str:
    keys = [k for k, _, _ in COLUMNS] + ["throughput_batch", "eager_throughput_img_s", "latency_calls", "eval_set",
                                         "weights", "threads"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for r in sort_rows(report["rows"]):
        w.writerow(r.to_json())
    return buf.getvalue()


def _rows_sha256(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def to_json(report: dict) -> str:
    rows = [r.to_json() for r in report["rows"]]
    return json.dumps({**report, "rows": rows, "rows_sha256": _rows_sha256(rows)}, indent=1, default=str) + "\n"


def print_table(report: dict) -> None:
    env = report["environment"]
    t = Table(title=f"zoo bench — {env['cpu']}, {env['threads']} threads, onnxruntime {env['onnxruntime']}")
    cols = shown_columns(report["rows"], [c for c in COLUMNS if c[0] in TERMINAL])  # the rest: report.md / .csv
    for _, h, _ in cols:
        t.add_column(h, justify="left" if h in ("model", "dataset", "prec", "EP", "runtime", "flags") else "right",
                     no_wrap=True)
    for r in sort_rows(report["rows"]):
        t.add_row(*(Text(cell(r, k, f, short=True)) for k, _, f in cols))  # Text: a name's [brackets] are not markup
    sets = sorted({r.eval_set for r in report["rows"] if r.eval_set})
    errors = [f"{r.name}: not measured: {r.error}" for r in report["rows"] if r.error]
    errors += [FLAGS_NOTE] if any(r.flags for r in report["rows"]) else []
    t.caption = Text("top-1 on: " + "; ".join(sets) + "".join(f"\n{n}" for n in [*report.get("notes", []),
                                                                                               *errors]))
    console()(t)
    for x in recommended_lines(report):
        console()(f"recommended: {x}", markup=False, highlight=False)


def from_json(data) -> dict:
    """A report.json's content as a report; a foreign file fails clearly."""
    if not isinstance(data, dict) or not {"environment", "rows"} <= set(data) or not isinstance(data["rows"], list):
        raise ZooError("not a zoo report (expected keys 'environment' and 'rows'); give the report.json zoo bench "
                       "wrote, or run zoo bench again")
    if data.get("rows_sha256") not in (None, _rows_sha256(data["rows"])):
        raise ZooError("the report's rows do not match their sha256 (the file is damaged or was edited); "
                       "run zoo bench again")
    rows = [BenchRow.from_json(r, f"report row {i}") for i, r in enumerate(data["rows"])]
    return {**data, "rows": rows}


REPORT_FILES = ("report.json", "report.md", "report.csv", "report.html", "*.png")


def keep_previous(out: Path) -> Path | None:
    """The report zoo wrote in `out` moves to out/previous/ (the one zoo wrote there goes) before a new one is
    written; returns that folder, or None when there was no report. Only files zoo can prove it wrote move or go
    (zoo.core.owned): a user's files in either folder stay as they are."""
    out = Path(out)
    old = owned_files(out)
    if not old:
        return None
    prev = out / "previous"
    if prev.is_symlink() or (prev.exists() and not prev.is_dir()):
        return None  # not a folder zoo made: the old set is replaced instead of kept
    for p in owned_files(prev):
        p.unlink()
    prev.mkdir(exist_ok=True)
    moved = [p.name for p in old if not (prev / p.name).exists()]  # a user's file of that name stays in place
    for name in moved:
        os.replace(out / name, prev / name)
    write_manifest(prev, moved, "zoo bench report")
    return prev


def foreign_files(out: Path, names: list[str]) -> list[str]:
    """The names a report would write in `out` that are already there and are not zoo's (a user's files)."""
    mine = {p.name for p in owned_files(out)}
    return [n for n in names if (Path(out) / n).exists() and n not in mine]


def replace_set(new: Path, out: Path, keep: bool, adopt: tuple[str, ...] = ()) -> tuple[list[Path], Path | None]:
    """Move a report set written whole in the folder `new` into `out`, in one quick step after it is complete:
    the set zoo wrote there before moves to out/previous/ (`keep`) or goes, so that `out` never mixes two sets and
    an interrupted render leaves the old set as it was. A file of `out` that zoo did not write is never replaced:
    such a name is refused before anything moves; `adopt` names files taken as zoo's all the same (the report
    zoo report re-renders in place). Returns the new paths and the previous set's folder."""
    out = Path(out)
    names = sorted(p.name for p in Path(new).iterdir() if p.name != OWNER)
    clash = [n for n in foreign_files(out, names) if n not in adopt]
    if clash:
        raise ZooError(f"{out} holds {', '.join(clash[:3])}{' ...' if len(clash) > 3 else ''}, which zoo did not "
                       f"write; a report would replace it: move it, or choose another --out")
    prev = keep_previous(out) if keep else None
    for p in owned_files(out):
        if p.name not in names:
            p.unlink()  # a file of zoo's old set that the new one does not have (a plot of a model no longer benched)
    for name in names:
        os.replace(Path(new) / name, out / name)
    write_manifest(out, names, "zoo bench report")
    return [out / n for n in names], prev


def write_reports(report: dict, out: Path) -> list[Path]:
    files = {"report.json": to_json(report), "report.md": to_markdown(report), "report.csv": to_csv(report)}
    for name, text in files.items():
        atomic_write_bytes(Path(out) / name, text.encode())
    return [Path(out) / name for name in files]


def load_report(path: Path) -> dict:
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    if not p.is_file():
        raise ZooError(f"no report at {p}; run zoo bench first")
    try:
        return from_json(read_json(p, "report"))
    except ZooError as e:
        raise ZooError(f"{p}: {e}") if str(p) not in str(e) else e from None
