"""PyTorch -> ONNX (dynamo or TorchScript exporter), and fp16 / int8 conversion with onnxruntime's tools."""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from zoo.core.errors import ZooError, has_flag
from zoo.export.cachekey import EXPORT_REVISION, INT8_SETTINGS, onnx_name  # noqa: F401  (export's names)
from zoo.export.qdq import pad_conv_input_channels
from zoo.export.shortcut import shortcuts_as_convs

PRECISIONS = ("fp32", "fp16", "int8")
EXPORTERS = ("dynamo", "torchscript")


class ImageInput(torch.nn.Module):
    """A self-contained graph: uint8 images [N, H, W, C] as stored in files -> (logits, probabilities); the cast,
    the scaling, the dataset's normalization and the layout change happen inside."""

    def __init__(self, model: torch.nn.Module, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 1, 1, -1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 1, 1, -1))

    def forward(self, x: torch.Tensor):
        x = (x.float() / 255 - self.mean) / self.std  # [N, H, W, C], as predict's numpy pipeline computes it
        logits = self.model(x.permute(0, 3, 1, 2))  # [N, classes]
        return logits, torch.softmax(logits, dim=1)


def torch_to_onnx(model: torch.nn.Module, input_shape, path: Path, opset: int, exporter: str,
                  image_input: bool = False) -> None:
    """Export with a dynamic batch axis (traced at batch 2), tensors named input / logits (/ probabilities),
    weights embedded. image_input: `model` is an ImageInput and input_shape is (H, W, C)."""
    x = torch.randint(0, 256, (2, *input_shape), dtype=torch.uint8) if image_input else torch.randn(2, *input_shape)
    outputs = ["logits", "probabilities"] if image_input else ["logits"]
    try:  # the exporters narrate their steps (stdout), warn and log tracebacks (stderr): zoo says what matters
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _export(model, x, path, opset, exporter, outputs)
    except ZooError:
        raise
    except OSError as e:  # a full disk or a folder that went away: not the exporter's fault
        raise ZooError(f"cannot write {path.parent} ({e.strerror or e}); free disk space there") from None
    except Exception as e:
        other = "torchscript" if exporter == "dynamo" else "dynamo"
        raise ZooError(f"the {exporter} exporter cannot export {getattr(model, 'zoo_name', 'this model')}: "
                       f"{_why(e)}; try {'' if has_flag('--exporter') else 'zoo export with '}--exporter {other} or "
                       f"another --opset") from None
    if Path(str(path) + ".data").exists():
        raise ZooError(f"the exporter wrote external weights beside {path.name}; zoo exports models under 2 GB "
                           f"only")
    graph = onnx.load(str(path))
    written = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), None)
    if written != opset:  # the dynamo exporter falls back to its own opset when the conversion fails
        raise ZooError(f"the {exporter} exporter wrote opset {written}, not the requested {opset}; "
                       f"export with --opset {written}")
    if shortcuts_as_convs(graph):  # ResNet-20's option-A shortcuts: faster in onnxruntime (shortcut.py)
        onnx.save(graph, str(path))


def _why(e: BaseException) -> str:
    """The unsupported operator, when the error chain names one; else the first line of the error."""
    text = ""
    while e is not None:
        text += "\n" + str(e)
        e = e.__cause__ or e.__context__
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    op = re.search(r"(aten[:.]+[A-Za-z0-9_]+)", text)
    if op:
        return f"unsupported operator {op.group(1).replace('.', '::', 1)}"
    return (text.strip().splitlines() or ["unknown error"])[0][:160]


def _export(model, x, path: Path, opset: int, exporter: str, outputs: list[str]) -> None:
    if exporter == "dynamo":
        prog = torch.onnx.export(model, (x,), dynamo=True, input_names=["input"], output_names=outputs,
                                 opset_version=opset, external_data=False, verbose=False,
                                 dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65536)},))
        prog.save(str(path), external_data=False)
    else:
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["input"], output_names=outputs,
                          opset_version=opset, dynamic_axes={n: {0: "batch"} for n in ["input", *outputs]})


def to_fp16(src: Path, dst: Path) -> None:
    """Weights and compute in half; the graph's input and output stay fp32 (onnxruntime's converter)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    import onnx_ir as ir

    half = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    model = ir.from_proto(half)
    model.graph.sort()  # the converter appends its input casts at the end; the checker wants topological order
    onnx.save(ir.to_proto(model), str(dst))


# int8 settings, tried in this order by the exporter; the first that passes the accuracy gate is shipped.
# Measured on resnet20.cifar10 (AMD EPYC, 2 cores, AVX512-VNNI, onnxruntime 1.31, batch 256, full test split,
# throughput as a ratio to fp32 timed in alternation; benchmarks/tools/int8_settings.py, two runs): every layer int8
# 1.92x (QDQ, -0.06 pt) and 1.92-1.98x (QOperator, +0.01 pt); first and last layer float (zoo's earlier only
# setting) 1.4-1.6x, because onnxruntime's NHWC int8 convolutions then sit between 18 Transposes;
# per-tensor weights, reduce_range, s8 activations, Percentile or Entropy calibration: no faster (s8/s8
# 0.53-0.58x). QDQ, because OpenVINO 2026.4 cannot read the QOperator file (per-channel QLinearConv, QGemm)
# and reads QDQ. Models whose every-layer int8 loses too much (lenet5.mnist: 1.71 pt) fall back to the second.


def int8_label(fmt: str, keep_ends: bool) -> str:
    return f"{fmt}, {'first and last layer float' if keep_ends else 'every layer int8'}"


def to_int8(src: Path, dst: Path, calib: np.ndarray, work: Path, fmt: str = "QDQ", keep_ends: bool = True) -> list[str]:
    """Static quantization (QDQ or QOperator format), per-channel int8 weights, uint8 activations, calibrated
    on `calib` (MinMax). Returns the nodes left in float (see float_ends)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, batches):
            self.it = iter(batches)

        def get_next(self):
            return next(self.it, None)

    pre = work / "pre.onnx"
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    keep = float_ends(pre) if keep_ends else []
    batches = [{"input": calib[i:i + 32]} for i in range(0, len(calib), 32)]
    quantize_static(str(pre), str(dst), Reader(batches), quant_format=getattr(QuantFormat, fmt), per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, nodes_to_exclude=keep)
    if fmt == "QDQ":
        model = onnx.load(str(dst))
        if pad_conv_input_channels(model):  # onnxruntime's fast int8 conv for the RGB (or grey) first layer
            onnx.save(model, str(dst))
    return keep


# Measured on the full MNIST test split (lenet5, 99.01% fp32): all layers int8 loses 1.71 pt (MinMax and
# Entropy calibration alike, Percentile 2.13); keeping only the first conv in float loses 0.03, only the last
# layer 1.67, both 0.01 (cnn.mnist: 0.45 pt -> 0.00). The standard practice, first and last layer in higher
# precision, costs a few KB for convnets. A first layer that is a wide Gemm (an MLP's) holds most of the
# weights and quantizes well (mlp.mnist -0.01 pt): it is quantized, and a 2-layer net keeps nothing float.
def float_ends(path: Path) -> list[str]:
    """Names of the nodes int8 quantization leaves in float: the first layer if it is a Conv, the last
    Conv/Gemm/MatMul if there are at least three."""
    nodes = [n for n in onnx.load(str(path), load_external_data=False).graph.node
             if n.op_type in ("Conv", "Gemm", "MatMul")]
    keep = []
    if nodes and nodes[0].op_type == "Conv":
        keep.append(nodes[0].name)
    if len(nodes) >= 3:
        keep.append(nodes[-1].name)
    return keep
