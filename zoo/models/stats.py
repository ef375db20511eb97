"""Static facts about a built model: parameters, fp32 size, multiply-accumulates per image."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fp32_size_mb(model: nn.Module) -> float:
    """Parameters and buffers (BN statistics) at 4 bytes each, in MB (10^6 bytes)."""
    n = num_params(model) + sum(b.numel() for b in model.buffers() if b.is_floating_point())
    return n * 4 / 1e6


@torch.no_grad()
def macs_per_image(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates for one image, from torch's FlopCounterMode (FLOPs / 2; convs and matmuls)."""
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
