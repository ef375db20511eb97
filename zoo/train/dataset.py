"""The dataset as training reads it: one resolution for `zoo train` and `zoo.train.train` alike.

    spec = training_spec("resnet20", "photos/", init="pretrained:cifar10")

A folder fine-tuned from `--init pretrained:DATASET` is normalized with DATASET's statistics (the pretrained
features expect the inputs they were trained on) at its image size; and when the network cannot adapt those
weights to the folder's channels past its first layer (ZooNet's whitening), the folder is read with the
weights' channels instead of starting those layers fresh. Grey images read as RGB start where timm's
adaptation of a first convolution would. An explicit channel count (FolderOptions.channels) decides otherwise.
"""

from __future__ import annotations

from dataclasses import replace

from zoo.core.errors import ZooError
from zoo.core.names import looks_like_path, pretrained_dataset
from zoo.data import DatasetSpec, FolderOptions, find_dataset, get_dataset_spec, register_dataset
from zoo.models import adapts_channels


def training_spec(arch: str, dataset: str | DatasetSpec, init: str | None = None, opts: FolderOptions | None = None,
                  log=print) -> DatasetSpec:
    """The spec `dataset` stands for when `arch` trains on it from `init` (see the module docstring); the
    folder's lines (what was found in it) go to `log` once its channels are settled."""
    if isinstance(dataset, DatasetSpec):
        return get_dataset_spec(dataset)
    if find_dataset(dataset) is not None:  # a built-in dataset, or a folder opened already (by zoo train)
        return find_dataset(dataset)
    opts = opts or FolderOptions()
    said: list[str] = []
    spec = get_dataset_spec(dataset, opts=opts, init=init, log=said.append)
    base = _init_base(spec, init, opts)
    if base is None or base.channels == spec.channels or adapts_channels(arch, spec, base):
        for line in said:
            log(line)
        return spec
    log(f"zoo: {arch} cannot adapt {base.name}'s {base.channels}-channel weights to {spec.channels}-channel images "
        f"past its first layer: reading the images as {base.channels} channels, as the weights were trained "
        f"(--channels {spec.channels} to start those layers fresh instead)")
    return get_dataset_spec(dataset, opts=replace(opts, channels=base.channels), init=init, log=log)


def _init_base(spec: DatasetSpec, init: str | None, opts: FolderOptions) -> DatasetSpec | None:
    """The spec of --init pretrained:DATASET's dataset when the images' channels were inferred from a folder."""
    source = pretrained_dataset(init)
    if spec.source is None or opts.channels or source is None:
        return None
    return get_dataset_spec(source)


def resolve_start(arch: str, dataset: str | DatasetSpec, init: str | None, opts: FolderOptions | None = None,
                  log=print) -> tuple[str | None, DatasetSpec]:
    """(the --init to train from, the spec to train on): `init="auto"` on a folder measures a linear probe of each
    of `arch`'s shipped weights and picks the best (zoo.train.autoinit); any other init is kept as given."""
    from zoo.train.autoinit import AUTO, choose_init

    if init != AUTO:
        return init, training_spec(arch, dataset, init, opts, log)
    if isinstance(dataset, DatasetSpec) or not looks_like_path(dataset) or find_dataset(dataset) is not None:
        raise ZooError("--init auto chooses among shipped weights for a folder of your images; for a built-in "
                       "dataset give --init pretrained:DATASET")
    init, spec, _ = choose_init(arch, dataset, opts, log)
    return init, register_dataset(spec)
