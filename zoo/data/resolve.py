"""From an argument to a DatasetSpec, one resolver for every stage (`get_dataset_spec`), and a folder's spec as
a record: in a run's config, a card and an exported file's metadata, so a model of a folder dataset knows its
classes and normalization after the folder is gone."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from zoo.core.errors import REMAKE, ZooError, close_matches
from zoo.core.names import looks_like_path, pretrained_dataset
from zoo.data.folder import open_folder
from zoo.data.options import FolderOptions
from zoo.data.specs import DatasetSpec, FolderSource, find_dataset, list_datasets, register_dataset


def spec_record(spec: DatasetSpec) -> dict | None:
    if not spec.source:
        return None
    record = dataclasses.asdict(spec)
    del record["source"]["kept"]  # where this machine keeps its sample is no part of what the dataset is
    return record


def spec_from_record(record: dict) -> DatasetSpec:
    try:
        fields = {**record, "source": FolderSource(**record["source"])}
        for k in ("class_names", "mean", "std", "augment"):
            fields[k] = tuple(fields[k])
        return DatasetSpec(**fields)
    except (TypeError, KeyError) as e:
        raise ZooError(f"a recorded dataset spec is damaged ({type(e).__name__}: {e}); {REMAKE}") from None


KEPT_SAMPLE = "heldout.npz"  # in a run folder trained on a folder of images: real images to gate its exports on


def kept_sample_of(weights: str | os.PathLike) -> Path | None:
    """The kept sample of the run folder that `weights` names (the folder, its best.safetensors, or one of its
    checkpoints/epoch-N folders), if it has one."""
    p = Path(weights)
    base = p if p.is_dir() else p.parent
    for run in (base, base.parent.parent):
        if (run / KEPT_SAMPLE).is_file() and (run / "config.json").is_file():
            return run / KEPT_SAMPLE
    return None


def _recorded(weights: str | os.PathLike | None) -> DatasetSpec | None:
    """The folder dataset recorded in the card of `weights` (a run trained on a folder), if any."""
    if weights is None:
        return None
    from zoo.core.sources import card_at

    record = getattr(card_at(weights), "dataset_spec", None)
    if not record:
        return None
    spec = spec_from_record(record)
    kept = kept_sample_of(weights)  # what its exports are gated on once the folder is gone
    return dataclasses.replace(spec, source=dataclasses.replace(spec.source, kept=str(kept))) if kept else spec


def same_path(arg: str, path: str) -> bool:
    """Whether the argument `arg` names the recorded (absolute) `path`."""
    try:
        return Path(arg).expanduser().resolve() == Path(path)
    except OSError:
        return False


def get_dataset_spec(dataset: str | DatasetSpec, weights: str | os.PathLike | None = None,
                     opts: FolderOptions | None = None, init: str | None = None, log=print) -> DatasetSpec:
    """The spec `dataset` stands for, the one resolver of every stage: a DatasetSpec as given; a registered
    name; else the folder dataset recorded in the card of `weights` when `dataset` names it (by name or path: its
    spec comes back as trained, mean and std included); else a path, opened with `opts` (the size defaults to
    that of `--init pretrained:DATASET`; the channels are the images', and the first convolution adapts to them:
    zoo.models.transfer). A folder's spec is registered by its name, so run configs and exported files that
    record the name read back."""
    if isinstance(dataset, DatasetSpec):
        return register_dataset(dataset) if dataset.source and find_dataset(dataset.name) != dataset else dataset
    known = find_dataset(dataset)
    if known is not None and known.source is None:
        return known
    recorded = _recorded(weights)  # a folder's spec as the weights recorded it (and their run folder's sample)
    if recorded is not None and (dataset == recorded.name or same_path(dataset, recorded.source.path)):
        return register_dataset(recorded)
    if known is not None:
        return known
    if not looks_like_path(dataset):
        raise ZooError(f"unknown dataset {dataset!r}{close_matches(dataset, list_datasets())} (or give a folder of "
                       f"images, one sub-folder per class, or a CSV of path,label)")
    opts = opts or FolderOptions()
    source = pretrained_dataset(init)
    if source is None:
        return open_folder(dataset, opts, log)
    base = get_dataset_spec(source)
    spec = open_folder(dataset, dataclasses.replace(opts, size=opts.size or base.size), log)
    return register_dataset(with_normalization_of(spec, base))


def with_normalization_of(spec: DatasetSpec, base: DatasetSpec) -> DatasetSpec:
    """`spec` normalized as `base`, whose weights it starts from: pretrained weights expect the inputs they were
    trained on (timm's pretrained configs carry their mean/std for the same reason). Across channel counts the
    statistics are averaged or repeated as the first convolution is adapted (zoo.models.transfer)."""
    mean, std = base.mean, base.std
    if len(mean) != spec.channels:
        mean, std = ((sum(mean) / len(mean),) * spec.channels, (sum(std) / len(std),) * spec.channels)
    return dataclasses.replace(spec, mean=tuple(mean), std=tuple(std))


def register_record(record: dict | None) -> None:
    """Make a recorded folder dataset (a run's config, an ONNX file's metadata) known by its name."""
    if record and find_dataset(record.get("name", "")) is None:
        register_dataset(spec_from_record(record))
