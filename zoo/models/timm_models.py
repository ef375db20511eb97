"""timm architectures as `timm/<name>`: in_chans and num_classes from the dataset spec.

Any timm model name works with create_model("timm/<name>", dataset); the ones below are listed
(and tested) explicitly. timm is imported only when such a model is built.
"""

from __future__ import annotations

from torch import nn

from zoo.data.specs import DatasetSpec
from zoo.core.errors import ZooError, close_matches
from zoo.models.entries import TIMM_PREFIX, ModelEntry, min_size_check, register_model, requires

VERIFIED = ("resnet18", "mobilenetv3_small_100")


def build_timm(timm_name: str, spec: DatasetSpec, **kwargs) -> nn.Module:
    import timm

    if not timm.is_model(timm_name):
        raise ZooError(f"unknown timm model {timm_name!r}{close_matches(timm_name, timm.list_models())}")
    # pretrained=False always: hub weights cannot be fetched offline and were trained on other data.
    return timm.create_model(timm_name, pretrained=False, in_chans=spec.channels,
                             num_classes=spec.num_classes, **kwargs)


def _make_builder(timm_name: str):
    @requires(min_size_check(TIMM_PREFIX + timm_name, 16))  # ImageNet nets downsample 32x; 16 px keeps 1x1
    def builder(spec: DatasetSpec, **kwargs) -> nn.Module:
        return build_timm(timm_name, spec, **kwargs)
    builder.__doc__ = f"timm's {timm_name} (random init; in_chans/num_classes from the dataset)."
    return builder


def timm_entry(name: str) -> ModelEntry:
    """An entry for any timm name not listed in VERIFIED (checked when the model is built)."""
    return ModelEntry(name, _make_builder(name[len(TIMM_PREFIX):]))


for _n in VERIFIED:
    register_model(TIMM_PREFIX + _n)(_make_builder(_n))
