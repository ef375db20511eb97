"""`--init auto`: which shipped weights of the architecture to fine-tune from, chosen by measuring a linear probe
of each on the user's folder (the classifier fitted alone on the frozen features of the training images, scored
on the held-out ones). Seconds per candidate; the best probe is the best start, as it is what LP-FT begins from.

    init, spec, scores = choose_init("resnet20", "photos/", FolderOptions())
    # "pretrained:cifar100", the folder as that start reads it, {"cifar10": 71.0, "cifar100": 88.5}
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from zoo.core.errors import ZooError
from zoo.core.shipped import manifest
from zoo.core.sources import init_source
from zoo.core.state import load_state_dict_transfer
from zoo.data import DatasetSpec, FolderOptions, get_dataset_spec, normalize
from zoo.data.folder import folder_split, open_folder
from zoo.data.resolve import with_normalization_of
from zoo.models import adapts_channels, create_model
from zoo.models.transfer import transfer_state
from zoo.train.probe import fit_probe, frozen_features, subsample

AUTO = "auto"
PROBE_IMAGES = 2000  # training images each candidate's probe fits on (and their mirrors), at most


def candidates(arch: str) -> list[str]:
    """The datasets zoo ships `arch`'s weights for: the starts --init auto compares."""
    return sorted({card.dataset for card in manifest().values() if card.arch == arch})


def _quiet(*_) -> None:
    pass


def candidate_spec(arch: str, folder: str, source: str, opts: FolderOptions, log=_quiet) -> DatasetSpec:
    """The folder as fine-tuning `arch` from `source`'s weights reads it (zoo.train.dataset's rules: the source's
    size and normalization, its channels where the network cannot adapt them), left unregistered; what was found
    in the folder goes to `log`."""
    base = get_dataset_spec(source)
    opts = replace(opts, size=opts.size or base.size)
    said: list[str] = []
    spec = open_folder(folder, opts, log=said.append)
    if not opts.channels and spec.channels != base.channels and not adapts_channels(arch, spec, base):
        log(f"zoo: {arch} cannot adapt {base.name}'s {base.channels}-channel weights to {spec.channels}-channel "
            f"images past its first layer: reading the images as {base.channels} channels, as the weights were "
            f"trained (--channels {spec.channels} to start those layers fresh instead)")
        said = []
        spec = open_folder(folder, replace(opts, channels=base.channels), log=said.append)
    for line in said:
        log(line)
    return with_normalization_of(spec, base)


@dataclass(frozen=True)
class Score:
    """What one set of shipped weights would start a fine-tune from, on the folder's held-out images."""
    probe: float  # top-1 of a linear probe of its features
    mapped: int  # the folder's classes its classifier knows by name
    start: float  # top-1 of its own classifier's rows for them, when it knows every class (else the probe's)

    @property
    def best(self) -> float:
        return max(self.probe, self.start)


def probe_score(arch: str, spec: DatasetSpec, source: str, seed: int = 0) -> Score:
    """A linear probe of `source`'s weights for `arch` on the folder (and, where those weights know every class
    by name, their own classifier restricted to the folder's classes), scored on its held-out images."""
    state, record = init_source(f"pretrained:{source}", arch, spec.name)
    model = create_model(arch, spec)
    state, said = transfer_state(model, state, get_dataset_spec(source).class_names, spec.class_names, "map",
                                 source)
    load_state_dict_transfer(model, state, record["source"])
    (train_x, train_y), (test_x, test_y) = folder_split(spec, "train"), folder_split(spec, "test")
    test_x, test_y = torch.from_numpy(test_x[:]), torch.from_numpy(test_y[:]).long()
    start = None
    if said.mapped and not said.fresh:  # every class known by name: the start is its own rows
        with torch.no_grad():
            logits = model.eval()(torch.from_numpy(normalize(test_x, spec)))
            start = float((logits.argmax(1) == test_y).float().mean() * 100)
    pick = subsample(len(train_y), PROBE_IMAGES, seed).numpy()
    train_x, train_y = torch.from_numpy(train_x[pick]), torch.from_numpy(train_y[pick])
    probe = fit_probe(model, train_x, train_y, spec)
    feats, _ = frozen_features(model, test_x, spec)
    acc = probe.accuracy(feats, test_y)
    return Score(acc, len(said.mapped), start if start is not None else acc)



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
    # The best start; a tie (a few held-out images tell little apart) goes to the weights that know more of the
    # classes by name, then to those trained on images of the folder's channels.
    order = sorted(sources, key=lambda s: (round(scores[s].best, 1), scores[s].mapped,
                                           specs[s].channels == get_dataset_spec(s).channels), reverse=True)
    best = order[0]
    ranked = ", ".join(f"{s} {scores[s].best:.1f}%" + (" (knows every class by name)" if scores[s].start !=
                                                         scores[s].probe else "") for s in order)
    log(f"zoo: --init auto: pretrained:{best}, the best start among {arch}'s shipped weights on your held-out "
        f"images, by a linear probe of each ({ranked}; {time.perf_counter() - t0:.1f} s)")
    spec = candidate_spec(arch, folder, best, opts, log)  # the folder as that start reads it, said as zoo train does
    return f"pretrained:{best}", spec, {s: scores[s].best for s in sources}
