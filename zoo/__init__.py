"""zoo: small image classifiers — registry, training, ONNX export and onnxruntime benchmarks.

    >>> import zoo
    >>> model = zoo.create_model("resnet20", "cifar10")

`import zoo` is cheap: the names below load their stage (and torch) on first use (PEP 562).
"""

from __future__ import annotations

from zoo.core.version import __version__  # noqa: E402,F401

from zoo.core.errors import ZooError  # noqa: E402  (stdlib only)
from zoo.core.lazy import lazy_names

# public name -> the module that defines it
_LAZY = {
    "DatasetSpec": "zoo.data.specs", "get_dataset_spec": "zoo.data.resolve", "list_datasets": "zoo.data.specs",
    "register_dataset": "zoo.data.specs",
    # zoo.models, not its registry module: importing the package registers every architecture
    "PAPER_MATRIX": "zoo.models", "create_model": "zoo.models", "list_models": "zoo.models",
    "list_pairs": "zoo.models", "register_model": "zoo.models",
    "TrainConfig": "zoo.train.recipes", "get_recipe": "zoo.train.recipes",
    "transforms": "zoo.predict.preprocess", "Predictor": "zoo.predict.predictor",
}
# zoo.train and zoo.export are the stages' packages (their functions: zoo.train.train, zoo.export.export).


def load(name: str, dataset: str, pretrained: bool = True, **overrides):
    """The model `name` for `dataset`, in eval mode, with the shipped weights when pretrained=True."""
    from zoo.models import create_model
    return create_model(name, dataset, pretrained=pretrained, **overrides).eval()


def sample_images(dataset: str) -> list:
    """The real test images zoo ships for `dataset` (mnist, cifar10, cifar100: 20 PNG files each, named for their
    class; digits drawn both ways round), e.g. to try a model: zoo.Predictor("resnet20", "cifar10").predict(
    zoo.sample_images("cifar10"))."""
    from zoo.core.shipped import sample_images as folder

    found = folder(dataset)
    if found is None:
        raise ZooError(f"zoo ships no sample images for {dataset!r}; it has them for mnist, cifar10 and cifar100: "
                       f"use one of those, or give your own images")
    return sorted(found.glob("*.png"))


__getattr__, __dir__ = lazy_names(globals(), _LAZY)


__all__ = ["ZooError", "load", "sample_images", "__version__", *_LAZY]
