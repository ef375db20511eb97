"""`zoo bench`: for each target, export (cached by weights hash), then measure per provider and precision:
top-1 on the eval set, size, batch-1 latency percentiles, large-batch throughput, and PyTorch eager on the
same inputs. Rows are BenchRows; report.py renders them. An exported file (`zoo bench --onnx`) is measured
without torch or onnx where they are not installed (the light install): PyTorch and export are imported only
for weights.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from zoo.bench.backends import NullBackend, OrtBackend, TorchBackend, TorchCompileBackend, missing_runtime
from zoo.bench.options import BenchOptions
from zoo.core.options import split
from zoo.bench.measure import BUSY, ROUNDS, flags, latency_rounds, predictions, throughput_rounds
from zoo.core.cards import BenchRow, graph_tta
from zoo.core.tta import Tta
from zoo.core.env import OthersWatch, PeakMemory, environment as env_record, other_load
from zoo.core.errors import ZooError, plural
from zoo.core.memory import keep_freed_memory
from zoo.core.backends import file_backends
from zoo.core.runtimes import RUNTIMES
from zoo.core.sessions import cuda_device, file_metadata
from zoo.core.sources import Target, resolve
from zoo.data import DataOptions, DatasetSpec, EvalSet, get_dataset_spec, load_eval_set

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
PRECISION_PROVIDERS = {"fp32": ("cpu", "cuda"), "int8": ("cpu",), "fp16": ("cuda",)}


@dataclass(frozen=True)
class BenchConfig:
    precisions: tuple[str, ...] = ("fp32",)  # fp32 | int8 (CPU) | fp16 (CUDA)
    providers: tuple[str, ...] = ()  # () = CPU always, CUDA when usable; named ones are demanded
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)  # intra-op threads, onnxruntime and torch
    warmup: int = BenchOptions.warmup  # untimed batch-1 calls before timing
    runs: int | None = None  # timed batch-1 calls (latency percentiles); None: measure.latency_calls decides
    batch: int = max(BenchOptions.batch)  # throughput batch size (images)
    sweep: tuple[int, ...] = ()  # more batch sizes whose throughput each row also records (--batch 1,16,64,256)
    batch_runs: int = 5  # timed calls at that batch
    eager: bool = True  # also time PyTorch eager on the same inputs
    null: bool = False  # add the null backend's rows (harness overhead)
    runtimes: tuple[str, ...] = ("onnxruntime",)  # + openvino, opencv, torch-compile (CPU): rows of their own

    def validate(self) -> BenchConfig:
        for p in self.precisions:
            if p not in PRECISION_PROVIDERS:
                raise ZooError(f"unknown precision {p!r}; choose from {', '.join(PRECISION_PROVIDERS)}")
        for name, value in (("--repeat", 1 if self.runs is None else self.runs),
                            ("--batch", min((self.batch, *self.sweep))), ("--threads", self.threads)):
            if value < 1:
                raise ZooError(f"{name} must be >= 1, got {value}")
        if self.warmup < 0:
            raise ZooError(f"--warmup must be >= 0, got {self.warmup}")
        for r in self.runtimes:
            if r not in RUNTIMES:
                raise ZooError(f"unknown runtime {r!r}; choose from {', '.join(RUNTIMES)}")
            if missing_runtime(r):  # asked for by name: an error, not a note
                raise ZooError(f"--runtime {r}: {missing_runtime(r)}")
        return self


def bench_config(o: BenchOptions) -> BenchConfig:
    """The options as the harness's BenchConfig, validated (an unknown precision, runtime or provider is said
    here)."""
    sizes = [o.batch] if isinstance(o.batch, int) else sorted(set(o.batch))
    cores = {"threads": o.threads} if o.threads else {}  # else BenchConfig's: all cores
    return BenchConfig(precisions=split(o.precision) or ("fp32",), providers=split(o.provider), warmup=o.warmup,
                       runs=o.repeat, batch=max(sizes), sweep=tuple(sizes) if len(sizes) > 1 else (), eager=o.eager,
                       null=o.null, runtimes=o.runtimes(), **cores).validate()


def cuda_usable() -> bool:
    return cuda_device() is not None


def resolve_providers(cfg: BenchConfig) -> tuple[list[str], list[str]]:
    """(providers to run, notes about the ones skipped); a demanded but missing provider is an error."""
    if cfg.providers:
        for p in cfg.providers:
            if p not in PROVIDERS:
                raise ZooError(f"unknown provider {p!r}; choose from {', '.join(PROVIDERS)}")
            if p == "cuda" and not cuda_usable():
                raise ZooError("--provider cuda asked for, but no CUDA device is usable (onnxruntime-gpu lists the "
                               "provider even without a GPU); drop --provider cuda to bench on the CPU")
        return list(cfg.providers), []
    if cuda_usable():
        return ["cpu", "cuda"], []
    return ["cpu"], ["CUDA not measured: no usable GPU on this machine"]


class _Inputs:
    """What every backend of one target is measured on: a batch-1 input, a throughput batch, the eval set."""

    def __init__(self, spec: DatasetSpec, ev: EvalSet, batch: int):
        rng = np.random.default_rng(0)
        self.images = ev.normalized(spec) if ev.images is not None else None
        self.labels = ev.labels
        self.x1 = self.images[:1] if self.images is not None else rng.standard_normal((1, *spec.input_shape),
                                                                                      np.float32)
        self.xb = (self.images[:batch] if self.images is not None and len(self.images) >= batch
                   else rng.standard_normal((batch, *spec.input_shape), np.float32))
        self.reference = None  # PyTorch fp32 eager's top-1 per eval image, when it can be had


@dataclass
class _Loaded:
    """A runtime ready to be timed: what it runs, and what loading it and reading the eval set through it gave."""
    prec: str
    runtime: str
    backend: object
    source: object  # the exported file, or the PyTorch model
    meta: dict
    load_s: float = 0.0
    peak_mb: float | None = None  # resident memory loading and running it added, at its peak
    pred: np.ndarray | None = None  # top-1 per eval image
    size_mb: float | None = None  # the exported file's size when it was loaded (it may be gone by the row)


def _timed(loaded: list[_Loaded], inputs: _Inputs, cfg: BenchConfig) -> list[dict]:
    """Latency and throughput of every loaded runtime, timed together in interleaved rounds (measure.py)."""
    backends = [m.backend for m in loaded]
    with OthersWatch(min_window_s=0.5) as others:  # exact over the timing window, unlike the 1-minute load average
        lats = latency_rounds(backends, inputs.x1, cfg.warmup, cfg.runs)
    by_batch = {str(b): throughput_rounds(backends, inputs.xb[:b], cfg.warmup, cfg.batch_runs)
                for b in sorted(set(cfg.sweep) - {cfg.batch})}
    bigs = throughput_rounds(backends, inputs.xb, cfg.warmup, cfg.batch_runs)
    return [{"latency_ms_p50": lat["p50"], "latency_ms_p90": lat["p90"], "latency_ms_p99": lat["p99"],
             "latency_iqr_rel": lat["iqr_rel"], "latency_calls": lat["calls"], "load": others.share,
             "throughput_batch": cfg.batch, "throughput_img_s": big,
             "throughput_by_batch": {**{b: v[i] for b, v in by_batch.items()}, str(cfg.batch): big} if by_batch else {}}
            for i, (lat, big) in enumerate(zip(lats, bigs))]


def data_note(ev: EvalSet) -> str | None:
    """Said loudly (terminal and report header) when accuracy is not measured on the full test split."""
    if ev.origin == "test split":
        return None
    if ev.origin == "kept sample":
        return f"{ev.dataset}: accuracy measured on {ev.what}: {ev.why}"
    measured = "on zoo's shipped 1,000-image sample" if ev.images is not None else "not at all"
    return (f"{ev.dataset}: accuracy measured {measured}, not the test split: {ev.why}")


def bench_target(target: Target, cfg: BenchConfig, providers: list[str], data: DataOptions | None = None,
                 log=print, notes: list[str] | None = None, phase=lambda what: None) -> list[BenchRow]:
    """Rows for one target; with `notes`, a precision whose export fails its gate is noted and skipped.
    `phase` is told what is being done (export, accuracy through a runtime, timing) as it starts."""
    data = data or DataOptions()
    keep_freed_memory()  # eager as PyTorch's CPU guide runs it: the file runtimes' arenas keep theirs (core/memory.py)
    spec = get_dataset_spec(target.dataset, target.weights)
    ev = load_eval_set(spec, data)
    note = data_note(ev)
    if note and notes is not None and note not in notes:
        notes.insert(0, note)
        log(f"zoo: warning: {note}")
    inputs = _Inputs(spec, ev, cfg.batch)
    meta = file_metadata(target.onnx) if target.onnx else {}
    model, (params, macs) = _model_and_counts(target, meta, spec)
    base = {"arch": _label(target, meta), "dataset": target.dataset, "params": params, "macs": macs,
            "eval_set": ev.label, "threads": cfg.threads}
    # PyTorch fp32 eager's answers: what every row's accuracy is compared with (not for a bare .onnx file, whose
    # weights PyTorch does not have).
    if not target.onnx and inputs.images is not None:
        from zoo.export import torch_logits

        phase(f"accuracy: PyTorch eager, {plural(len(inputs.images), 'image')}")
        TorchBackend("cpu", cfg.threads).load(model)  # eval mode, the threads every runtime gets
        inputs.reference = torch_logits(model, inputs.images).argmax(1)  # the export gate reuses these logits
    rows: list[BenchRow] = []
    for prov in providers:
        loaded = []
        for prec, runtime, backend, source, meta in _runtimes(target, cfg, prov, model, data, log, notes, phase,
                                                              meta):
            try:
                loaded.append(_load(prec, runtime, backend, source, meta, inputs, phase))
            except ZooError as e:  # a runtime that cannot read this file: a note, the others still run
                if notes is None:
                    raise
                notes.append(f"{target.name} {prec} {runtime}: not measured: {e}")
                log(f"zoo: {notes[-1]}")
        log(f"{target.name} {prov}: timing {plural(len(loaded), 'runtime')} in {ROUNDS} interleaved rounds")
        phase(f"timing {plural(len(loaded), 'runtime')}")
        timed = _timed(loaded, inputs, cfg)
        eager = next((t for m, t in zip(loaded, timed) if m.runtime == "torch-eager"), None)
        for m, t in zip(loaded, timed):
            if m.runtime != "torch-eager":  # eager is the reference each onnxruntime row is compared with
                rows.append(_row(base, prov, m, t, inputs, rows, eager if m.runtime == "onnxruntime" else None))
                log(_line(rows[-1]))
        for m in reversed(loaded):  # last loaded first (OpenVinoBackend.close says why)
            m.backend.close()
    if cfg.null:
        null = _timed([_Loaded("-", "null", NullBackend(spec.num_classes).load(), None, {})], inputs, cfg)[0]
        rows.append(BenchRow(**base, precision="-", provider="null", runtime="null", **null,
                             flags=flags({"iqr_rel": null["latency_iqr_rel"]}, null["load"])))
    return rows


def _model_and_counts(target: Target, meta: dict, spec: DatasetSpec) -> tuple[object, tuple[int | None, int | None]]:
    """(the PyTorch model, or None for an exported file; (parameters, MACs per image)). A file's counts are read
    from its metadata (exports write them); else counted on its architecture built with the graph's own
    test-time augmentation, so MACs count what the file runs per image (needs torch: without it, unknown). A
    model from weights is wrapped as its recipe says."""
    if target.onnx:
        counted = [meta.get(k) for k in ("params", "macs")]
        if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counted):
            return None, tuple(counted)
    try:
        from zoo.export import build_model
        from zoo.models.stats import macs_per_image, num_params
    except ImportError:  # the light install measures the file; what it counts needs the architecture
        return None, (None, None)
    model = build_model(target.arch, target.dataset, None if target.onnx else resolve(target),
                        graph_tta(meta) if target.onnx else None)
    return (None if target.onnx else model), (num_params(model), macs_per_image(model, spec.input_shape))


def _label(target: Target, meta: dict) -> str:
    """The model's name in the rows: an .onnx file exported with another test-time augmentation than its
    recipe's (zoo export --tta) is named for it, so its rows are told apart from the recipe's file."""
    if "recipe_tta" not in meta:
        return target.arch
    return f"{target.arch} (tta {Tta.of(graph_tta(meta)).label})"


def _runtimes(target: Target, cfg: BenchConfig, prov: str, model, data: DataOptions, log, notes, phase,
              file_meta: dict):
    """(precision, runtime, backend, what it runs, metadata) for every runtime measured at this provider: PyTorch
    eager (the reference), each precision's exported file (or the file given, with `file_meta`) through each
    file runtime, torch.compile."""
    device = "cuda" if prov == "cuda" else "cpu"
    if cfg.eager and not target.onnx:
        yield "fp32", "torch-eager", TorchBackend(device, cfg.threads), model, {"weights": "PyTorch model"}
    for prec in cfg.precisions if not target.onnx else (None,):
        if prec is not None and prov not in PRECISION_PROVIDERS[prec]:
            continue
        made = (Path(target.onnx), file_meta) if target.onnx else _exported(target, prec, data, log, notes, phase)
        if made is None:
            continue
        path, meta = made
        prec = meta.get("precision", prec or "fp32")
        for runtime, backend in _backends(cfg, prov, prec):
            yield prec, runtime, backend, path, meta
    if "torch-compile" in cfg.runtimes and not target.onnx and prov == "cpu":
        yield "fp32", "torch-compile", TorchCompileBackend("cpu", cfg.threads), model, {"weights": "PyTorch model"}


def _exported(target: Target, prec: str, data: DataOptions, log, notes, phase) -> tuple[Path, dict] | None:
    """The target's exported file at `prec` and its metadata (exported once, then cached); None when its gate
    failed and `notes` takes the reason (one pair's failed gate must not sink the whole report)."""
    from zoo.export import GateFailed, exported

    phase(f"export {prec}, or its cached file")
    try:
        return exported(target, prec, data, log)
    except GateFailed as e:
        if notes is None:
            raise
        notes.append(f"{target.name} {prec}: not measured: {e.reason}")
        log(f"{notes[-1]}; figures: {e.figures}")
        return None


def _load(prec: str, runtime: str, backend, source, meta: dict, inputs: _Inputs, phase) -> _Loaded:
    """Load the runtime (torch.compile's compilation counted as load time) and read the eval set through it."""
    reads = inputs.images is not None and runtime != "torch-eager"  # eager's answers are the reference, read before
    phase(f"{prec} {runtime}: "
          + (f"loading, then accuracy on {plural(len(inputs.images), 'image')}" if reads else "loading"))
    size_mb = None
    if isinstance(source, Path):
        try:
            size_mb = source.stat().st_size / 1e6
        except OSError as e:  # removed since it was exported (a cache cleaned by hand): a note, not the report
            raise ZooError(f"{source} is gone ({e.strerror}); run zoo bench again to export it again") from None
    with PeakMemory() as mem:  # what loading and running this runtime added, at its peak
        t0 = time.perf_counter()
        backend.load(source)
        if runtime == "torch-compile":
            backend.predict(inputs.x1)
        load_s = time.perf_counter() - t0
        pred = predictions(backend, inputs.images) if reads else None
    return _Loaded(prec, runtime, backend, source, meta, load_s, mem.added_mb, pred, size_mb)


def _backends(cfg: BenchConfig, prov: str, prec: str):
    """(runtime, backend) pairs that run the exported file at this provider and precision."""
    yield "onnxruntime", OrtBackend(PROVIDERS[prov], cfg.threads)
    if prov != "cpu":
        return
    for name in cfg.runtimes:  # the others of zoo.core.runtimes.RUNTIMES that read the file, as asked
        if name != "onnxruntime" and RUNTIMES[name].reads_onnx:
            yield from ((name, b) for b in file_backends(name, prec, cfg.threads))


def _row(base: dict, prov: str, m: _Loaded, timed: dict, inputs: _Inputs, earlier: list[BenchRow],
         eager: dict | None) -> BenchRow:
    acc = float(100.0 * (m.pred == inputs.labels).mean()) if m.pred is not None else None
    same = [r.top1 for r in earlier if r.precision == "fp32" and r.provider == prov and r.runtime == "onnxruntime"]
    ref = same[0] if same else next((r.top1 for r in earlier if r.precision == "fp32"), None)
    extra = {}
    if inputs.reference is not None and m.pred is not None:
        extra = {"torch_agreement": float(100.0 * (m.pred == inputs.reference).mean()),
                 "torch_top1_change": acc - float(100.0 * (inputs.reference == inputs.labels).mean())}
    if eager is not None:
        extra |= {"eager_latency_ms_p50": eager["latency_ms_p50"], "eager_throughput_img_s": eager["throughput_img_s"],
                  "speedup_vs_eager": eager["latency_ms_p50"] / timed["latency_ms_p50"]}
    found = flags({"iqr_rel": timed["latency_iqr_rel"]}, timed["load"], extra.get("torch_top1_change"))
    if eager is not None and eager["load"] >= BUSY:  # the reference was timed under load: ×eager is no figure
        found.append(f"eager-busy (others used {eager['load']:.0%} of the CPU while eager was timed)")
    timed = {**timed, "flags": found}
    label = getattr(m.backend, "name", m.runtime) if m.runtime == "openvino" else m.runtime
    return BenchRow(**base, precision=m.prec, provider=prov, runtime=label, weights=m.meta.get("weights", ""),
                    weights_sha256=m.meta.get("weights_sha256") or None, export_revision=m.meta.get("export_revision"),
                    tta=graph_tta(m.meta), onnx_mb=m.size_mb, top1=acc,
                    top1_change=acc - ref if (acc is not None and ref is not None and m.prec != "fp32") else None,
                    load_s=m.load_s, peak_mb=m.peak_mb, **timed, **extra)


def _line(r: BenchRow) -> str:
    acc = f"top-1 {r.top1:.2f}%" if r.top1 is not None else "top-1 n/a"
    size = f"{r.onnx_mb:.2f} MB, " if r.onnx_mb is not None else ""
    return (f"{r.name} {r.precision} {r.provider} {r.runtime}: {acc}, {size}p50 {r.latency_ms_p50:.3f} ms, "
            f"{r.throughput_img_s:.0f} img/s @{r.throughput_batch}")


def environment(cfg: BenchConfig, providers: list[str], load_before: float) -> dict:
    env = env_record("onnxruntime", "torch")
    return {**env, "cpu": env.pop("machine"), "gpu": cuda_device() if "cuda" in providers else None,
            "providers": providers, "threads": cfg.threads, "config": asdict(cfg),
            "freed_memory_kept": keep_freed_memory(),
            "load_before": load_before, "load_after": other_load()}
