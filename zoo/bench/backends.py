"""Runtimes behind one interface (MLCommons style): a name, load(source), predict(x).

`null` returns a preallocated output without computing: its latency is the harness's own overhead.
"""

from __future__ import annotations

import numpy as np
import torch

from zoo.export import ort_session


class Backend:
    name = "base"

    def load(self, source) -> Backend:
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OrtBackend(Backend):
    """onnxruntime on one execution provider; refuses to silently fall back to CPU (see ort_session)."""

    def __init__(self, provider: str = "CPUExecutionProvider", threads: int | None = None):
        self.provider, self.threads = provider, threads
        self.name = "ort-" + provider.replace("ExecutionProvider", "").lower()

    def load(self, path) -> OrtBackend:
        self.sess = ort_session(path, self.provider, self.threads)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.sess.run(["logits"], {"input": x})[0]


class TorchBackend(Backend):
    """PyTorch eager, eval mode, inference mode: the reference onnxruntime is compared against."""

    name = "torch-eager"

    def __init__(self, device: str = "cpu", threads: int | None = None):
        self.device, self.threads = device, threads

    def load(self, model) -> TorchBackend:
        if self.threads:
            torch.set_num_threads(self.threads)
        self.model = model.eval().to(self.device)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.from_numpy(x).to(self.device)).cpu().numpy()


class NullBackend(Backend):
    name = "null"

    def __init__(self, num_classes: int = 10):
        self.num_classes = num_classes

    def load(self, source=None) -> NullBackend:
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((len(x), self.num_classes), np.float32)
