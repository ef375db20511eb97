"""Test-time augmentation inside the model: what is evaluated is what is exported, benchmarked and shipped.

A recipe names it (TrainConfig.tta); a checkpoint's card carries the recipe, so every consumer that builds
a model from a card wraps it the same way (export, bench, create_model(pretrained=True)). The wrapper has no
tensors of its own: checkpoints hold the plain model's state dict.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.core.cards import tta_of  # noqa: F401  (zoo.models' name for it)
from zoo.core.errors import ZooError
from zoo.core.tta import Tta

TTAS = tuple(t.value for t in Tta)  # "": none; flip: the mean of the logits for the image and its left-right
# mirror; flip-shift: half that, half its mean over the image shifted one pixel up-left and down-right (mirrored
# border), as airbench94 (Jordan 2024) evaluates: six passes


class FlipAverage(nn.Module):
    """Logits averaged over the image and its mirror: two forward passes (one pass over both, concatenated,
    measured 30% slower than two for ResNet-20 at batch 1,000 in bf16 + channels_last on 2 CPU cores)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        for attr in ("zoo_name", "zoo_dataset"):  # read by export, bench and messages
            if hasattr(net, attr):
                setattr(self, attr, getattr(net, attr))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.net(x) + self.net(x.flip(-1))) / 2


class FlipShiftAverage(FlipAverage):
    """0.5 x flip(image) + 0.25 x (flip(shifted up-left) + flip(shifted down-right)), one pixel, mirrored border."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        shifted = (super().forward(padded[..., :h, :w]) + super().forward(padded[..., 2:, 2:])) / 2
        return (super().forward(x) + shifted) / 2


def check_tta(tta: str) -> str:
    if tta not in TTAS:
        raise ZooError(f"unknown test-time augmentation {tta!r}; choose from {', '.join(repr(t) for t in TTAS)}")
    return tta


def with_tta(model: nn.Module, tta: str | None) -> nn.Module:
    """`model` as a recipe's `tta` field says it is evaluated ('' or None: unchanged)."""
    tta = Tta.of(tta)
    if tta is Tta.NONE:
        return model
    return FlipShiftAverage(model) if tta is Tta.FLIP_SHIFT else FlipAverage(model)


