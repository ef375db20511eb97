"""CIFAR ResNets: ResNet-20 (He et al. 2015, sec. 4.2) and the CIFAR variant of ResNet-18.

ResNet-20: 3x3 conv(16), then 3 stages x 3 basic blocks (16/32/64 channels), global average pool, FC.
Shortcuts that change shape use the paper's option A (stride-2 subsample + zero channel padding), so
the net has 0.27 M parameters as published. ResNet-18 (CIFAR): 3x3 stem, no max-pool, 4 stages x 2
basic blocks (64..512 channels), projection shortcuts; ~11.2 M parameters.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from zoo.data.specs import DatasetSpec
from zoo.models.registry import min_size_check, register_model, requires


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)  # no bias before BN


class PadShortcut(nn.Module):
    """Option A: x[:, :, ::2, ::2] and zero-pad the new channels (parameter-free)."""

    def __init__(self, extra: int):
        super().__init__()
        self.extra = extra

    def forward(self, x):  # [B, C, H, W] -> [B, C + extra, H/2, W/2]
        half = self.extra // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, half, self.extra - half))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = conv3x3(cout, cout), nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            if shortcut == "A":
                self.shortcut = PadShortcut(cout - cin)
            else:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                              nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, in_chans: int, num_classes: int, widths: tuple[int, ...], blocks: tuple[int, ...],
                 shortcut: str):
        super().__init__()
        self.stem = nn.Sequential(conv3x3(in_chans, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        layers, cin = [], widths[0]
        for i, (width, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(BasicBlock(cin, width, stride, shortcut))
                cin = width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):  # [B, C, 32, 32] -> [B, widths[-1], 32 / 2^(stages-1), ...] -> [B, classes]
        x = self.layers(self.stem(x))
        return self.fc(self.pool(x).flatten(1))


@register_model()
@requires(min_size_check("resnet20", 8))
def resnet20(spec: DatasetSpec) -> nn.Module:
    """ResNet-20 for CIFAR (He et al. 2015): 3 stages x 3 blocks, 16/32/64 channels, 0.27 M params."""
    return CifarResNet(spec.channels, spec.num_classes, (16, 32, 64), (3, 3, 3), shortcut="A")


@register_model()
@requires(min_size_check("resnet18", 16))
def resnet18(spec: DatasetSpec) -> nn.Module:
    """ResNet-18, CIFAR variant: 3x3 stem, no max-pool, 64-512 channels, 11.2 M params."""
    return CifarResNet(spec.channels, spec.num_classes, (64, 128, 256, 512), (2, 2, 2, 2), shortcut="B")
