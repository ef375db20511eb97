"""ResNet-20's option-A shortcut as one 1x1 convolution in the exported graph, with the same result.

The shortcut that halves the image and widens the channels (He et al.'s option A: x[:, :, ::2, ::2], then zero
channels on both sides) exports as Slice (rows, step 2) -> Slice (columns, step 2) -> Pad (channels). onnxruntime
runs those strided Slices element by element: 9% of ResNet-20's fp32 time at batch 256, and with the Pad and its
Quantize/Dequantize pair 15% of int8's (`python benchmarks/tools/int8_profile.py FOLDER`). The same map is a 1x1
convolution with stride 2 whose weights are an identity placed among zero rows: each output is 1 * x + 0 * the
others, exactly x for finite x, and the zero channels exactly 0. Measured on resnet20.cifar10's record weights
(Intel Xeon with AMX, 2 threads, batch 256, five interleaved 1-s turns): onnxruntime fp32 1,565 -> 1,818 img/s
(+16%), int8 3,083 -> 3,387 (+10%); top-1 on the test split unchanged (fp32 91.40%, int8 91.34 -> 91.38%).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

NO_END = 2**62  # a Slice end at or beyond this means "to the end"


def shortcuts_as_convs(model: onnx.ModelProto) -> int:
    """Replace every Slice(::2 on H) -> Slice(::2 on W) -> Pad(channels, zeros) chain by a Conv (in place);
    returns how many."""
    g = model.graph
    if not any(n.op_type == "Pad" for n in g.node):
        return 0  # no shape inference over the weights of a model without the pattern
    channels = _channels(model)
    producer = {o: n for n in g.node for o in n.output}
    uses = Counter(i for n in g.node for i in n.input)
    consts = _constants(g)
    done, orphans = 0, set()
    for pad in [n for n in g.node if n.op_type == "Pad"]:
        found = _chain(pad, producer, uses, consts, channels)
        if found is not None:
            orphans.update(i for node in (pad, *found[:2]) for i in node.input[1:])
            _replace(g, pad, *found)
            done += 1
    _drop_unread(g, orphans)
    return done


def _chain(pad, producer: dict, uses: Counter, consts: dict, channels: dict):
    """(the rows Slice, the columns Slice, channels before, channels after, input channels) when `pad` ends an
    option-A shortcut whose intermediate results nothing else reads; else None."""
    cols = producer.get(pad.input[0])
    rows = producer.get(cols.input[0]) if cols is not None and cols.op_type == "Slice" else None
    if rows is None or rows.op_type != "Slice" or uses[rows.output[0]] != 1 or uses[cols.output[0]] != 1:
        return None
    if not (_halves(rows, 2, consts) and _halves(cols, 3, consts)):
        return None
    pads = consts.get(pad.input[1]) if len(pad.input) > 1 else None
    mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
    value = consts.get(pad.input[2]) if len(pad.input) > 2 and pad.input[2] else np.zeros(1)
    cin = channels.get(rows.input[0])
    if pads is None or value is None or mode != b"constant" or value.any() or not cin or len(pads) != 8:
        return None
    if pads[[0, 2, 3, 4, 6, 7]].any():  # only channels are padded
        return None
    return rows, cols, int(pads[1]), int(pads[5]), cin


def _halves(node, axis: int, consts: dict) -> bool:
    """A Slice taking every second element of `axis` (of a 4-D tensor) from the start to the end."""
    parts = [consts.get(name) if name else None for name in (list(node.input[1:]) + [""] * 4)[:4]]
    starts, ends, axes, steps = parts
    if starts is None or ends is None or axes is None or steps is None:
        return False
    return (list(starts), list(axes) if axes[0] >= 0 else [axes[0] + 4], list(steps)) == ([0], [axis], [2]) \
        and int(ends[0]) >= NO_END


def _replace(g: onnx.GraphProto, pad, rows, cols, before: int, after: int, cin: int) -> None:
    w = np.zeros((before + cin + after, cin, 1, 1), np.float32)
    w[before + np.arange(cin), np.arange(cin)] = 1.0
    name = f"{pad.name}_as_conv"
    g.initializer.append(numpy_helper.from_array(w, f"{name}_weight"))
    conv = helper.make_node("Conv", [rows.input[0], f"{name}_weight"], [pad.output[0]], name=name,
                            kernel_shape=[1, 1], strides=[2, 2])
    g.node.insert(list(g.node).index(pad), conv)
    for node in (pad, cols, rows):
        g.node.remove(node)


def _constants(g: onnx.GraphProto) -> dict:
    """Tensor name -> value, for initializers and Constant nodes (the two exporters write either)."""
    out = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def _channels(model: onnx.ModelProto) -> dict:
    """Tensor name -> its (static) channel count, for 4-D tensors, from ONNX shape inference."""
    inferred = shape_inference.infer_shapes(model)
    out = {}
    for v in [*inferred.graph.value_info, *inferred.graph.input]:
        dims = v.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            out[v.name] = dims[1].dim_value
    return out


def _drop_unread(g: onnx.GraphProto, names: set) -> None:
    """The removed nodes' constant inputs (initializers or Constant nodes) that nothing reads any more."""
    read = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    for init in [i for i in g.initializer if i.name in names and i.name not in read]:
        g.initializer.remove(init)
    for node in [n for n in g.node if n.op_type == "Constant" and n.output[0] in names and n.output[0] not in read]:
        g.node.remove(node)
