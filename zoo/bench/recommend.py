"""Which runtime and precision to deploy, per model, from one bench's rows: the fastest at batch 1 (latency)
and at the largest batch (throughput) among the rows that keep accuracy and were timed cleanly.

    rec = recommend(rows)["resnet20.cifar10"]
    rec["latency"]     # {"runtime": "openvino (bf16)", "precision": "int8", "p50_ms": 0.42, "speedup": 1.8}
    rec["throughput"]  # {"runtime": ..., "img_s": 8832, "batch": 256, "speedup": 5.1}
    rec["passed_over"] # ["opencv fp32: ... faster but ...", ...]: why a faster row was not taken

A row is eligible when it runs in a runtime `zoo predict` can use, loses at most MAX_LOSS top-1 points against
PyTorch fp32 on the same images, agrees with it on at least MIN_AGREEMENT % of them, and carries no `busy` flag
(nor, for the batch-1 choice, a `noisy` one: that flag judges the batch-1 calls). Speed-ups are against
onnxruntime fp32 in the same run (the default zoo predict would use).
"""

from __future__ import annotations

from zoo.core.cards import BenchRow
from zoo.core.deploy import runtime_name
from zoo.core.runtimes import FILE_RUNTIMES

MAX_LOSS = 0.3  # top-1 points a deployable row may lose against PyTorch fp32
MIN_AGREEMENT = 99.0  # % of images whose top-1 must equal PyTorch fp32's
DEPLOYABLE = FILE_RUNTIMES  # what zoo predict runs (torch-compile is PyTorch itself)


def why_not(row: BenchRow, latency: bool = True, busy_ok: bool = False) -> str | None:
    """Why a row may not be deployed, or None when it may. `noisy` is a verdict on the row's batch-1 calls, so
    it bars the row from the batch-1 (latency) choice only; `busy` bars it from both, unless `busy_ok`."""
    if row.error or row.latency_ms_p50 is None:
        return "not measured"
    if runtime_name(row.runtime) not in DEPLOYABLE:
        return "not a runtime zoo predict runs"
    loss = row.torch_top1_change if row.torch_top1_change is not None else (row.top1_change or 0.0)
    if round(loss, 6) < -MAX_LOSS:  # 90.1 - 90.4 is -0.30000000000001 in floats: exactly the limit, allowed
        return f"loses {-loss:.2f} pt of top-1 (at most {MAX_LOSS})"
    if row.torch_agreement is not None and round(row.torch_agreement, 6) < MIN_AGREEMENT:
        return f"agrees with PyTorch on {row.torch_agreement:.2f}% of images (at least {MIN_AGREEMENT:g}%)"
    barred = (("noisy",) if latency else ()) + (() if busy_ok else ("busy",))
    for flag in row.flags:
        if flag.split(" ")[0] in barred:
            return f"timed {flag.split(' (')[0]} ({flag.partition('(')[2].rstrip(')')})"
    return None


def _label(r: BenchRow) -> str:
    return f"{r.runtime} {r.precision}"


def _choice(rows: list[BenchRow], base: BenchRow | None, latency: bool,
            busy_ok: bool = False) -> tuple[BenchRow | None, list[str]]:
    """The fastest eligible row (by p50 at batch 1, or by img/s at the largest batch) and why each faster
    row was passed over."""
    def score(r: BenchRow) -> tuple:  # faster first; on a tie, the default (onnxruntime fp32) first
        return (-r.latency_ms_p50 if latency else r.throughput_img_s or 0.0, r is base)

    measured = sorted((r for r in rows if r.latency_ms_p50 is not None), key=score, reverse=True)
    best = next((r for r in measured if why_not(r, latency, busy_ok) is None), None)
    if best is None:
        return None, []
    if base in measured and measured.index(best) > measured.index(base) and why_not(base, False, True) is None:
        # the default was barred only for its timing (noisy, busy) and every row left was slower than it in the
        # same interleaved rounds: never recommend a slower runtime than zoo predict's default
        best = base
    return best, [f"{_label(r)} ({'batch 1' if latency else f'batch {r.throughput_batch}'}): "
                  f"{why_not(r, latency, busy_ok)}" for r in measured[:measured.index(best)]]


def _describe(best: BenchRow | None, base: BenchRow | None, latency: bool) -> dict | None:
    """A choice as remembered and shown: the row's runtime and precision, its figures, its speed-ups over
    onnxruntime fp32 and over PyTorch eager at that batch."""
    if best is None:
        return None
    if latency:
        over_base = base.latency_ms_p50 / best.latency_ms_p50 if base else None
        over_eager = best.eager_latency_ms_p50 / best.latency_ms_p50 if best.eager_latency_ms_p50 else None
    else:
        over_base = best.throughput_img_s / base.throughput_img_s if base and base.throughput_img_s else None
        over_eager = best.throughput_img_s / best.eager_throughput_img_s if best.eager_throughput_img_s else None
    return {"runtime": best.runtime, "precision": best.precision, "p50_ms": best.latency_ms_p50,
            "img_s": best.throughput_img_s, "batch": best.throughput_batch, "speedup": over_base,
            "speedup_vs_eager": over_eager}


def recommend(rows: list[BenchRow], accept_busy: bool = False) -> dict[str, dict]:
    """{"arch.dataset": recommendation} for every model benched in more than one runtime or precision.

    Rows timed while other processes used the CPU (`busy`) are not taken at their word, but the runtimes were
    timed in interleaved rounds (zoo.bench.measure), so a slower machine slowed them alike and their order
    holds: when no clean row is left, the choice is made from the busy rows and marked `provisional` (a bench on
    a quieter machine replaces it; zoo.core.deploy.remember). `accept_busy` takes busy rows as clean."""
    out = {}
    for name in dict.fromkeys(r.name for r in rows if r.provider == "cpu"):
        mine = [r for r in rows if r.name == name and r.provider == "cpu" and r.runtime != "null"]
        if len({(r.runtime, r.precision) for r in mine}) < 2:
            continue  # one row: nothing to choose between
        rec = _recommend_one(mine, accept_busy)
        if rec.get("none") and not accept_busy:
            busy = _recommend_one(mine, True)
            if busy.get("none") is None:
                load = max((r.load or 0.0 for r in mine), default=0.0)
                rec = {**busy, "provisional": f"timed while other processes used up to {load:.0%} of the CPU; "
                       f"chosen by the runtimes' ratios in interleaved rounds, and replaced by the next bench on a "
                       f"quieter machine"}
        out[name] = rec
    return out


def _recommend_one(mine: list[BenchRow], busy_ok: bool) -> dict:
    base = next((r for r in mine if r.runtime == "onnxruntime" and r.precision == "fp32"), None)
    fast, passed_l = _choice(mine, base, latency=True, busy_ok=busy_ok)
    many, passed_t = _choice(mine, base, latency=False, busy_ok=busy_ok)
    latency = fast or many  # every batch-1 figure noisy: the throughput choice serves a few images too
    rec = {"latency": _describe(latency, base, True), "throughput": _describe(many or fast, base, False),
           "passed_over": list(dict.fromkeys(passed_l + passed_t)), "weights": base.weights if base else None,
           "weights_sha256": base.weights_sha256 if base else None,
           "export_revision": base.export_revision if base else None, "tta": base.tta if base else None}
    if fast is None:
        rec["passed_over"].append("batch 1: every row's calls were noisy; its choice is the throughput one")
    if many is None:
        rec["none"] = "no row keeps accuracy and was timed cleanly: " + "; ".join(
            f"{_label(r)}: {why_not(r, False, busy_ok)}" for r in mine)
    return rec


def line(name: str, rec: dict) -> str:
    """One line per model, for the terminal and the reports."""
    if rec.get("none"):
        return f"{name}: no recommendation ({rec['none']})"

    def part(c: dict, latency: bool) -> str:
        value = c.get("p50_ms" if latency else "img_s")
        fig = "-" if value is None else f"{value:.3f} ms" if latency else f"{value:,.0f} img/s"
        vs = f", {c['speedup']:.2f}x onnxruntime fp32" if c.get("speedup") else ""
        return f"{c['runtime']} {c['precision']} ({fig}{vs})"

    said = f"{name}: batch 1 {part(rec['latency'], True)}; batch {rec['throughput'].get('batch', '?')} " \
           f"{part(rec['throughput'], False)}"
    if rec.get("provisional"):
        said += f" (provisional: {rec['provisional']})"
    return said + (f"; passed over: {'; '.join(rec['passed_over'])}" if rec["passed_over"] else "")


def listing(rows: list[dict]) -> list[str]:
    """`zoo list --deploy`'s lines: the remembered recommendations (zoo.core.deploy.entries), where each was
    measured, and why one is not used here; each row holds its key."""
    from zoo.core.deploy import cache_file, machine_id, unused_here

    here = machine_id()
    lines = [f"deployment recommendations ({len(rows)}) in {cache_file()}; this machine: {here}"]
    for rec in rows:
        why = unused_here(rec["key"])
        name = rec.get("model", "?") + (f" (tta {rec['tta']})" if rec.get("tta") else "") + \
            (f" [{rec['weights']}]" if isinstance(rec.get("weights"), str) and rec["weights"] else "")
        lines.append(f"- {line(name, rec)}  ({rec.get('measured', '')[:16]}){f'  [{why}]' if why else ''}")
    return lines
