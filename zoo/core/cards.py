"""Typed cards, one key vocabulary: `arch`, `dataset`, `sha256`, `num_params`, `recipe`, `top1`.

A RunCard describes one checkpoint of a training run (top-1 by PyTorch on the test split, at that epoch);
a WeightsCard one shipped weights file (top-1 by onnxruntime on the full test split); a BenchRow one
measured row of a report. Each has a schema version and to_json / from_json; from_json accepts the keys
older zoo versions wrote (a run card's `model` and top-level `torch`/`zoo`/`machine`/`date`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from zoo.core.tta import Tta
from zoo.core.errors import REMAKE, ZooError

RUN_CARD_SCHEMA = 2  # 1: dict cards with `model` and the environment at the top level
BENCH_ROW_SCHEMA = 6  # 2: noise, load and flags; 3: runtime, agreement with PyTorch, load time; 4: batch sweep;
# 5: how many calls the latency percentiles rest on; 6: the test-time augmentation inside the graph


SEAL = "card_sha256"  # a card's own checksum: the card is what names the other files' hashes


def _digest(data: dict) -> str:
    body = {k: v for k, v in data.items() if k != SEAL}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def sealed(data: dict) -> dict:
    """`data` with its checksum, for writing."""
    return {**data, SEAL: _digest(data)}


def check_seal(data, source: str) -> None:
    """A card that carries a checksum must match it (a flipped byte can leave valid JSON with other values)."""
    if isinstance(data, dict) and SEAL in data and data[SEAL] != _digest(data):
        raise ZooError(f"{source} is damaged (its content does not match its checksum); {REMAKE}")


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _build(cls, data: dict, source: str):
    if not isinstance(data, dict):
        raise ZooError(f"{source} is not a zoo card (expected a JSON object); {REMAKE}")
    check_seal(data, source)
    if "arch" not in data and "model" in data:  # the older vocabulary
        data = {**data, "arch": data["model"]}
    missing = {f.name for f in dataclasses.fields(cls)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING} - set(data)
    if missing:
        raise ZooError(f"{source} is not a complete {cls.__name__} (lacks {', '.join(sorted(missing))}); {REMAKE}")
    return cls(**{k: v for k, v in data.items() if k in _fields(cls)})


class _Card:
    """What every card shares: its pair's name and the JSON round trip (older keys accepted on read)."""
    arch: str
    dataset: str

    @property
    def name(self) -> str:
        return f"{self.arch}.{self.dataset}"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict, source: str | None = None):
        return _build(cls, cls._upgrade(data) if isinstance(data, dict) else data, source or "card")

    @staticmethod
    def _upgrade(data: dict) -> dict:
        return data


@dataclass(frozen=True)
class RunCard(_Card):
    arch: str
    dataset: str
    epoch: int  # epochs finished when this checkpoint was taken
    step: int  # optimizer steps into the next epoch (0: an epoch-end checkpoint)
    sha256: str  # of the checkpoint's model.safetensors
    num_params: int
    metrics: dict = field(default_factory=dict)  # the epoch's metrics.jsonl line ({} mid-epoch)
    recipe: dict = field(default_factory=dict)  # TrainConfig.to_dict()
    runtime: dict = field(default_factory=dict)  # device, precision, compile, channels_last, world_size
    init: dict | None = None  # fine-tuning source: arg, source, dataset, sha256, reinitialized
    env: dict = field(default_factory=dict)  # torch, zoo, machine, date
    state_sha256: str = ""  # of the checkpoint's state.pt (optimizer, RNG, running sums)
    dataset_spec: dict | None = None  # a dataset given as a path: its whole spec (zoo.data.resolve.spec_record)
    schema: int = RUN_CARD_SCHEMA

    @property
    def top1(self) -> float | None:
        return self.metrics.get("test_acc")

    @staticmethod
    def _upgrade(data: dict) -> dict:
        if "schema" in data:
            return data
        # schema 1: the environment at the top level
        return {**data, "env": {k: data[k] for k in ("torch", "zoo", "machine", "date") if k in data}, "schema": 1}


@dataclass(frozen=True)
class WeightsCard(_Card):
    arch: str
    dataset: str
    file: str  # file name inside weights/, "<arch>.<dataset>-<sha256[:8]>.safetensors"
    sha256: str
    num_params: int
    size_mb: float
    metrics: dict = field(default_factory=dict)  # {"top1": 91.3, "eval_set": "... onnxruntime CPU fp32", ...}
    recipe: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)  # wall time, machine, torch version, date, init, ...

    @property
    def top1(self) -> float | None:
        return self.metrics.get("top1")


@dataclass(frozen=True)
class BenchRow(_Card):
    arch: str
    dataset: str
    precision: str  # fp32 | fp16 | int8 | "-" (null backend)
    provider: str  # cpu | cuda | null | "-" (a target that failed before any runtime)
    runtime: str = "onnxruntime"  # onnxruntime | openvino (f32|bf16|...) | opencv | torch-compile | null
    params: int | None = None
    macs: int | None = None  # multiply-accumulates per image
    eval_set: str = ""  # what top-1 was measured on, e.g. "test split (10000)"
    threads: int | None = None
    latency_ms_p50: float | None = None  # batch 1
    latency_ms_p90: float | None = None
    latency_ms_p99: float | None = None
    throughput_batch: int | None = None
    throughput_img_s: float | None = None
    weights: str = ""  # where the weights came from
    onnx_mb: float | None = None
    top1: float | None = None  # % on eval_set, through this runtime
    top1_change: float | None = None  # points against fp32 on the same eval set
    eager_latency_ms_p50: float | None = None  # PyTorch eager on the same inputs
    eager_throughput_img_s: float | None = None
    speedup_vs_eager: float | None = None
    torch_agreement: float | None = None  # % of eval images whose top-1 equals PyTorch fp32 eager's
    torch_top1_change: float | None = None  # points against PyTorch fp32 eager on the same images
    load_s: float | None = None  # seconds to load (and compile) the model in this runtime
    latency_iqr_rel: float | None = None  # noise: (p75 - p25) / p50 of the batch-1 calls
    latency_calls: int | None = None  # how many timed batch-1 calls the percentiles rest on
    load: float | None = None  # share of the CPU other processes used while this row's latency was timed
    flags: list = field(default_factory=list)  # "busy (...)", "noisy (...)": timing not to be trusted as is
    throughput_by_batch: dict = field(default_factory=dict)  # {"1": img/s, "16": ...} with --batch 1,16,64,256
    peak_mb: float | None = None  # resident memory that loading and running this runtime added, at its peak
    error: str | None = None  # why this target was not measured (the other fields stay None)
    weights_sha256: str | None = None  # of the weights the file was exported from (a recommendation's key)
    export_revision: int | None = None  # of the exporter that wrote the file
    tta: str | None = None  # test-time augmentation inside the graph that ran ('' none; a recommendation's key)
    schema: int = BENCH_ROW_SCHEMA


def tta_of(card) -> str:
    """The test-time augmentation a weights card's (or run card's) recipe names; '' for none or no card."""
    return Tta.of(card.recipe.get("tta")).value if card is not None else ""


def graph_tta(meta: dict) -> str:
    """The test-time augmentation inside an exported file's graph, from its metadata: its recipe's, or the one
    `zoo export --tta` chose; '' for none."""
    recipe = meta.get("recipe")
    return Tta.of(recipe.get("tta")).value if isinstance(recipe, dict) else ""
