"""What zoo knows of each runtime, in one table: what it imports, the extra that installs it, the precisions zoo
bench runs on it, whether it reads zoo's .onnx file, and its own file format. zoo bench, zoo predict, zoo
export --format, the deployment cache and the options' help read it from here; the backends that run the
files are zoo.core.backends. Importable without numpy or onnxruntime (the command line's help names them).

Adding a runtime is a row here and its backend class (docs/contributing.md, "Add a runtime").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuntimeFacts:
    name: str  # as --runtime names it
    module: str | None  # imported to run it (None: in the base install)
    extra: str | None  # pip install 'zoo-classifiers[EXTRA]' brings it
    distributions: tuple[str, ...]  # the wheels whose version a deployment recommendation records
    precisions: tuple[str, ...]  # the exported files' precisions zoo bench runs on it (CPU)
    reads_onnx: bool = True  # runs zoo's .onnx file (zoo predict --runtime NAME); torch-compile runs PyTorch
    own_format: tuple[str, str] | None = None  # (zoo export --format NAME, the file's suffix) of its own format


RUNTIMES = {r.name: r for r in (
    RuntimeFacts("onnxruntime", None, None, ("onnxruntime-gpu", "onnxruntime"), ("fp32", "int8", "fp16"),
                 own_format=("ort", ".ort")),
    RuntimeFacts("openvino", "openvino", "openvino", ("openvino",), ("fp32", "int8"), own_format=("openvino", ".xml")),
    RuntimeFacts("opencv", "cv2", "opencv", ("opencv-python-headless", "opencv-python"), ("fp32",)),
    RuntimeFacts("torch-compile", "torch", "train", ("torch",), ("fp32",), reads_onnx=False),
)}
FILE_RUNTIMES = tuple(name for name, r in RUNTIMES.items() if r.reads_onnx)  # what zoo predict runs
OWN_FORMATS = {r.own_format[1]: name for name, r in RUNTIMES.items() if r.own_format}  # suffix -> runtime


def missing_runtime(name: str) -> str | None:
    """Why a runtime cannot run here (None when it can)."""
    facts = RUNTIMES.get(name)
    if facts is None or facts.module is None:
        return None
    try:
        __import__(facts.module)
    except ImportError:
        return f"{name} is not installed (pip install 'zoo-classifiers[{facts.extra}]')"
    return None
