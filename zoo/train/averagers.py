"""Weights kept beside training, one small interface: an exponential moving average (recipe field `ema`, torch's
AveragedModel as torchvision's references use it) and Lookahead's slow weights (`lookahead`, with airbench94's
decay). A Run steps each after every optimizer step, ends each with the run, and checkpoints and restores each
with the run's state; the EMA's average is what is evaluated and exported.
"""

from __future__ import annotations

import torch

from zoo.core.state import load_state_dict_checked


class Averager:
    """After each step, at the run's end, into and out of a checkpoint; `evaluated` is the model to read."""

    def step(self, model: torch.nn.Module, done: int, total: int) -> None:
        """After optimizer step number `done` (counted over the run) of `total`."""

    def end(self, model: torch.nn.Module) -> None:
        """At the end of the run's last epoch."""

    def evaluated(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def state(self, model: torch.nn.Module) -> dict:
        """What a checkpoint keeps of it, beside the run's state."""
        return {}

    def restore(self, state: dict, weights: dict, source: str) -> dict:
        """Take back what state() kept; `weights` are the checkpoint's model weights, and the weights training
        resumes from come back (the trained ones, when the checkpoint holds an average)."""
        return weights


class Ema(Averager):
    def __init__(self, model: torch.nn.Module, decay: float):
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        self.avg = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    def step(self, model: torch.nn.Module, done: int, total: int) -> None:
        self.avg.update_parameters(model)

    def evaluated(self, model: torch.nn.Module) -> torch.nn.Module:
        return self.avg.module

    def state(self, model: torch.nn.Module) -> dict:
        from zoo.core.state import state_dict_of

        # the checkpoint's model is the average; the trained weights resume from here
        return {"trained_weights": state_dict_of(model), "ema_n_averaged": int(self.avg.n_averaged)}

    def restore(self, state: dict, weights: dict, source: str) -> dict:
        load_state_dict_checked(self.avg.module, weights, source=source)
        self.avg.n_averaged.fill_(state["ema_n_averaged"])
        return state["trained_weights"]


class Lookahead(Averager):
    """Every k steps the slow weights move toward the fast ones and the fast take their place (Zhang et al. 2019),
    with airbench94's decay 0.95^k x progress^3 (none early in training, 0.95^k at its end); the run ends on the
    slow weights. Every floating tensor is averaged, BatchNorm's statistics too."""

    def __init__(self, model: torch.nn.Module, k: int):
        self.k = k
        self.slow = {n: v.detach().clone() for n, v in model.state_dict().items() if v.is_floating_point()}

    def step(self, model: torch.nn.Module, done: int, total: int) -> None:
        if done % self.k == 0:
            self._pull(model, 0.95 ** self.k * (done / total) ** 3)

    def end(self, model: torch.nn.Module) -> None:
        self._pull(model, 1.0)

    @torch.no_grad()
    def _pull(self, model: torch.nn.Module, decay: float) -> None:
        """slow <- decay x slow + (1 - decay) x fast; fast <- slow."""
        state = model.state_dict()
        for name, t in self.slow.items():
            t.lerp_(state[name], 1 - decay)
            state[name].copy_(t)

    def state(self, model: torch.nn.Module) -> dict:
        return {"lookahead": self.slow}

    def restore(self, state: dict, weights: dict, source: str) -> dict:
        for name, t in self.slow.items():
            t.copy_(state["lookahead"][name])
        return weights


def averagers(model: torch.nn.Module, ema: float, lookahead: int) -> list[Averager]:
    """The recipe's averagers, in the order they step (Lookahead moves the weights the EMA then averages)."""
    return [*([Lookahead(model, lookahead)] if lookahead else []), *([Ema(model, ema)] if ema else [])]
