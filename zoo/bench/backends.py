"""Runtimes behind one 4-method interface (MLCommons style): name, version, load, predict.

`null` returns a preallocated output without computing: its latency is the harness's own overhead.
"""

from __future__ import annotations

import numpy as np


class Backend:
    name = "base"

    def version(self) -> str:
        raise NotImplementedError

    def load(self, source) -> Backend:
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OrtBackend(Backend):
    """onnxruntime on one execution provider; refuses to silently fall back to CPU."""

    def __init__(self, provider: str = "CPUExecutionProvider", threads: int | None = None):
        self.provider, self.threads = provider, threads
        self.name = "ort-" + provider.replace("ExecutionProvider", "").lower()

    def version(self) -> str:
        import onnxruntime as ort
        return ort.__version__

    def load(self, path) -> OrtBackend:
        import onnxruntime as ort

        from zoo.errors import ZooError

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        providers: list = [self.provider]
        if self.provider == "CUDAExecutionProvider":
            providers = [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})]
        self.sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        if self.sess.get_providers()[0] != self.provider:  # onnxruntime-gpu falls back to CPU without a GPU
            raise ZooError(f"{self.provider} is listed by onnxruntime but could not start (no usable GPU/CUDA); "
                           f"session runs on {self.sess.get_providers()[0]}")
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.sess.run(["logits"], {"input": x})[0]


class TorchBackend(Backend):
    """PyTorch eager, eval mode, no_grad: the reference ORT is compared against."""

    name = "torch-eager"

    def __init__(self, device: str = "cpu", threads: int | None = None):
        self.device, self.threads = device, threads

    def version(self) -> str:
        import torch
        return torch.__version__

    def load(self, model) -> TorchBackend:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        self.model = model.eval().to(self.device)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model(torch.from_numpy(x).to(self.device))
            return out.cpu().numpy()


class NullBackend(Backend):
    name = "null"

    def __init__(self, num_classes: int = 10):
        self.num_classes = num_classes

    def version(self) -> str:
        return "-"

    def load(self, source=None) -> NullBackend:
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((len(x), self.num_classes), np.float32)
