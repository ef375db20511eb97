"""`--init auto`: which shipped weights of the architecture to fine-tune from, chosen by measuring a linear probe
of each on the user's folder (the classifier fitted alone on the frozen features of the training images, scored
on the held-out ones). Seconds per candidate; the best probe is the best start, as it is what LP-FT begins from.

    init, spec, scores = choose_init("resnet20", "photos/", FolderOptions())
    # "pretrained:cifar100", the folder as that start reads it, {"cifar10": 71.0, "cifar100": 88.5}
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from zoo.core.errors import ZooError
from zoo.core.shipped import manifest
from zoo.core.sources import init_source
from zoo.core.state import load_state_dict_transfer
from zoo.data import DatasetSpec, FolderOptions, get_dataset_spec
from zoo.data.folder import folder_split, open_folder, with_normalization_of
from zoo.models import adapts_channels, create_model
from zoo.models.transfer import transfer_state
from zoo.train.probe import fit_probe, frozen_features

AUTO = "auto"
PROBE_IMAGES = 2000  # training images each candidate's probe fits on (and their mirrors), at most


def candidates(arch: str) -> list[str]:
    """The datasets zoo ships `arch`'s weights for: the starts --init auto compares."""
    return sorted({card.dataset for card in manifest().values() if card.arch == arch})


def candidate_spec(arch: str, folder: str, source: str, opts: FolderOptions) -> DatasetSpec:
    """The folder as fine-tuning `arch` from `source`'s weights reads it (zoo.train.dataset's rules: the source's
    size and normalization, its channels where the network cannot adapt them), left unregistered."""
    base = get_dataset_spec(source)
    opts = replace(opts, size=opts.size or base.size)
    spec = open_folder(folder, opts, log=lambda *_: None)
    if not opts.channels and spec.channels != base.channels and not adapts_channels(arch, spec, base):
        spec = open_folder(folder, replace(opts, channels=base.channels), log=lambda *_: None)
    return with_normalization_of(spec, base)


def probe_score(arch: str, spec: DatasetSpec, source: str, seed: int = 0) -> float:
    """Top-1 on the folder's held-out images of a linear probe of `source`'s weights for `arch`."""
    state, record = init_source(f"pretrained:{source}", arch, spec.name)
    model = create_model(arch, spec)
    state, _ = transfer_state(model, state, get_dataset_spec(source).class_names, spec.class_names, "map", source)
    load_state_dict_transfer(model, state, record["source"])
    (train_x, train_y), (test_x, test_y) = folder_split(spec, "train"), folder_split(spec, "test")
    pick = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(seed))[:PROBE_IMAGES].sort().values
    train_x, train_y = torch.from_numpy(train_x[pick.numpy()]), torch.from_numpy(train_y[pick.numpy()])
    probe = fit_probe(model, train_x, train_y, spec)
    feats, _ = frozen_features(model, torch.from_numpy(test_x[:]), spec)
    return probe.accuracy(feats, torch.from_numpy(test_y[:]).long())


def choose_init(arch: str, folder: str, opts: FolderOptions | None = None, log=print
                ) -> tuple[str, DatasetSpec, dict[str, float]]:
    """("pretrained:SOURCE" of the best probe, the folder as that start reads it, {source: probe top-1})."""
    opts = opts or FolderOptions()
    sources = candidates(arch)
    if not sources:
        raise ZooError(f"--init auto: zoo ships no weights for {arch}; choose an architecture with shipped weights "
                       f"(zoo list), or give --init a run folder")
    t0 = time.perf_counter()
    specs = {s: candidate_spec(arch, folder, s, opts) for s in sources}
    scores = {s: probe_score(arch, specs[s], s, opts.seed) for s in sources}
    best = max(sources, key=lambda s: (scores[s], s == "cifar10"))  # a tie: the better-known start
    ranked = ", ".join(f"{s} {scores[s]:.1f}%" for s in sorted(sources, key=scores.get, reverse=True))
    log(f"zoo: --init auto: pretrained:{best}, the best linear probe of {arch}'s shipped weights on your held-out "
        f"images ({ranked}; {time.perf_counter() - t0:.1f} s)")
    return f"pretrained:{best}", specs[best], scores
