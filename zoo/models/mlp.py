"""The paper's multilayer perceptrons (two variants under one name, picked by dataset family)."""

from __future__ import annotations

from torch import nn

from zoo.data.specs import DatasetSpec
from zoo.models.registry import register_model


class MLP(nn.Module):
    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.ReLU(inplace=True)]
            in_features = width
        layers.append(nn.Linear(in_features, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # x: [B, C, H, W] -> logits [B, classes]
        return self.net(x)


@register_model()
def mlp(spec: DatasetSpec, hidden: tuple[int, ...] | None = None) -> nn.Module:
    """MLP: 784-300-10 on the MNISTs (238,510 params), 3072-256-32-classes on the CIFARs."""
    if hidden is None:
        hidden = (300,) if spec.family == "mnist" else (256, 32)
    return MLP(spec.channels * spec.size * spec.size, tuple(hidden), spec.num_classes)
