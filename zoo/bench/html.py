"""report.html: one self-contained page (no network): the environment, the loud notes, a sortable table of
every row, and the plots inline (base64 PNG). Click a column's header to sort by it (again: reverse);
`report.html#sort=top1` opens it sorted. On load the page counts the plots that decoded into
<body data-plots-rendered="N">, which a headless browser can read back (the test does)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from zoo.bench.report import (FLAGS_NOTE, cell, environment_line, method_line, recommended_lines, shown_columns,
                              sort_rows)
from zoo.core.io import atomic_write_bytes

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 8px; }
.env { color: #555; margin-bottom: 12px; }
.loud { background: #fff3cd; border: 1px solid #e0b000; padding: 8px 12px; margin: 8px 0; font-weight: 600; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; cursor: pointer; user-select: none; position: sticky; top: 0; }
th.sorted-asc::after { content: " \\25B2"; } th.sorted-desc::after { content: " \\25BC"; }
td.text, th.text { text-align: left; }
tr.flagged td { background: #fdecea; }
figure { display: inline-block; margin: 12px 12px 0 0; vertical-align: top; }
figure img { max-width: 900px; border: 1px solid #ddd; }
ul.notes { color: #444; }
"""

SCRIPT = """
function sortBy(th, desc) {
  const table = th.closest('table'), body = table.tBodies[0], i = th.cellIndex;
  const key = td => { const t = td.dataset.v ?? td.textContent; const n = parseFloat(t.replace(/[,%+]/g, ''));
                      return isNaN(n) ? t.toLowerCase() : n; };
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = key(a.cells[i]), y = key(b.cells[i]);  // numbers before text ("-"), whichever the direction
    if (typeof x !== typeof y) return typeof x === 'number' ? -1 : 1;
    const c = x < y ? -1 : x > y ? 1 : 0;
    return desc ? -c : c; });
  rows.forEach(r => body.appendChild(r));
  table.querySelectorAll('th').forEach(h => h.classList.remove('sorted-asc', 'sorted-desc'));
  th.classList.add(desc ? 'sorted-desc' : 'sorted-asc');
}
document.querySelectorAll('th').forEach(th => th.addEventListener('click',
  () => sortBy(th, th.classList.contains('sorted-asc'))));
window.addEventListener('load', () => {
  const m = location.hash.match(/sort=([a-z0-9_]+)(-desc)?/);
  if (m) { const th = document.querySelector(`th[data-key="${m[1]}"]`); if (th) sortBy(th, !!m[2]); }
  const imgs = Array.from(document.images);
  document.body.dataset.plotsRendered = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.plots = imgs.length;
});
"""

TEXT_KEYS = {"arch", "dataset", "precision", "provider", "runtime", "flags"}


def _esc(v) -> str:
    return html.escape(str(v), quote=True)


def _table(report: dict) -> str:
    cols = shown_columns(report["rows"])
    head = "".join(f'<th data-key="{k}" class="{"text" if k in TEXT_KEYS else ""}">{_esc(h)}</th>'
                   for k, h, _ in cols) + '<th data-key="eval_set" class="text">eval set</th>'
    body = []
    for r in sort_rows(report["rows"]):
        cells = []
        for k, _, f in cols:
            raw = getattr(r, k)
            sort_value = "" if raw is None or isinstance(raw, list) else f' data-v="{_esc(raw)}"'
            cells.append(f'<td class="{"text" if k in TEXT_KEYS else ""}"{sort_value}>{_esc(cell(r, k, f))}</td>')
        cells.append(f'<td class="text">{_esc(r.eval_set or (r.error and "not measured: " + r.error) or "-")}</td>')
        body.append(f'<tr class="{"flagged" if r.flags or r.error else ""}">{"".join(cells)}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figures(plots: list[Path]) -> str:
    out = []
    for p in plots:
        if Path(p).suffix.lower() != ".png" or not Path(p).is_file():
            continue
        data = base64.b64encode(Path(p).read_bytes()).decode()
        out.append(f'<figure><img alt="{_esc(Path(p).stem)}" src="data:image/png;base64,{data}">'
                   f"<figcaption>{_esc(Path(p).name)}</figcaption></figure>")
    return "".join(out)


def _recommended(report: dict) -> str:
    lines = recommended_lines(report)
    if not lines:
        return ""
    return "<h2>Recommended</h2><ul class='recommended'>" + "".join(f"<li>{_esc(x)}</li>" for x in lines) + "</ul>"


def to_html(report: dict, plots: list[Path]) -> str:
    env = report["environment"]
    notes = report.get("notes", [])
    loud = [n for n in notes if "accuracy measured" in n or "busy" in n]
    quiet = [n for n in notes if n not in loud]
    if any(r.flags for r in report["rows"]):
        quiet.append(FLAGS_NOTE)
    quiet += [f"{r.name}: not measured: {r.error}" for r in report["rows"] if r.error]
    cfg = env.get("config", {})
    env_line = f"{environment_line(env)}. {method_line(cfg)}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>zoo bench — {_esc(env.get('date'))}</title>"
            f"<style>{STYLE}</style></head><body>"
            f"<h1>zoo bench — {_esc(env.get('date'))}</h1><div class='env'>{_esc(env_line)}</div>"
            + "".join(f"<div class='loud'>{_esc(n)}</div>" for n in loud)
            + _recommended(report)
            + _table(report)
            + "<ul class='notes'>" + "".join(f"<li>{_esc(n)}</li>" for n in quiet) + "</ul>"
            + _figures(plots)
            + f"<script>{SCRIPT}</script></body></html>\n")


def write_html(report: dict, out: Path, plots: list[Path]) -> Path:
    path = Path(out) / "report.html"
    atomic_write_bytes(path, to_html(report, plots).encode())
    return path
