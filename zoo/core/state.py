"""State dicts: loading with errors that say which shapes differ, and saving a plain copy."""

from __future__ import annotations

import torch
from torch import nn

from zoo.core.errors import ZooError


def load_state_dict_checked(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` strictly; a mismatch names the first differing tensors and their shapes."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        arch = getattr(model, "zoo_name", type(model).__name__)
        ds = getattr(model, "zoo_dataset", "?")
        parts = []
        if shapes:
            parts.append("shapes differ: " + "; ".join(shapes[:3]) + (" ..." if len(shapes) > 3 else ""))
        if missing:
            parts.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise ZooError(f"{source} does not fit {arch} for {ds}: {'; '.join(parts)}; "
                       f"use a checkpoint trained for this model and dataset")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})


def load_state_dict_transfer(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Load `state` for fine-tuning: tensors whose shape differs (a classifier for another number of classes)
    keep the model's fresh initialization and are returned; a missing or unexpected name is another
    architecture and is refused, as in load_state_dict_checked."""
    own = model.state_dict()
    fresh = [k for k in own if k in state and state[k].shape != own[k].shape]
    if len(fresh) == len(own):
        fresh = []  # nothing would load: let the strict check name the shapes
    load_state_dict_checked(model, {**state, **{k: own[k] for k in fresh}}, source)
    return fresh


def state_dict_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """Plain, contiguous state dict of the underlying module (unwraps DDP and torch.compile)."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
