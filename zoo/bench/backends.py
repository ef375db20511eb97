"""`zoo bench`'s runtimes: those that run the exported file (zoo.core.backends) and PyTorch's own, eager and
torch.compile, which run the model the file was exported from (torch imported when one is loaded: benching an
.onnx file needs none)."""

from __future__ import annotations

import numpy as np

from zoo.core.backends import (Backend, NullBackend, OpenCvBackend, OpenVinoBackend, OrtBackend,  # noqa: F401
                               missing_runtime)


class TorchBackend(Backend):
    """PyTorch eager, eval mode, inference mode: the reference onnxruntime is compared against."""

    name = "torch-eager"

    def __init__(self, device: str = "cpu", threads: int | None = None):
        self.device, self.threads = device, threads

    def load(self, model) -> TorchBackend:
        import torch

        self.torch = torch
        if self.threads:
            torch.set_num_threads(self.threads)
        self.model = model.eval().to(self.device)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.model(self.torch.from_numpy(x).to(self.device)).cpu().numpy()


class TorchCompileBackend(TorchBackend):
    """torch.compile of the PyTorch model (inductor); its first calls compile, which load() pays."""

    name = "torch-compile"

    def load(self, model) -> TorchCompileBackend:
        super().load(model)
        self.model = self.torch.compile(self.model)
        return self
