"""The registry's table and how an architecture enters it: `@register_model`, a shape check (`@requires`), timm's
prefix. zoo.models.registry builds and lists from it; the architecture modules (and timm_models) register into
it on import."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from zoo.core.errors import ZooError
from zoo.data.specs import DatasetSpec

TIMM_PREFIX = "timm/"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]  # builder(spec, **overrides) -> nn.Module


MODELS: dict[str, ModelEntry] = {}


def register_model(name: str | None = None):
    """Decorator: register a builder under `name` (default: the function's name). Duplicates raise."""
    def wrap(fn):
        key = name or fn.__name__
        if key in MODELS:
            raise ValueError(f"model {key!r} is already registered")
        MODELS[key] = ModelEntry(key, fn)
        return fn
    return wrap


def requires(check: Callable[[DatasetSpec], None]):
    """Attach a shape check to a builder: check(spec) raises ZooError when the dataset is unsupported."""
    def wrap(fn):
        fn.check = check
        return fn
    return wrap


def min_size_check(arch: str, min_size: int):
    def check(spec: DatasetSpec) -> None:
        if spec.size < min_size:
            raise ZooError(f"{arch} needs images of at least {min_size}x{min_size} pixels; "
                           f"{spec.name} has {spec.size}x{spec.size}")
    return check
