"""`zoo bench`: for each target, export (cached by weights hash), then measure per provider and precision:
top-1 on the eval set, size, batch-1 latency percentiles, large-batch throughput, and PyTorch eager on the
same inputs. Rows are BenchRows; report.py renders them.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from zoo.bench.backends import NullBackend, OrtBackend, TorchBackend
from zoo.bench.measure import flags, latency_ms, other_load, throughput, top1
from zoo.core.cards import BenchRow
from zoo.core.env import environment as env_record
from zoo.core.errors import ZooError
from zoo.core.sources import Target, resolve
from zoo.data import DataOptions, DatasetSpec, EvalSet, get_dataset_spec, load_eval_set
from zoo.export import GateFailed, build_model, exported
from zoo.models.stats import macs_per_image, num_params

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
PRECISION_PROVIDERS = {"fp32": ("cpu", "cuda"), "int8": ("cpu",), "fp16": ("cuda",)}


@dataclass(frozen=True)
class BenchConfig:
    precisions: tuple[str, ...] = ("fp32",)  # fp32 | int8 (CPU) | fp16 (CUDA)
    providers: tuple[str, ...] = ()  # () = CPU always, CUDA when usable; named ones are demanded
    threads: int = os.cpu_count() or 1  # intra-op threads for onnxruntime and torch
    warmup: int = 20  # untimed batch-1 calls before timing
    runs: int = 200  # timed batch-1 calls (latency percentiles)
    batch: int = 256  # throughput batch size (images)
    batch_runs: int = 5  # timed calls at that batch
    eager: bool = True  # also time PyTorch eager on the same inputs
    null: bool = False  # add the null backend's rows (harness overhead)

    def validate(self) -> BenchConfig:
        for p in self.precisions:
            if p not in PRECISION_PROVIDERS:
                raise ZooError(f"unknown precision {p!r}; choose from {', '.join(PRECISION_PROVIDERS)}")
        for name, value in (("--repeat", self.runs), ("--batch", self.batch), ("--threads", self.threads)):
            if value < 1:
                raise ZooError(f"{name} must be >= 1, got {value}")
        if self.warmup < 0:
            raise ZooError(f"--warmup must be >= 0, got {self.warmup}")
        return self


def cuda_usable() -> bool:
    return "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available()


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
        self.labels = ev.labels.numpy() if ev.labels is not None else None
        self.x1 = self.images[:1] if self.images is not None else rng.standard_normal((1, *spec.input_shape),
                                                                                      np.float32)
        self.xb = (self.images[:batch] if self.images is not None and len(self.images) >= batch
                   else rng.standard_normal((batch, *spec.input_shape), np.float32))


def _timed(backend, inputs: _Inputs, cfg: BenchConfig) -> dict:
    load = other_load()
    lat = latency_ms(backend, inputs.x1, cfg.warmup, cfg.runs)
    load = max(load, other_load())
    return {"latency_ms_p50": lat["p50"], "latency_ms_p90": lat["p90"], "latency_ms_p99": lat["p99"],
            "latency_iqr_rel": lat["iqr_rel"], "load": load, "flags": flags(lat, load),
            "throughput_batch": cfg.batch, "throughput_img_s": throughput(backend, inputs.xb, cfg.warmup,
                                                                          cfg.batch_runs)}


def data_note(ev: EvalSet) -> str | None:
    """Said loudly (terminal and report header) when accuracy is not measured on the full test split."""
    if ev.origin == "test split":
        return None
    measured = "on zoo's shipped 1,000-image sample" if ev.images is not None else "not at all"
    return (f"{ev.dataset}: accuracy measured {measured}, not the test split: {ev.why}")


def bench_target(target: Target, cfg: BenchConfig, providers: list[str], data: DataOptions | None = None,
                 log=print, notes: list[str] | None = None) -> list[BenchRow]:
    """Rows for one target; with `notes`, a precision whose export fails its gate is noted and skipped."""
    data = data or DataOptions()
    spec = get_dataset_spec(target.dataset)
    ev = load_eval_set(spec, data)
    note = data_note(ev)
    if note and notes is not None and note not in notes:
        notes.insert(0, note)
        log(f"zoo: warning: {note}")
    inputs = _Inputs(spec, ev, cfg.batch)
    model = build_model(target.arch, target.dataset, None if target.onnx else resolve(target))
    base = {"arch": target.arch, "dataset": target.dataset, "params": num_params(model),
            "macs": macs_per_image(model, spec.input_shape), "eval_set": ev.label, "threads": cfg.threads}
    rows: list[BenchRow] = []
    for prov in providers:
        eager = None
        if cfg.eager and not target.onnx:
            eager = _timed(TorchBackend("cuda" if prov == "cuda" else "cpu", cfg.threads).load(model), inputs, cfg)
        for prec in cfg.precisions if not target.onnx else (None,):
            if prec is not None and prov not in PRECISION_PROVIDERS[prec]:
                continue
            try:
                path, meta = exported(target, prec, data, log)
            except GateFailed as e:  # one pair's failed gate must not sink the whole report
                if notes is None:
                    raise
                notes.append(f"{target.name} {prec}: not measured: {e.reason}")
                log(f"{notes[-1]}; figures: {e.figures}")
                continue
            row = _row(base, meta.get("precision", prec or "fp32"), prov, path, meta, cfg, inputs, rows, eager)
            rows.append(row)
            log(_line(row))
    if cfg.null:
        rows.append(BenchRow(**base, precision="-", provider="null",
                             **_timed(NullBackend(spec.num_classes).load(), inputs, cfg)))
    return rows


def _row(base: dict, prec: str, prov: str, path: Path, meta: dict, cfg: BenchConfig, inputs: _Inputs,
         earlier: list[BenchRow], eager: dict | None) -> BenchRow:
    be = OrtBackend(PROVIDERS[prov], cfg.threads).load(path)
    timed = _timed(be, inputs, cfg)
    acc = top1(be, inputs.images, inputs.labels) if inputs.images is not None else None
    ref = next((r.top1 for r in earlier if r.precision == "fp32" and r.provider == prov), None)
    ref = ref if ref is not None else next((r.top1 for r in earlier if r.precision == "fp32"), None)
    change = acc - ref if (acc is not None and ref is not None and prec != "fp32") else None
    extra = {}
    if eager is not None:
        extra = {"eager_latency_ms_p50": eager["latency_ms_p50"], "eager_throughput_img_s": eager["throughput_img_s"],
                 "speedup_vs_eager": eager["latency_ms_p50"] / timed["latency_ms_p50"]}
    return BenchRow(**base, precision=prec, provider=prov, weights=meta.get("weights", ""),
                    onnx_mb=path.stat().st_size / 1e6, top1=acc, top1_change=change, **timed, **extra)


def _line(r: BenchRow) -> str:
    acc = f"top-1 {r.top1:.2f}%" if r.top1 is not None else "top-1 n/a"
    return (f"{r.name} {r.precision} {r.provider}: {acc}, {r.onnx_mb:.2f} MB, p50 {r.latency_ms_p50:.3f} ms, "
            f"{r.throughput_img_s:.0f} img/s @{r.throughput_batch}")


def environment(cfg: BenchConfig, providers: list[str], load_before: float) -> dict:
    env = env_record("onnxruntime", "torch")
    return {**env, "cpu": env.pop("machine"), "gpu": torch.cuda.get_device_name(0) if "cuda" in providers else None,
            "providers": providers, "threads": cfg.threads, "config": asdict(cfg),
            "load_before": load_before, "load_after": other_load()}
