"""zoo: small image classifiers — registry, training, ONNX export and onnxruntime benchmarks.

    >>> import zoo
    >>> model = zoo.create_model("resnet20", "cifar10")
"""

from __future__ import annotations

__version__ = "0.1.0"

from zoo.data import DatasetSpec, get_dataset_spec, list_datasets
from zoo.errors import ZooError
from zoo.models import PAPER_MATRIX, create_model, list_models, list_pairs, register_model


def load(name: str, dataset: str, pretrained: bool = True, **overrides):
    """The model `name` for `dataset`, in eval mode, with the shipped weights when pretrained=True."""
    return create_model(name, dataset, pretrained=pretrained, **overrides).eval()


def train(*args, **kwargs):
    """Train a model; see zoo.train.train (same arguments as `zoo train`)."""
    from zoo.train import train as _train
    return _train(*args, **kwargs)


__all__ = ["PAPER_MATRIX", "DatasetSpec", "ZooError", "create_model", "get_dataset_spec", "list_datasets",
           "list_models", "list_pairs", "load", "register_model", "train", "__version__"]
