"""The report: rows + environment -> terminal table, report.md, report.json, report.csv (atomic writes)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from zoo.errors import ZooError

# (key, header with units, format)
COLUMNS = [
    ("model", "model", "{}"), ("dataset", "dataset", "{}"), ("precision", "prec", "{}"),
    ("provider", "EP", "{}"), ("top1", "top-1 %", "{:.2f}"), ("top1_change", "Δ pt", "{:+.2f}"),
    ("onnx_mb", "MB", "{:.3f}"), ("params", "params", "{:,}"), ("macs", "MMAC", "{:.2f}"),
    ("latency_ms_p50", "p50 ms", "{:.3f}"), ("latency_ms_p90", "p90 ms", "{:.3f}"),
    ("latency_ms_p99", "p99 ms", "{:.3f}"), ("throughput_img_s", "img/s", "{:,.0f}"),
    ("eager_latency_ms_p50", "eager p50 ms", "{:.3f}"), ("speedup_vs_eager", "×eager", "{:.1f}"),
]

TERMINAL = {"model", "dataset", "precision", "provider", "top1", "top1_change", "onnx_mb", "macs", "latency_ms_p50",
            "latency_ms_p99", "throughput_img_s", "speedup_vs_eager"}


def cell(row: dict, key: str, fmt: str) -> str:
    v = row.get(key)
    if v is None:
        return "-"
    if key == "macs":
        v = v / 1e6
    return fmt.format(v)


def sort_rows(rows: list[dict]) -> list[dict]:
    order = {"mnist": 0, "kmnist": 1, "cifar10": 2, "cifar100": 3}
    return sorted(rows, key=lambda r: (order.get(r["dataset"], 9), r["dataset"], r["macs"], r["model"],
                                       r["provider"], r["precision"]))


def to_markdown(report: dict) -> str:
    env = report["environment"]
    lines = [f"# zoo bench — {env['date']}", "",
             f"CPU: {env['cpu']}; GPU: {env.get('gpu') or 'none'}; providers: {', '.join(env['providers'])}; "
             f"threads: {env['threads']}; onnxruntime {env['onnxruntime']}, torch {env['torch']}, zoo {env['zoo']}"
             f", git {env.get('git_sha') or '-'}", "",
             "| " + " | ".join(h for _, h, _ in COLUMNS) + " | eval set |",
             "|" + "---|" * (len(COLUMNS) + 1)]
    for r in sort_rows(report["rows"]):
        lines.append("| " + " | ".join(cell(r, k, f) for k, _, f in COLUMNS) + f" | {r['eval_set']} |")
    lines.append("")
    lines.append(f"Latency: batch 1, after {env['config']['warmup']} warm-up calls, {env['config']['runs']} timed; "
                 f"throughput at batch {env['config']['batch']}. Δ top-1: against fp32 on the same eval set.")
    for n in report.get("notes", []):
        lines.append(f"- {n}")
    return "\n".join(lines) + "\n"


def to_csv(report: dict) -> str:
    keys = [k for k, _, _ in COLUMNS] + ["throughput_batch", "eager_throughput_img_s", "eval_set", "weights",
                                         "threads"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for r in sort_rows(report["rows"]):
        w.writerow(r)
    return buf.getvalue()


def print_table(report: dict) -> None:
    from rich.table import Table

    from zoo.ui import console

    env = report["environment"]
    t = Table(title=f"zoo bench — {env['cpu']}, {env['threads']} threads, onnxruntime {env['onnxruntime']}")
    cols = [c for c in COLUMNS if c[0] in TERMINAL]  # the full set goes to report.md / .csv
    for _, h, _ in cols:
        t.add_column(h, justify="left" if h in ("model", "dataset", "prec", "EP") else "right", no_wrap=True)
    for r in sort_rows(report["rows"]):
        t.add_row(*(cell(r, k, f) for k, _, f in cols))
    sets = sorted({r["eval_set"] for r in report["rows"]})
    t.caption = "top-1 by onnxruntime on: " + "; ".join(sets) + "".join(f"\n{n.split('; figures:')[0]}" for n in report.get("notes", []))
    console()(t)


def validate(report: dict) -> dict:
    """Minimal schema check of a report.json, so `zoo report` fails clearly on a foreign file."""
    if not isinstance(report, dict) or not {"environment", "rows"} <= set(report):
        raise ZooError("not a zoo report: expected keys 'environment' and 'rows'")
    need = {"model", "dataset", "precision", "provider", "latency_ms_p50", "eval_set"}
    for i, r in enumerate(report["rows"]):
        missing = need - set(r)
        if missing:
            raise ZooError(f"report row {i} lacks {sorted(missing)}; re-run zoo bench")
    return report


def write_reports(report: dict, out: Path) -> list[Path]:
    from zoo.train.checkpoint import atomic_write_bytes

    out = Path(out)
    files = {"report.json": json.dumps(report, indent=1, default=str) + "\n", "report.md": to_markdown(report),
             "report.csv": to_csv(report)}
    paths = []
    for name, text in files.items():
        atomic_write_bytes(out / name, text.encode())
        paths.append(out / name)
    return paths


def load_report(path: Path) -> dict:
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    try:
        return validate(json.loads(p.read_text()))
    except FileNotFoundError:
        raise ZooError(f"no report at {p}; run zoo bench first") from None
    except json.JSONDecodeError as e:
        raise ZooError(f"{p} is not valid JSON ({e.msg} at line {e.lineno})") from None
