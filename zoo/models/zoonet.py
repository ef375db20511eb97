"""ZooNet: zoo's own small CIFAR network, built from the fast-training literature (Jordan, "94% on CIFAR-10 in
3.29 Seconds on a Single GPU", 2024, whose airbench94 it follows) for time-to-accuracy on a CPU.

    whiten (2x2 conv, frozen, from the training images' patches) -> GELU
    -> 3 groups of [3x3 conv -> 2x2 max-pool -> BN -> GELU -> 3x3 conv -> BN -> GELU], 64/256/256 channels
    -> global max-pool -> Linear (no bias) x 1/9

Each method is an option (ZooNet's arguments) or a recipe field (zoo.train.recipes `speedrun`), so its share of
the result can be measured by turning it off (docs/models.md, the ablation table):
- `whiten`: the first layer's filters are the eigenvectors of the 2x2 patches' covariance over the first
  WHITEN_IMAGES training images, scaled by 1/sqrt(eigenvalue + eps), with their negatives; frozen (its bias
  trains). fit_whitening() computes them; zoo.train.run calls it for a fresh run and records the eigenvalues.
- `dirac`: the first in-channels filters of every conv start as the identity (torch.nn.init.dirac_).
- BatchNorm with a frozen unit scale: only the bias trains, at the recipe's `bias_lr` times the lr.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.data.specs import DatasetSpec
from zoo.models.registry import min_size_check, register_model, requires

WIDTHS = (64, 256, 256)
WHITEN_IMAGES = 5000  # training images whose patches set the whitening filters
WHITEN_EPS = 5e-4  # added to each eigenvalue before the 1/sqrt scaling
SCALE = 1 / 9  # the logits' scale (a temperature that suits label smoothing at init)


def _bn(c: int) -> nn.BatchNorm2d:
    """BatchNorm whose scale is fixed at 1 (frozen); its bias is the layer's only trained tensor. Momentum 0.4
    in PyTorch's convention: the running statistics follow the few, large steps of a short run."""
    bn = nn.BatchNorm2d(c, momentum=0.4)
    bn.weight.requires_grad_(False)
    return bn


class ConvGroup(nn.Module):
    def __init__(self, cin: int, cout: int, dirac: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = _bn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = _bn(cout)
        self.act = nn.GELU()
        if dirac:  # identity for the first in-channels filters: the group starts close to passing its input on
            for conv in (self.conv1, self.conv2):
                w = conv.weight.data
                nn.init.dirac_(w[:w.size(1)])

    def forward(self, x):
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class ZooNet(nn.Module):
    def __init__(self, in_chans: int, num_classes: int, widths: tuple[int, ...] = WIDTHS, *, whiten: bool = True,
                 dirac: bool = True):
        super().__init__()
        patch = in_chans * 4  # 2x2 patches
        self.whiten = nn.Conv2d(in_chans, 2 * patch, 2, bias=True)
        self.whiten.weight.requires_grad_(not whiten)  # frozen once fit_whitening() has set it
        self.uses_whitening = whiten
        groups, cin = [], 2 * patch
        for w in widths:
            groups.append(ConvGroup(cin, w, dirac))
            cin = w
        self.groups = nn.Sequential(*groups)
        self.act = nn.GELU()
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(cin, num_classes, bias=False)

    @torch.no_grad()
    def fit_whitening(self, images: torch.Tensor, eps: float = WHITEN_EPS) -> list[float]:
        """Set the whitening filters from normalized training images float [N, C, H, W]; returns the patch
        covariance's eigenvalues (ascending), which the run records."""
        c = images.shape[1]
        patches = images.float().unfold(2, 2, 1).unfold(3, 2, 1)  # [N, C, H-1, W-1, 2, 2]
        flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * 4).double()
        eigenvalues, eigenvectors = torch.linalg.eigh(flat.T @ flat / len(flat))
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).reshape(-1, c, 2, 2)
        self.whiten.weight.copy_(torch.cat([filters, -filters]).to(self.whiten.weight.dtype))
        return [float(v) for v in eigenvalues]

    def forward(self, x):  # [B, C, 32, 32] -> [B, 2*4*C, 31, 31] -> [B, 256, 3, 3] -> [B, classes]
        x = self.groups(self.act(self.whiten(x)))
        return self.fc(self.pool(x).flatten(1)) * SCALE


@register_model()
@requires(min_size_check("zoonet", 16))
def zoonet(spec: DatasetSpec, whiten: bool = True, dirac: bool = True) -> nn.Module:
    """ZooNet: zoo's own CIFAR network (whitening, dirac init, 64/256/256 channels; 1.97 M params), trained
    with the `speedrun` recipe. whiten=False: the first layer trains from a random start; dirac=False: the
    convolutions start random (PyTorch's default) (the ablations)."""
    return ZooNet(spec.channels, spec.num_classes, whiten=whiten, dirac=dirac)
