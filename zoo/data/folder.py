"""A user's own images as a dataset, given as a path wherever a dataset name goes:

    photos/cat/1.png, photos/dog/2.jpg, ...          one sub-folder per class (a stratified split is held out)
    photos/train/cat/..., photos/val/cat/...         split folders (val/, valid/, validation/ or test/)
    labels.csv: path,label[,split]                   paths relative to the CSV's folder

    spec = open_folder("photos")        # scans; decodes once into the cache; registers DatasetSpec "photos"
    load_split("photos", "train")       # uint8 [N, C, H, W], a view on the memory-mapped cache

Images go through zoo.data.images (the preprocessing `zoo predict` uses), decoded on a thread pool into a
uint8 .npy that later runs memory-map: a second run starts without decoding, and a dataset larger than RAM
trains from the map. The cache ($XDG_CACHE_HOME/zoo/folders/) is keyed by every file's path, size and
mtime, its label and split, and the channels and size asked for: touch one file and the folder is decoded
again. Unreadable images and CSV rows naming missing files are listed and skipped, with the count said.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from zoo.core.errors import ZooError
from zoo.data.decoded import Opened, cached, infer_channels
from zoo.data.images import infer_polarity
from zoo.data.options import FolderOptions
from zoo.data.scan import dataset_name, scan
from zoo.data.specs import DatasetMissing, DatasetSpec, FolderSource, register_dataset

NATIVE_SIZE = {1: 28, 3: 32}  # the zoo architectures' sizes: MNIST-like grey, CIFAR-like colour


_OPENED: dict[tuple[str, FolderOptions], Opened] = {}  # per process: (folder, options) -> its opened cache


def _open(path: str | os.PathLike, opts: FolderOptions, log=print) -> Opened:
    """Scan, then map the cache (decoding first if the files changed). Memoized per process by folder and
    options, so the splits, the gate and the calibration of one command scan and stat the folder once."""
    asked = (str(Path(path).expanduser().resolve()), opts.validate())
    if asked not in _OPENED:
        listing = scan(path, opts)
        channels, why = (opts.channels, "--channels") if opts.channels else \
            infer_channels([f for f, _ in listing.train])
        size = opts.size or NATIVE_SIZE[channels]
        opened = cached(listing, channels, size, log)
        opened.meta["channels_inferred"] = opts.channels is None
        opened.meta["channels_why"] = why
        resolved = dataclasses.replace(opts, channels=channels, size=size)  # what a recorded spec asks for
        _OPENED[asked] = _OPENED[(asked[0], resolved)] = opened
    return _OPENED[asked]


def open_folder(path: str | os.PathLike, opts: FolderOptions | None = None, log=print) -> DatasetSpec:
    """The folder (or CSV) as a registered DatasetSpec: classes, channels, size, mean/std of the training split."""
    opts = opts or FolderOptions()
    opened = _open(path, opts, log)
    meta = opened.meta
    root = Path(meta["root"])
    channels = meta["channels"]
    spec = DatasetSpec(dataset_name(root), "", channels, meta["size"], tuple(meta["classes"]), tuple(meta["mean"]),
                       tuple(meta["std"]), "mnist" if channels == 1 else "cifar", opened.n_train, (), str(root),
                       FolderSource(str(root), meta["layout"], opts.val_fraction, opts.seed, opts.outside_paths),
                       infer_polarity(opened.images[:opened.n_train]))
    _say(spec, meta, log)
    return register_dataset(spec)


def _say(spec: DatasetSpec, meta: dict, log) -> None:
    how = f" ({meta.get('channels_why', 'from the images')}; --channels to change)" if meta["channels_inferred"] \
        else ""
    channels = "1 channel: grey" if spec.channels == 1 else \
        f"{spec.channels} channels: {'colour' if meta['channels_inferred'] else 'read as RGB'}"
    log(f"zoo: {spec.name}: {meta['n_train']:,} training and {meta['n_held_out']:,} held-out images "
        f"({spec.source.layout}), {spec.num_classes} classes, {channels}{how}, {spec.size}x{spec.size}")
    for note in meta["notes"]:
        log(f"zoo: note: {note}")
    if meta["skipped"]:
        first = meta["skipped"][0]
        log(f"zoo: warning: skipped {len(meta['skipped'])} unreadable image(s) or row(s), listed in "
            f"{meta['cache']}/meta.json; first: {first['path']}: {first['reason']}")


def folder_split(spec: DatasetSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, C, H, W] as a memory-map view, labels) of a folder dataset's split, from its folder as
    recorded (the spec's classes must still be the folder's)."""
    src = spec.source
    if not Path(src.path).exists():
        raise DatasetMissing(f"{spec.name}: its images ({src.path}) are not there any more")
    opened = _open(src.path, FolderOptions(src.val_fraction, src.seed, spec.channels, spec.size, src.outside_paths),
                   log=_quiet)
    if tuple(opened.meta["classes"]) != spec.class_names:
        raise ZooError(f"{src.path} now has classes {', '.join(opened.meta['classes'][:6])}..., not the "
                       f"{spec.num_classes} this model was trained on; restore the folder or train again")
    n = opened.n_train
    return (opened.images[:n], opened.labels[:n]) if split == "train" else (opened.images[n:], opened.labels[n:])


def _quiet(*_) -> None:
    pass
