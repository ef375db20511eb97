"""onnxruntime sessions, set up one way for export's gate, bench and predict (onnxruntime is imported on use:
`zoo predict` on an .onnx file needs nothing heavier)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from zoo.core.errors import ZooError

NEEDED = ("class_names", "mean", "std", "input_shape")  # what a consumer of an exported file reads from it
MAX_SIDE = 2048  # pixels: an input side beyond this is not a small classifier's (nor memory zoo should take)


def ort_session(path: str | Path, provider: str = "CPUExecutionProvider", threads: int | None = None):
    """An InferenceSession on exactly `provider`: onnxruntime-gpu falls back to the CPU without a GPU, and a
    figure labelled CUDA must not be a CPU figure."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    providers: list = [provider]
    if provider == "CUDAExecutionProvider":
        providers = [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})]
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime's own exception types (InvalidGraph, Fail, NoSuchFile, ...)
        raise ZooError(f"onnxruntime {ort.__version__} cannot load {path}: {str(e).splitlines()[0][:160]}; "
                       f"export it again with zoo export") from None
    if sess.get_providers()[0] != provider:
        raise ZooError(f"{provider} is listed by onnxruntime but could not start (no usable GPU/CUDA); "
                       f"the session would run on {sess.get_providers()[0]}")
    return sess


def session_metadata(sess) -> dict:
    """zoo's metadata_props of a loaded file, JSON values decoded (no onnx import needed)."""
    out = {}
    for k, v in sess.get_modelmeta().custom_metadata_map.items():
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def file_metadata(path: str | Path) -> dict:
    """zoo's metadata of an exported .onnx file, checked against its graph, without torch or onnx: onnxruntime
    loads the file (a damaged graph does not load) and checked_metadata holds the metadata to it."""
    if not Path(path).is_file():
        raise ZooError(f"ONNX file {path} not found; check the path, or export it with zoo export")
    meta = checked_metadata(path, ort_session(path))
    if not {"model", "dataset"} <= set(meta):
        raise ZooError(f"{path} has no zoo metadata (model, dataset); export it with zoo export")
    return meta


def checked_metadata(path: str | Path, session) -> dict:
    """zoo's metadata of a loaded file (an onnxruntime session or an IrSession), each field a consumer needs
    present and true of the graph; else a one-line error."""
    meta = session.metadata() if isinstance(session, IrSession) else session_metadata(session)
    missing = [k for k in NEEDED if k not in meta]
    if missing:
        raise ZooError(f"{path} lacks zoo's metadata ({', '.join(missing)}); export it with zoo export")
    why = metadata_problem(meta, session)
    if why:
        raise ZooError(f"{path}: its metadata does not describe its graph ({why}); export it again with zoo export")
    return meta


def _numbers(v, n: int, positive: bool = False) -> bool:
    ok = isinstance(v, list) and len(v) == n and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                      and np.isfinite(x) for x in v)
    return ok and (not positive or all(x > 0 for x in v))


def metadata_problem(meta: dict, session) -> str | None:
    """What in a file's metadata contradicts its graph or cannot be true, in words; None when all holds. The
    class names against the output's width, mean/std against the channels, the input shape against the
    graph's input and a sane size: metadata is any file's say-so, the graph is what runs."""
    shape, names = meta["input_shape"], meta["class_names"]
    if not (isinstance(shape, list) and len(shape) == 4 and all(isinstance(d, int) for d in shape[1:])):
        return f"input_shape {shape!r} is not [batch, C, H, W] or [batch, H, W, C]"
    channels, h, w = (shape[3], shape[1], shape[2]) if meta.get("layout") == "NHWC" else shape[1:]
    if channels not in (1, 3) or not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        return f"input_shape {shape} is not 1 or 3 channels of at most {MAX_SIDE}x{MAX_SIDE} pixels"
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        return f"the graph has {len(inputs)} inputs; zoo feeds one image batch"
    graph = inputs[0].shape
    if len(graph) != 4 or any(isinstance(g, int) and g != d for g, d in zip(graph[1:], shape[1:])):
        return f"input_shape {shape} but the graph's input {inputs[0].name!r} is {graph}"
    if not (isinstance(names, list) and names and all(isinstance(c, str) for c in names)):
        return "class_names is not a list of names"
    width = outputs[0].shape[-1] if outputs[0].shape else None
    if isinstance(width, int) and width != len(names):
        return f"{len(names)} class names for {width} outputs"
    for key, positive in (("mean", False), ("std", True)):
        if not _numbers(meta[key], channels, positive):
            return f"{key} {meta[key]!r} is not {channels} {'positive ' if positive else ''}finite numbers"
    return None


def cuda_device() -> str | None:
    """The name of the GPU onnxruntime's CUDA provider would run on, or None where none is usable. onnxruntime-gpu
    lists the provider on any machine: PyTorch's check where it is installed, else the CUDA driver's own
    (cuInit, cuDeviceGetCount), which is what that check asks."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return None
    try:
        import torch
    except ImportError:
        return _driver_device()
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _cuda_driver():
    """The CUDA driver's library, or None where the machine has no NVIDIA driver."""
    import ctypes

    try:
        return ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None


def _driver_device() -> str | None:
    import ctypes

    cuda = _cuda_driver()
    if cuda is None:
        return None
    count, name = ctypes.c_int(0), ctypes.create_string_buffer(256)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return None
    device = ctypes.c_int(0)
    if cuda.cuDeviceGet(ctypes.byref(device), 0) != 0 or cuda.cuDeviceGetName(name, 256, device) != 0:
        return "CUDA device 0"
    return name.value.decode(errors="replace")


class IrSession:
    """An OpenVINO IR file (NAME.xml, written by `zoo export --format openvino`) seen as zoo sees an onnxruntime
    session: its inputs' and outputs' names and shapes (None for a dynamic side), and zoo's metadata from its
    rt_info. Read, not compiled: OpenVinoBackend compiles it to run."""

    class _Port:
        def __init__(self, port):
            self.name = port.get_any_name()
            self.shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]

    def __init__(self, path: str | Path):
        import openvino as ov

        from zoo.core.bounded import MAX_BIN_BYTES, check_xml, regular_file

        check_xml(path)  # size and depth before OpenVINO's parser, which recurses on depth
        weights = regular_file(Path(path).with_suffix(".bin"), "OpenVINO IR weights")  # a FIFO would block
        if weights.stat().st_size > MAX_BIN_BYTES:
            raise ZooError(f"{weights} is over zoo's limit of {MAX_BIN_BYTES:,} bytes; it is not an IR zoo wrote: "
                       f"export it again")
        try:
            self.model = ov.Core().read_model(str(path))
        except Exception as e:  # a damaged .xml, a missing .bin: OpenVINO's page of log, in one line
            raise ZooError(f"OpenVINO cannot read {path}: {str(e).strip().splitlines()[0][:160]}; export it again "
                       f"with zoo export") from None
        self._check_pair(Path(path), weights)

    def _check_pair(self, xml: Path, weights: Path) -> None:
        """The .bin is the one exported with this .xml: zoo records its sha256 in the .xml's metadata."""
        want = self.metadata().get("bin_sha256")
        if want is None:
            return  # an IR written before zoo bound the pair
        from zoo.core.shipped import sha256_file

        if sha256_file(weights) != want:
            raise ZooError(f"{weights} is not the weights file exported with {xml.name} (its sha256 differs from "
                           f"the one the .xml records); copy the pair together, or export it again")

    def get_inputs(self) -> list:
        return [self._Port(p) for p in self.model.inputs]

    def get_outputs(self) -> list:
        return [self._Port(p) for p in self.model.outputs]

    def metadata(self) -> dict:
        """zoo's rt_info entries, JSON values decoded; {} for an IR zoo did not write."""
        if not self.model.has_rt_info(["zoo"]):
            return {}
        out = {}
        for key in self.model.get_rt_info(["zoo"]).value:
            raw = self.model.get_rt_info(["zoo", key]).astype(str)
            try:
                out[key] = json.loads(raw)
            except json.JSONDecodeError:
                out[key] = raw
        return out
