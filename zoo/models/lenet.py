"""LeNet-5 (LeCun et al. 1998): C1 5x5x6, S2, C3 5x5x16, S4, C5 120, F6 84, output 10.

As in the original: tanh units, average-pooling subsampling, 32x32 input (28x28 digits are padded by 2,
as LeCun padded MNIST). Two simplifications every modern implementation makes: C3 is fully connected to
S2 (not the original's partial table) and the RBF output layer is a linear layer.
"""

from __future__ import annotations

from torch import nn

from zoo.data.specs import DatasetSpec
from zoo.core.errors import ZooError
from zoo.models.registry import register_model, requires


class LeNet5(nn.Module):
    def __init__(self, in_chans: int, size: int, num_classes: int):
        super().__init__()
        pad = (32 - size) // 2  # 28 -> 32 as in the paper
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, 5, padding=pad), nn.Tanh(), nn.AvgPool2d(2),  # C1, S2: 6 x 14 x 14
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),  # C3, S4: 16 x 5 x 5
            nn.Conv2d(16, 120, 5), nn.Tanh(),  # C5: 120 x 1 x 1
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, num_classes))

    def forward(self, x):  # [B, C, 28|32, 28|32] -> [B, 120, 1, 1] -> [B, classes]
        return self.classifier(self.features(x))


def _check(spec: DatasetSpec) -> None:
    if spec.size not in (28, 32):
        raise ZooError(f"lenet5 takes 28x28 or 32x32 images (the original's input); "
                       f"{spec.name} has {spec.size}x{spec.size}")


@register_model()
@requires(_check)
def lenet5(spec: DatasetSpec) -> nn.Module:
    """LeNet-5 (LeCun 1998): tanh, average-pool subsampling, 61,706 params on MNIST."""
    return LeNet5(spec.channels, spec.size, spec.num_classes)
