"""The paper's own small CNNs: one for the MNISTs (~300 KB), one for the CIFARs (3 conv-BN blocks)."""

from __future__ import annotations

from torch import nn

from zoo.data.specs import DatasetSpec
from zoo.models.registry import min_size_check, register_model, requires


class MnistCNN(nn.Module):
    """conv3x3(16) -> ReLU -> pool2 -> conv3x3(32) -> ReLU -> pool2 -> FC(hidden) -> ReLU -> FC(classes)."""

    def __init__(self, in_chans: int, size: int, num_classes: int, hidden: int = 48):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        s = size // 4  # two 2x2 pools
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * s * s, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, num_classes))

    def forward(self, x):  # [B, 1, 28, 28] -> [B, 32, 7, 7] -> [B, classes]
        return self.head(self.features(x))


def _block(cin: int, cout: int) -> list[nn.Module]:
    # No conv bias before BatchNorm (the paper's finding: BN's shift makes it redundant).
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.MaxPool2d(2)]


class CifarCNN(nn.Module):
    """Three conv-BN-ReLU-pool blocks (32/64/128 channels), then FC(hidden) -> FC(classes). No Dropout with BN."""

    def __init__(self, in_chans: int, size: int, num_classes: int, widths=(32, 64, 128), hidden: int = 256):
        super().__init__()
        a, b, c = widths
        self.features = nn.Sequential(*_block(in_chans, a), *_block(a, b), *_block(b, c))
        s = size // 8  # three 2x2 pools
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * s * s, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, num_classes))

    def forward(self, x):  # [B, 3, 32, 32] -> [B, 128, 4, 4] -> [B, classes]
        return self.head(self.features(x))


@register_model()
@requires(min_size_check("cnn", 8))
def cnn(spec: DatasetSpec, **kwargs) -> nn.Module:
    """The paper's small CNN: 2 conv layers + FC head on the MNISTs, 3 conv-BN blocks + 2 FC on the CIFARs."""
    if spec.family == "mnist":
        return MnistCNN(spec.channels, spec.size, spec.num_classes, **kwargs)
    return CifarCNN(spec.channels, spec.size, spec.num_classes, **kwargs)
