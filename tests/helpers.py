"""Shared by the tests: a short training run on the generated datasets, without probing or compiling."""

import json
import os
import signal
from pathlib import Path

import torch

from zoo.data import DataOptions, get_dataset_spec
from zoo.train import RuntimeRequest, get_recipe, train

FP32 = RuntimeRequest("cpu", "fp32", "off")


def data(root) -> DataOptions:
    return DataOptions(root, verify=False)


def train_fast(arch, dataset, out, root, recipe="fast", **kwargs):
    """train() with the named recipe (fields overridden by recipe-field kwargs), fp32 eager, no progress bar."""
    fields = {k: kwargs.pop(k) for k in list(kwargs) if k in ("epochs", "batch_size", "lr", "seed", "ema", "tta")}
    cfg = get_recipe(recipe, get_dataset_spec(dataset), arch, **fields)
    return train(arch, dataset, cfg, kwargs.pop("runtime", FP32), out=out, data=data(root), progress=False, **kwargs)


def interrupt_after(monkeypatch, steps: int) -> None:
    """Send this process a SIGINT right after its `steps`-th training step (as a Ctrl-C would)."""
    from zoo.train.progress import EpochProgress

    real, count = EpochProgress.step, []

    def step_then_signal(self, sums, lr, world):
        real(self, sums, lr, world)
        count.append(1)
        if len(count) == steps:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(EpochProgress, "step", step_then_signal)


def weights(out) -> dict:
    """The tensors of the checkpoint a run folder's last.json names."""
    from safetensors.torch import load_file

    out = Path(out)
    return load_file(str(out / json.loads((out / "last.json").read_text())["path"] / "model.safetensors"))


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def error_lines(err: str) -> list[str]:
    """stderr's lines without zoo predict's notes of the weights and the runtime it uses (`zoo: predicting with
    ...`, `zoo: running ...`)."""
    return [ln for ln in err.splitlines() if not ln.startswith(("zoo: running ", "zoo: predicting with "))]
