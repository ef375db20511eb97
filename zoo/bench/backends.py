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


class OpenVinoBackend(Backend):
    """OpenVINO on the CPU, reading zoo's .onnx file as it is. `hint` sets INFERENCE_PRECISION_HINT ("f32" to
    compare like with like); None keeps OpenVINO's default, which is bf16 on CPUs with AMX or AVX512-BF16.
    `self.precision` records what the compiled model actually uses."""

    def __init__(self, hint: str | None = "f32", threads: int | None = None):
        self.hint, self.threads = hint, threads

    def load(self, path) -> OpenVinoBackend:
        import openvino as ov

        config = {"INFERENCE_NUM_THREADS": self.threads} if self.threads else {}
        if self.hint:
            config["INFERENCE_PRECISION_HINT"] = self.hint
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # f32, bf16, ...
        self.name = f"openvino ({self.precision})"
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output("logits")
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.request.infer({0: x})[self.output].copy()


class OpenCvBackend(Backend):
    """OpenCV's DNN module (CPU), reading the same .onnx file."""

    name = "opencv"

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def load(self, path) -> OpenCvBackend:
        import cv2

        if self.threads:
            cv2.setNumThreads(self.threads)
        self.net = cv2.dnn.readNetFromONNX(str(path))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.net.setInput(x)
        return self.net.forward("logits").copy()


class TorchCompileBackend(TorchBackend):
    """torch.compile of the PyTorch model (inductor); its first calls compile, which load() pays."""

    name = "torch-compile"

    def load(self, model) -> TorchCompileBackend:
        super().load(model)
        self.model = torch.compile(self.model)
        return self


def missing_runtime(name: str) -> str | None:
    """Why a runtime cannot run here (None when it can)."""
    module = {"openvino": "openvino", "opencv": "cv2"}.get(name)
    if module is None:
        return None
    try:
        __import__(module)
    except ImportError:
        extra = {"openvino": "openvino", "opencv": "opencv"}[name]
        return f"{name} is not installed (pip install 'zoo-classifiers[{extra}]')"
    return None
