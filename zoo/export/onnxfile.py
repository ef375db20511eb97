"""An exported file's two faces: its metadata (zoo's facts about the model) and an onnxruntime session."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx

from zoo.core.errors import ZooError
from zoo.core.sessions import ort_session  # noqa: F401  (re-exported: export's gate and bench use it)
from zoo.data.resolve import register_record
from zoo.data.resolve import get_dataset_spec


def graph_sha256(proto) -> str:
    """sha256 of the graph (nodes and weights, not the metadata): a damaged or edited file fails it."""
    return hashlib.sha256(proto.graph.SerializeToString(deterministic=True)).hexdigest()


# What torch's exporter records per node that names the exporting machine's files (its Python stack): dropped, so
# that an exported file says nothing of where it was made.
MACHINE_PROPS = ("pkg.torch.onnx.stack_trace",)


def add_metadata(path: Path, meta: dict) -> None:
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for graph in [proto.graph, *(f for f in proto.functions)]:
        for node in graph.node:
            keep = [p for p in node.metadata_props if p.key not in MACHINE_PROPS]
            del node.metadata_props[:]
            node.metadata_props.extend(keep)
    for k, v in {**meta, "graph_sha256": graph_sha256(proto)}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
    onnx.save(proto, str(path))


def read_metadata(path: str | Path) -> dict:
    """metadata_props of an exported file, JSON values decoded."""
    proto = onnx.load(str(path), load_external_data=False)
    out = {}
    for p in proto.metadata_props:
        try:
            out[p.key] = json.loads(p.value)
        except json.JSONDecodeError:
            out[p.key] = p.value
    return out


def check_onnx(path: str | Path) -> dict:
    """Metadata of a zoo-exported ONNX file; a corrupt or foreign file is a one-line error."""
    if not Path(path).is_file():
        raise ZooError(f"ONNX file {path} not found; check the path, or export it with zoo export")
    try:
        onnx.checker.check_model(str(path), full_check=True)
        meta = read_metadata(path)
    except Exception as e:
        raise ZooError(f"{path} is not a valid ONNX model ({str(e).splitlines()[0][:100]}); "
                       f"re-export it with zoo export") from None
    if not {"model", "dataset"} <= set(meta):
        raise ZooError(f"{path} has no zoo metadata (model, dataset); export it with zoo export")
    proto = onnx.load(str(path), load_external_data=False)
    if meta.get("graph_sha256") not in (None, graph_sha256(proto)):
        raise ZooError(f"{path}: its graph does not match the sha256 in its metadata (the file is damaged or was "
                       f"edited); export it again with zoo export")
    graph_input = [d.dim_value or d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    register_record(meta.get("dataset_spec"))  # a model of a folder dataset carries its spec
    spec = get_dataset_spec(str(meta["dataset"]))
    expected = [spec.size, spec.size, spec.channels] if meta.get("layout") == "NHWC" else list(spec.input_shape)
    if graph_input[1:] != expected:
        raise ZooError(f"{path}: its metadata names {spec.name} ({'x'.join(map(str, spec.input_shape))} images) but "
                       f"the graph takes {graph_input[1:]}; the metadata was edited: re-export it with zoo export")
    return meta
