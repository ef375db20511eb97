"""Runtimes that run an exported .onnx file, behind one interface (MLCommons style): a name, load(path),
predict(x) -> logits. Used by `zoo bench` (which adds PyTorch's) and `zoo predict --runtime`; torch-free, and
each runtime is imported only when it is used.

`null` returns a preallocated output without computing: its latency is the harness's own overhead.

Which runtimes there are, and what each can do, is zoo.core.runtimes' table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.core.errors import ZooError
from zoo.core.runtimes import FILE_RUNTIMES, RUNTIMES, missing_runtime
from zoo.core.sessions import ort_session



class Backend:
    name = "base"

    def load(self, source) -> Backend:
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Let go of the loaded model now (several backends alive at once are closed in reverse load order)."""


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
        try:
            self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        except Exception as e:  # OpenVINO's RuntimeError carries a page of frontend log: its gist in one line
            version = ov.__version__.split("-")[0]
            raise ZooError(f"OpenVINO {version} cannot load {Path(path).name}: {_gist(e)}; export it again, or use "
                       f"another --runtime") from None
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # f32, bf16, ...
        self.name = f"openvino ({self.precision})"
        self.request = self.compiled.create_infer_request()
        names = {n for o in self.compiled.outputs for n in o.get_names()}
        self.output = self.compiled.output("logits" if "logits" in names else 0)  # an IR from elsewhere: by position
        first = self.compiled.input(0).get_partial_shape()
        self.batch = first[0].get_length() if first.rank.is_static and first[0].is_static else None  # a static batch
        self._tensor = ov.Tensor
        return self

    def close(self) -> None:
        """OpenVINO's CPU plugin installs an alternate signal stack for the thread that compiles and restores the
        one it found when the model is freed: compiled models freed out of load order leave the thread with a
        stack that is no longer mapped, and the next signal it takes (Ctrl-C) crashes the process. Measured with
        OpenVINO 2026.4; hence zoo frees them explicitly, last loaded first."""
        self.request = self.compiled = self.output = self._tensor = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.batch is not None and len(x) != self.batch:  # a graph of static batch k: run k images at a time
            k, n = self.batch, len(x)
            padded = np.concatenate([x, np.zeros((-n % k, *x.shape[1:]), x.dtype)])
            return np.concatenate([self._infer(padded[i:i + k]) for i in range(0, len(padded), k)])[:n]
        return self._infer(x)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        # x's memory as the input tensor (no copy in; x stays alive for the call), one copy out. Measured on
        # ResNet-20 at batch 1 (Intel Xeon with AMX, bf16): 26 us over a bare infer(), against 52 us through
        # infer({0: x}, share_inputs=True, share_outputs=True) -- 11% of the call, beside benchmark_app
        self.request.set_input_tensor(self._tensor(np.ascontiguousarray(x), shared_memory=True))
        try:
            self.request.infer()
        except Exception as e:  # a shape the graph does not take, say: one line, not OpenVINO's page
            raise ZooError(f"OpenVINO could not run the model on a batch of {x.shape}: {_gist(e)}") from None
        return self.request.get_tensor(self.output).data.copy()


def _survives_in_a_child(code: str, who: str, path) -> None:
    """Run `code` in a child interpreter first: a runtime that crashes reading a graph (OpenCV 5.1's ONNX
    importer segfaults on ZooNet's) takes the child down, not zoo, and is one line."""
    import subprocess
    import sys

    st = Path(path).stat()
    key = (code, st.st_size, st.st_mtime_ns)  # the same file read again (bench's batch sizes): one child
    if key in _SURVIVED:
        return
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode < 0:
        raise ZooError(f"{who} crashes reading {Path(path).name} (signal {-done.returncode}); use another runtime")
    _SURVIVED.add(key)


_SURVIVED: set[tuple] = set()  # (code, file size, mtime) a child has read without crashing, in this process


class OpenCvBackend(Backend):
    """OpenCV's DNN module (CPU), reading the same .onnx file."""

    name = "opencv"

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def load(self, path) -> OpenCvBackend:
        import cv2

        if self.threads:
            cv2.setNumThreads(self.threads)
        _survives_in_a_child(f"import cv2; cv2.dnn.readNetFromONNX({str(path)!r})", f"OpenCV {cv2.__version__}", path)
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as e:
            raise ZooError(f"OpenCV {cv2.__version__} cannot load {Path(path).name}: {_gist(e)}; use another "
                       f"--runtime") from None
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.net.setInput(x)
        return self.net.forward("logits").copy()


def _gist(e: Exception) -> str:
    """The first line of a runtime's error that names what failed (not "Exception from src/...")."""
    lines = [ln.strip(" -") for ln in str(e).splitlines() if ln.strip()]
    named = [ln for ln in lines if ln.startswith(("Conversion is failed for", "No conversion rule found"))]
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check 'false'", "FrontEnd API failed"))]
    return "; ".join(named)[:200] if named else (useful or lines or [type(e).__name__])[0][:160]


def file_backends(name: str, precision: str, threads: int | None = None) -> list[Backend]:
    """The unloaded backends zoo bench times for an exported file of `precision` on file runtime `name` (CPU):
    none when it does not run that precision; OpenVINO twice for fp32 (at f32, and at its default, bf16 on CPUs
    with AMX or AVX512-BF16)."""
    if precision not in RUNTIMES[name].precisions:
        return []
    if name == "openvino":
        return [OpenVinoBackend("f32", threads)] + ([OpenVinoBackend(None, threads)] if precision == "fp32" else [])
    return [file_runtime(name, threads)]


# Each file runtime of zoo.core.runtimes.RUNTIMES: (threads, hint) -> its unloaded backend. `hint`: a precision
# the runtime may be asked to run at (OpenVINO's "f32" or "bf16"; None: its default).
BACKENDS = {
    "onnxruntime": lambda threads, hint: OrtBackend("CPUExecutionProvider", threads),
    "openvino": lambda threads, hint: OpenVinoBackend(hint, threads),
    "opencv": lambda threads, hint: OpenCvBackend(threads),
}


def file_runtime(name: str, threads: int | None = None, hint: str | None = None):
    """An unloaded backend for an .onnx file on runtime `name` (BACKENDS). A runtime that is not installed is a
    one-line error naming the extra to install."""
    if name not in FILE_RUNTIMES:
        raise ZooError(f"unknown runtime {name!r}; choose from auto, {', '.join(FILE_RUNTIMES)}")
    why = missing_runtime(name)
    if why:
        raise ZooError(f"--runtime {name}: {why}")
    return BACKENDS[name](threads, hint)
