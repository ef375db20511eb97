"""The inner loops: optimizer, one training epoch, evaluation. Small, explicit, no global state."""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zoo.core.errors import ZooError
from zoo.models import classifier
from zoo.train.recipes import TrainConfig, lr_at


class NonFiniteLoss(ZooError):
    pass


class Interrupted(Exception):
    """Raised after a Ctrl-C (SIGINT) or SIGTERM once the current step is finished and saved."""

    def __init__(self, message: str = "", signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        """The shell's status for death by that signal: 130 after Ctrl-C, 143 after SIGTERM."""
        return 128 + self.signum


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD; weight decay on conv/linear weights only (biases and BatchNorm are not decayed; BatchNorm learns at
    cfg.bias_lr times the lr); with cfg.backbone_lr != 1, every parameter but the classifier's at that share of
    the lr (the groups' lr_scale)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    parts = [(trainable, 1.0)]
    if cfg.backbone_lr != 1.0:
        head = {id(p) for p in classifier(model).parameters()}
        parts = [([p for p in trainable if id(p) in head], 1.0),
                 ([p for p in trainable if id(p) not in head], cfg.backbone_lr)]
    norms = set()  # BatchNorm's parameters get a group of their own only when their lr differs (bias_lr)
    if cfg.bias_lr != 1.0:
        norms = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)
                 for p in m.parameters()}
    kinds = [(lambda p: p.ndim > 1, 1.0, cfg.weight_decay), (lambda p: p.ndim <= 1 and id(p) not in norms, 1.0, 0.0)]
    if norms:
        kinds.append((lambda p: id(p) in norms, cfg.bias_lr, 0.0))
    groups = [{"params": [p for p in params if which(p)], "lr_scale": scale * lr_scale, "weight_decay": decay}
              for params, scale in parts for which, lr_scale, decay in kinds]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class EpochSums:
    """Running sums over an epoch; saved in mid-epoch checkpoints so a resumed epoch reports the same."""
    loss: float = 0.0  # sum of per-image losses
    correct: int = 0
    seen: int = 0
    step: int = 0  # optimizer steps done this epoch
    seconds: float = 0.0  # time spent in training steps
    wall: float = 0.0  # wall seconds of this epoch spent in earlier processes (before a mid-epoch checkpoint)

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor([self.loss, self.correct, self.seen], dtype=torch.float64)


def train_one_epoch(model: nn.Module, loader, opt: torch.optim.Optimizer, cfg: TrainConfig, epoch: int, *,
                    precision: str, sums: EpochSums, generator_state=None,
                    should_stop: Callable[[], bool] = lambda: False,
                    on_step: Callable[[EpochSums, float], None] = lambda s, lr: None,
                    all_finite: Callable[[torch.Tensor], bool] = lambda t: bool(torch.isfinite(t))) -> EpochSums:
    """Train from step `sums.step` to the end of the epoch (or until should_stop() after a step)."""
    model.train()
    steps = len(loader)
    device = loader.device
    for x, y in loader.iterate(sums.step, generator_state):
        t0 = time.perf_counter()
        lr = lr_at(cfg, epoch + sums.step / steps)
        for group in opt.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        with autocast(device, precision):
            logits = model(x)  # [B, classes]
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        if not all_finite(loss.detach()):
            raise NonFiniteLoss(f"loss became {loss.item()} at epoch {epoch} step {sums.step} (lr {lr:.4g})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n = len(y)
        sums.loss += loss.item() * n
        sums.correct += int((logits.argmax(1) == y).sum())
        sums.seen += n
        sums.step += 1
        sums.seconds += time.perf_counter() - t0
        on_step(sums, lr)
        if should_stop() and sums.step < steps:
            raise Interrupted
    return sums


@torch.no_grad()
def evaluate(model: nn.Module, loader, precision: str = "fp32", right: list | None = None) -> tuple[float, int, int]:
    """(sum of losses, correct, count) over the loader; caller divides (after all-reduce under DDP). `right`, when
    given, takes each batch's per-image correctness (bool, in the loader's order)."""
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    for x, y in loader:
        with autocast(loader.device, precision):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        hits = logits.argmax(1) == y
        correct += int(hits.sum())
        seen += len(y)
        if right is not None:
            right.append(hits.cpu())
    return loss_sum, correct, seen


def pct(correct: float, seen: float) -> float:
    return 100.0 * correct / seen if seen else math.nan


NOISE_Z = 1.645  # an epoch replaces the --init weights only when its gain over them on the held-out images passes
#                  McNemar's test at 5% (one-sided; beyond_noise)


def versus(start: torch.Tensor, now: torch.Tensor) -> tuple[int, int]:
    """(images the epoch gets right that the start got wrong, and the other way round): per-image correctness of
    the same held-out images, in the same order."""
    return int((now & ~start).sum()), int((start & ~now).sum())


def beyond_noise(won: int, lost: int) -> bool:
    """Whether an epoch's gain over the start on the held-out images is more than their noise: McNemar's test
    with the continuity correction, (won - lost - 1) / sqrt(won + lost) > NOISE_Z. On a small folder of classes
    the weights already know, an epoch won 2 held-out images of 400 and lost none, by chance: it then lost 9 of
    4,000 test images (four CIFAR-10 classes); a real gain clears it easily (five new classes: tens of images)."""
    return won + lost > 0 and (won - lost - 1) / math.sqrt(won + lost) > NOISE_Z
