"""onnxruntime sessions, set up one way for export's gate, bench and predict (onnxruntime is imported on use:
`zoo predict` on an .onnx file needs nothing heavier)."""

from __future__ import annotations

import json
from pathlib import Path

from zoo.core.errors import ZooError


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
