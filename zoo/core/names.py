"""Names a command can check before it imports torch: an unknown model or dataset, or a dataset path that is
not there, is refused in one line within a fraction of a second (importing torch alone takes ~2 s), with the
same "did you mean" line in every command.

The registries themselves (zoo.models, zoo.data.specs) stay the truth: `tests/test_registry.py` keeps
MODELS equal to `zoo.list_models()` and DATASETS to `zoo.list_datasets()`.
"""

from __future__ import annotations

import os
from pathlib import Path

from zoo.core.errors import ZooError, close_matches

MODELS = ("mlp", "cnn", "lenet5", "alexnet", "resnet20", "resnet18", "zoonet", "timm/resnet18",
          "timm/mobilenetv3_small_100")
TIMM_PREFIX = "timm/"  # any timm architecture: checked against timm's own list when it is built
DATASETS = ("mnist", "kmnist", "cifar10", "cifar100")


def looks_like_path(arg: str) -> bool:
    """A dataset argument that names a folder or a CSV file rather than a registered dataset."""
    return "/" in arg or os.sep in arg or arg.lower().endswith(".csv") or Path(arg).is_dir()


def check_model(name: str) -> None:
    if name not in MODELS and not name.startswith(TIMM_PREFIX):
        raise ZooError(f"unknown model {name!r}{close_matches(name, MODELS)}")


def check_dataset(name: str) -> None:
    """A registered dataset, or a path that exists (what it holds is checked when it is opened)."""
    if name in DATASETS:
        return
    if looks_like_path(name):
        if not Path(name).expanduser().exists():
            raise ZooError(f"dataset {name} not found: give a folder of images (one sub-folder per class) or a CSV "
                           f"of path,label")
        return
    raise ZooError(f"unknown dataset {name!r}{close_matches(name, DATASETS)} (or give a folder of images, "
                   f"one sub-folder per class, or a CSV of path,label)")


def check_pair(model: str | None, dataset: str | None, recorded: tuple[str, ...] = ()) -> None:
    """Both names, before anything heavy; `recorded`: dataset names known from a run folder or card."""
    if model:
        check_model(model)
    if dataset and dataset not in recorded:
        check_dataset(dataset)


def pretrained_dataset(init: str | None, own: str | None = None) -> str | None:
    """The dataset whose shipped weights `--init` names: DATASET for "pretrained:DATASET", `own` (the pair's
    dataset) for "pretrained", None for a run folder, a file, "auto" or no --init. The one reading of that syntax."""
    if init == "pretrained":
        return own
    if init and init.startswith("pretrained:"):
        return init.partition(":")[2]
    return None
