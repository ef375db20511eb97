"""`zoo bench`: for each model, export (cached by weights hash), then measure in onnxruntime per provider
and precision: accuracy on the test split, size, batch-1 latency percentiles, large-batch throughput, and
PyTorch eager on the same inputs. Rows are plain dicts; report.py renders them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from zoo.errors import ZooError

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


@dataclass
class Target:
    arch: str
    dataset: str
    weights: str | None = None  # run folder / file; None with pretrained=False means random init
    pretrained: bool = False
    onnx: str | None = None  # an already exported file (zoo export): benched as is, no eager comparison


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "zoo" / "exports"


def cuda_usable() -> bool:
    import onnxruntime as ort
    return "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available()


def resolve_providers(cfg: BenchConfig) -> tuple[list[str], list[str]]:
    """(providers to run, notes about the ones skipped); a demanded but missing provider is an error."""
    notes = []
    if cfg.providers:
        for p in cfg.providers:
            if p not in PROVIDERS:
                raise ZooError(f"unknown provider {p!r}; choose from {', '.join(PROVIDERS)}")
            if p == "cuda" and not cuda_usable():
                raise ZooError("--provider cuda asked for, but no CUDA device is usable (onnxruntime-gpu lists the "
                               "provider even without a GPU); drop --provider cuda to bench on the CPU")
        return list(cfg.providers), notes
    if cuda_usable():
        return ["cpu", "cuda"], notes
    notes.append("CUDA not measured: no usable GPU on this machine")
    return ["cpu"], notes


def check_onnx(path: Path) -> dict:
    """Metadata of a zoo-exported ONNX file; a corrupt or foreign file is a one-line error."""
    import onnx

    from zoo.export import read_metadata

    try:
        onnx.checker.check_model(str(path), full_check=True)
        meta = read_metadata(path)
    except FileNotFoundError:
        raise ZooError(f"ONNX file {path} not found") from None
    except Exception as e:
        raise ZooError(f"{path} is not a valid ONNX model ({str(e).splitlines()[0][:100]}); "
                       f"re-export it with zoo export") from None
    if not {"model", "dataset"} <= set(meta):
        raise ZooError(f"{path} has no zoo metadata (model, dataset); export it with zoo export")
    return meta


def exported(target: Target, precision: str, data_dir, verify, log=print) -> tuple[Path, dict]:
    """The ONNX file for target/precision, exported once per weights hash and reused."""
    from zoo.export import export, onnx_name
    from zoo.export.api import load_source
    from zoo.export.exporter import EXPORT_REVISION

    if target.onnx:
        return Path(target.onnx), check_onnx(Path(target.onnx))
    src = load_source(target.arch, target.dataset, target.weights, target.pretrained)
    key = src.card.get("sha256") or ("random-" + hashlib.sha256(f"{target.arch}.{target.dataset}".encode())
                                     .hexdigest())
    folder = cache_root() / f"{key[:16]}-r{EXPORT_REVISION}"  # an older exporter's files are not reused
    path = folder / onnx_name(target.arch, target.dataset, precision)
    if path.is_file():
        try:
            return path, check_onnx(path)
        except ZooError as e:  # a damaged cache entry is rebuilt, not fatal
            log(f"cached export damaged ({e}); exporting again")
            path.unlink()
    torch.manual_seed(0)  # random init is reproducible, so its cache key is stable
    export(target.arch, target.dataset, weights=target.weights, pretrained=target.pretrained, out=folder,
           precision=precision, data_dir=data_dir, verify=verify)
    return path, check_onnx(path)


def eval_set(spec, data_dir, verify) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """The full test split when present, else the sample shipped with zoo, else none (and why)."""
    from zoo.data import load_split, resolve_root
    from zoo.export import normalize

    try:
        x, y = load_split(spec.name, "test", data_dir, verify=verify)
        return normalize(x, spec), y.numpy(), f"test split ({len(y)})"
    except ZooError:
        pass
    from zoo.weights import eval_sample

    sample = eval_sample(spec.name)
    if sample is not None:
        x, y = sample
        return normalize(x, spec), y.numpy(), f"shipped sample ({len(y)})"
    return None, None, f"not measured: {spec.name} not found in {resolve_root(data_dir) / spec.folder}"


def bench_target(target: Target, cfg: BenchConfig, providers: list[str], data_dir=None, verify=None,
                 log=print, notes: list[str] | None = None) -> list[dict]:
    """Rows for one target; with `notes`, a precision whose export fails its gate is noted and skipped."""
    from zoo.bench.backends import NullBackend, OrtBackend, TorchBackend
    from zoo.bench.measure import latency_ms, throughput, top1
    from zoo.data import get_dataset_spec
    from zoo.export.api import build, load_source
    from zoo.models.stats import macs_per_image, num_params

    spec = get_dataset_spec(target.dataset)
    images, labels, eval_src = eval_set(spec, data_dir, verify)
    rng = np.random.default_rng(0)
    x1 = images[:1] if images is not None else rng.standard_normal((1, *spec.input_shape), np.float32)
    xb = (images[:cfg.batch] if images is not None and len(images) >= cfg.batch
          else rng.standard_normal((cfg.batch, *spec.input_shape), np.float32))
    model = build(target.arch, target.dataset, load_source(target.arch, target.dataset, target.weights,
                                                           target.pretrained) if not target.onnx else None)
    base = {"model": target.arch, "dataset": target.dataset, "params": num_params(model),
            "macs": macs_per_image(model, spec.input_shape), "eval_set": eval_src, "threads": cfg.threads}
    rows, fp32_top1 = [], {}
    eager = {}
    for prov in providers:
        if cfg.eager and not target.onnx:
            tb = TorchBackend("cuda" if prov == "cuda" else "cpu", cfg.threads).load(model)
            eager[prov] = (latency_ms(tb, x1, cfg.warmup, cfg.runs)["p50"], throughput(tb, xb, cfg.warmup,
                                                                                     cfg.batch_runs))
        for prec in cfg.precisions if not target.onnx else (None,):
            if prec is not None and prov not in PRECISION_PROVIDERS[prec]:
                continue
            try:
                path, meta = exported(target, prec, data_dir, verify, log)
            except ZooError as e:  # one pair's failed gate must not sink the whole report
                if notes is None:
                    raise
                notes.append(f"{target.arch}.{target.dataset} {prec}: not measured: {e}")
                log(notes[-1])
                continue
            prec = prec or meta.get("precision", "fp32")
            be = OrtBackend(PROVIDERS[prov], cfg.threads).load(path)
            lat = latency_ms(be, x1, cfg.warmup, cfg.runs)
            row = {**base, "precision": prec, "provider": prov, "weights": meta.get("weights", ""),
                   "onnx_mb": path.stat().st_size / 1e6, "latency_ms_p50": lat["p50"], "latency_ms_p90": lat["p90"],
                   "latency_ms_p99": lat["p99"], "throughput_batch": cfg.batch,
                   "throughput_img_s": throughput(be, xb, cfg.warmup, cfg.batch_runs),
                   "top1": top1(be, images, labels) if images is not None else None}
            if prec == "fp32":
                fp32_top1[prov] = row["top1"]
            ref = fp32_top1.get(prov, fp32_top1.get("cpu"))
            row["top1_change"] = (row["top1"] - ref) if (row["top1"] is not None and ref is not None
                                                          and prec != "fp32") else None
            if prov in eager:
                row["eager_latency_ms_p50"], row["eager_throughput_img_s"] = eager[prov]
                row["speedup_vs_eager"] = eager[prov][0] / lat["p50"]
            rows.append(row)
            log(_line(row))
    if cfg.null:
        nb = NullBackend(spec.num_classes)
        lat = latency_ms(nb, x1, cfg.warmup, cfg.runs)
        rows.append({**base, "precision": "-", "provider": "null", "weights": "", "onnx_mb": None,
                     "latency_ms_p50": lat["p50"], "latency_ms_p90": lat["p90"], "latency_ms_p99": lat["p99"],
                     "throughput_batch": cfg.batch, "throughput_img_s": throughput(nb, xb, cfg.warmup, cfg.batch_runs),
                     "top1": None, "top1_change": None})
    return rows


def _line(r: dict) -> str:
    acc = f"top-1 {r['top1']:.2f}%" if r["top1"] is not None else "top-1 n/a"
    return (f"{r['model']}.{r['dataset']} {r['precision']} {r['provider']}: {acc}, {r['onnx_mb']:.2f} MB, "
            f"p50 {r['latency_ms_p50']:.3f} ms, {r['throughput_img_s']:.0f} img/s @{r['throughput_batch']}")


def environment(cfg: BenchConfig, providers: list[str]) -> dict:
    import datetime as dt
    import platform
    import subprocess

    import onnxruntime as ort

    from zoo import __version__
    from zoo.train.checkpoint import machine

    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        sha = None
    gpu = torch.cuda.get_device_name(0) if "cuda" in providers else None
    return {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cpu": machine(), "gpu": gpu,
            "providers": providers, "threads": cfg.threads, "python": platform.python_version(),
            "onnxruntime": ort.__version__, "torch": torch.__version__, "zoo": __version__, "git_sha": sha,
            "config": asdict(cfg)}
