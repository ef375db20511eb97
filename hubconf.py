"""torch.hub entry points, the torchvision convention:

    model = torch.hub.load("path/to/zoo-checkout", "resnet20", dataset="cifar10", pretrained=True, source="local")

Works offline: the weights ship in the checkout (weights/) and are sha256-checked on load. Every architecture of
zoo's registry is an entry (timm's as `timm_<name>`); `dataset` picks the shipped weights and the head size.
"""

dependencies = ["torch", "torchvision", "safetensors"]


def _entry(arch: str):
    def load(dataset: str = "cifar10", pretrained: bool = False, **kwargs):
        import zoo
        model = zoo.create_model(arch, dataset, pretrained=pretrained, **kwargs)
        return model.eval() if pretrained else model
    load.__name__ = arch.replace("/", "_")
    load.__doc__ = f"zoo's {arch} for `dataset`; pretrained=True loads the shipped weights."
    return load


def _entries() -> dict:
    """One entry per architecture of zoo's registry, named as torch.hub names allow (timm/x -> timm_x): from the
    registry's own list (zoo.core.names.MODELS, kept equal to it by the tests), never a second list kept here."""
    from zoo.core.names import MODELS

    return {name.replace("/", "_"): _entry(name) for name in MODELS}


globals().update(_entries())
