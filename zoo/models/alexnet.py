"""AlexNet (Krizhevsky et al. 2012) adapted to 32x32 inputs.

The five conv layers keep AlexNet's widths (64, 192, 384, 256, 256, as torchvision's single-GPU
version); the 11x11/4 stem becomes 5x5/2 and the 3 max-pools reduce 16 -> 2; the classifier is
two 512-wide layers with Dropout (no BatchNorm here, so Dropout is fine), sized to ship (~3 M params).
"""

from __future__ import annotations

from torch import nn

from zoo.data.specs import DatasetSpec
from zoo.models.registry import min_size_check, register_model, requires


class AlexNet(nn.Module):
    def __init__(self, in_chans: int, num_classes: int, hidden: int = 512, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 64, 5, stride=2, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # 64x8x8
            nn.Conv2d(64, 192, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # 192x4x4
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),  # 256x2x2
        )
        self.pool = nn.AdaptiveAvgPool2d(2)  # any input >= 16 px ends at 256 x 2 x 2
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(256 * 4, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes),
        )

        # He init (fan_in, ReLU gain). PyTorch's default (kaiming_uniform with a=sqrt(5)) scales each layer's
        # signal variance by ~1/6 here, with no BatchNorm to restore it: random-init logits had std 0.02 and
        # the first CIFAR-10 epoch reached 11% train accuracy. With He init the logits' std is ~1.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier[-1].weight, std=0.01)  # small logits at init: loss starts at ~ln(classes)

    def forward(self, x):  # [B, C, 32, 32] -> [B, 256, 2, 2] -> [B, classes]
        return self.classifier(self.pool(self.features(x)))


@register_model()
@requires(min_size_check("alexnet", 16))
def alexnet(spec: DatasetSpec, **kwargs) -> nn.Module:
    """AlexNet for 32x32 inputs: 5x5/2 stem, AlexNet's conv widths, 512-wide classifier."""
    return AlexNet(spec.channels, spec.num_classes, **kwargs)
