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


mlp = _entry("mlp")
cnn = _entry("cnn")
lenet5 = _entry("lenet5")
alexnet = _entry("alexnet")
resnet20 = _entry("resnet20")
resnet18 = _entry("resnet18")
timm_resnet18 = _entry("timm/resnet18")
timm_mobilenetv3_small_100 = _entry("timm/mobilenetv3_small_100")
