"""Architecture registry. create_model(arch, dataset) takes channels, size and classes from the dataset spec.

Every builder has the signature ``builder(spec: DatasetSpec, **overrides) -> nn.Module`` and raises
ZooError for a dataset shape it cannot handle.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import replace

from torch import nn

from zoo.data.resolve import get_dataset_spec
from zoo.data.specs import DatasetSpec, list_datasets
from zoo.core.errors import ZooError, close_matches
from zoo.core.sources import from_pretrained
from zoo.core.state import load_state_dict_checked, load_state_dict_transfer
import zoo.models.entries as entries
from zoo.models.entries import TIMM_PREFIX, ModelEntry, min_size_check, register_model, requires  # noqa: F401
from zoo.models.transfer import classifier, transfer_state  # noqa: F401  (zoo.models' name for it)
from zoo.models.tta import tta_of, with_tta

# The paper's matrix: 16 (arch, dataset) pairs and the test accuracy (%) it reports for each.
PAPER_MATRIX: dict[tuple[str, str], float] = {
    ("mlp", "mnist"): 97.5, ("cnn", "mnist"): 99.0, ("lenet5", "mnist"): 98.5,
    ("mlp", "kmnist"): 90.5, ("cnn", "kmnist"): 95.0, ("lenet5", "kmnist"): 93.5,
    ("mlp", "cifar10"): 40.0, ("cnn", "cifar10"): 75.0, ("alexnet", "cifar10"): 75.0,
    ("resnet20", "cifar10"): 89.0, ("resnet18", "cifar10"): 91.0,
    ("mlp", "cifar100"): 15.0, ("cnn", "cifar100"): 40.0, ("alexnet", "cifar100"): 40.0,
    ("resnet20", "cifar100"): 70.0, ("resnet18", "cifar100"): 70.0,
}

# Arguments that come from the dataset spec and must never be passed by the caller.
_SPEC_KWARGS = {"num_classes", "in_chans", "in_channels", "img_size", "input_size"}

def get_model_entry(name: str) -> ModelEntry:
    if name in entries.MODELS:
        return entries.MODELS[name]
    if name.startswith(TIMM_PREFIX):
        from zoo.models.timm_models import timm_entry
        return timm_entry(name)
    raise ZooError(f"unknown model {name!r}{close_matches(name, entries.MODELS)}")


def _matches(name: str, patterns: str | Iterable[str] | None) -> bool:
    if patterns is None:
        return True
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def list_models(include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None,
                dataset: str | None = None) -> list[str]:
    """Registered architecture names matching shell wildcards; with `dataset`, only those that build for it."""
    names = [n for n in entries.MODELS if _matches(n, include) and not (exclude and _matches(n, exclude))]
    if dataset is not None:
        spec = get_dataset_spec(dataset)
        names = [n for n in names if supports(n, spec.name)]
    return names


def list_pairs(include=None, exclude=None, dataset: str | None = None, paper: bool = False) -> list[tuple[str, str]]:
    """(arch, dataset) pairs the registry can build; paper=True keeps only the seed matrix."""
    datasets = [dataset] if dataset else list_datasets()
    if paper:
        return [(a, d) for (a, d) in PAPER_MATRIX if d in datasets and _matches(a, include)
                and not (exclude and _matches(a, exclude))]
    return [(a, d) for d in datasets for a in list_models(include, exclude, dataset=d)]


def supports(name: str, dataset: str) -> bool:
    try:
        check_supported(name, dataset)
    except ZooError:
        return False
    return True


def check_supported(name: str, dataset: str | DatasetSpec) -> None:
    """Raises ZooError when `name` is unknown or cannot be built for the dataset's shape."""
    entry = get_model_entry(name)
    spec = dataset if isinstance(dataset, DatasetSpec) else get_dataset_spec(dataset)
    check = getattr(entry.builder, "check", None)
    if check is not None:
        check(spec)


def create_model(name: str, dataset: str | DatasetSpec, *, pretrained: bool = False,
                 classes: list[str] | tuple[str, ...] | None = None, head: str = "map", **overrides) -> nn.Module:
    """Build architecture `name` for `dataset` (channels, size, classes from its spec).

    pretrained=True loads the shipped weights `name.dataset` (sha256-checked safetensors), wrapped in the
    test-time augmentation their card's recipe names (zoo.models.tta), as they were evaluated.

    classes: the classes the model is for, when they are not the dataset's (fine-tuning on some of them, or
    on others): the classifier gets one row per class and, with pretrained=True, each row is the pretrained
    row of the class of the same name (`head="map"`; zoo.models.transfer), the others start fresh;
    `head="keep"` carries rows over in order, `head="fresh"` starts the whole head afresh.
    `model.zoo_transfer` says what happened.
    """
    spec = dataset if isinstance(dataset, DatasetSpec) else get_dataset_spec(dataset)
    bad = _SPEC_KWARGS & set(overrides)
    if bad:
        raise ZooError(f"{', '.join(sorted(bad))} come(s) from the dataset spec of {spec.name!r}; "
                       f"register a DatasetSpec instead of overriding")
    entry = get_model_entry(name)
    check_supported(name, spec)
    target = replace(spec, class_names=tuple(map(str, classes))) if classes is not None else spec
    if classes is not None and len(target.class_names) < 1:
        raise ZooError("classes must name at least one class")
    model = entry.builder(target, **overrides)
    model.zoo_name = name  # type: ignore[attr-defined]  # read by export/bench
    model.zoo_dataset = spec.name  # type: ignore[attr-defined]
    if pretrained:
        src = from_pretrained(name, spec.name)
        if classes is None:
            load_state_dict_checked(model, src.state, source=src.origin)
        else:
            state, said = transfer_state(model, src.state, spec.class_names, target.class_names, head, spec.name)
            load_state_dict_transfer(model, state, src.origin)
        model = with_tta(model, tta_of(src.card))  # as the weights were evaluated
        if classes is not None:
            model.zoo_transfer = said  # type: ignore[attr-defined]
    return model


def adapts_channels(name: str, spec: DatasetSpec, source: int | DatasetSpec) -> bool:
    """Whether weights of `name` trained on `source` (a dataset spec, or a channel count) fit it built for `spec`
    after the adaptation fine-tuning applies (transfer_state: the first convolution follows the channels): every
    tensor's shape the same. True for most networks; False for ZooNet, whose whitening layer's width follows the
    channels, and for the cnn, whose grey (MNIST) and colour (CIFAR) builds are different networks."""
    build = get_model_entry(name).builder
    model = build(spec)
    trained = build(replace(spec, channels=source) if isinstance(source, int) else source)
    state, _ = transfer_state(model, trained.state_dict(), head="keep")
    return all(k in state and state[k].shape == t.shape for k, t in model.state_dict().items())
