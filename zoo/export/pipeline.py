"""export(): weights source -> model (eval) -> ONNX in a temp folder inside OUT -> fp16/int8 conversion ->
parity gate on real images -> metadata -> rename into OUT. A failed gate raises with its figures and leaves
nothing behind.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from zoo.core.errors import ZooError, plural
from zoo.core.io import writable_dir
from zoo.core.options import check_fields, split
from zoo.core.owned import owned_tempdir
from zoo.core.runtimes import RUNTIMES
from zoo.core.sources import Source, Target, resolve
from zoo.core.state import load_state_dict_checked
from zoo.core.version import __version__
from zoo.data import DataOptions, DatasetSpec, EvalSet, FolderOptions, get_dataset_spec, load_eval_set, spec_record
from zoo.export.convert import (EXPORT_REVISION, EXPORTERS, INT8_SETTINGS, PRECISIONS, ImageInput, int8_label,
                                onnx_name, to_fp16, to_int8, torch_to_onnx)
from zoo.export.gate import GateFailed, parity, parity_image_input
from zoo.export.irformat import remove_stale_ir
from zoo.export.onnxfile import add_metadata
from zoo.export.options import ExportOptions
from zoo.models import check_supported, create_model, tta_of, with_tta
from zoo.models.stats import macs_per_image, num_params
from zoo.models.tta import check_tta

MIN_GATE_IMAGES = 1000  # top-1 agreement on fewer images is too coarse to gate on
INT8_GATE_IMAGES = 10_000  # int8 is gated on accuracy: one point on 1,000 images is only 10 images


@dataclass
class ExportResult:
    path: Path
    precision: str
    size_bytes: int
    seconds: float  # export + conversion + gate
    parity: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was measured on, when not the full split

    def lines(self) -> list[str]:
        """What `zoo export` prints: the file, its size, time and parity figures, then the notes."""
        p = self.parity
        extra = f", int8 accuracy change {p['acc_change']:+.2f} pt" if "acc_change" in p else ""
        diff = f"max|diff| {p['max_abs_diff_rel']:.2e} (relative)  " if "max_abs_diff_rel" in p else ""
        return [f"{self.path}  {self.size_bytes / 1e6:.3f} MB  {self.seconds:.1f} s  {diff}top-1 agreement "
                f"{p['top1_agreement']:.2f}% on {p['eval_set']}{extra}", *(f"  note: {n}" for n in self.notes)]


def build_model(arch: str, dataset: str, src: Source | None, tta: str | None = None) -> torch.nn.Module:
    """The model in eval mode with the source's tensors (random init when there are none), wrapped in the
    test-time augmentation its card's recipe names, as it was evaluated (or in `tta`: '' for none)."""
    model = create_model(arch, dataset)
    if src is not None and src.state is not None:
        load_state_dict_checked(model, src.state, source=src.origin)
    return with_tta(model, tta_of(src.card if src else None) if tta is None else tta).eval()


def _checked(o: ExportOptions) -> ExportOptions:
    """`o` checked, its formats as a tuple."""
    check_fields(o)
    o = replace(o, formats=split(o.formats))
    _check_options(o.precision, o.exporter, o.opset, o.eval_images, o.calib_size)
    _check_formats(o.formats, o.image_input, o.precision)
    return o


def _check_options(precision: str, exporter: str, opset: int, eval_images: int, calib_size: int) -> None:
    if precision not in PRECISIONS:
        raise ZooError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if exporter not in EXPORTERS:
        raise ZooError(f"unknown exporter {exporter!r}; choose from {', '.join(EXPORTERS)}")
    if opset < 18 and exporter == "dynamo":
        raise ZooError(f"the dynamo exporter needs opset >= 18, got {opset}")
    if opset > onnx.defs.onnx_opset_version():
        raise ZooError(f"onnx {onnx.__version__} knows opsets up to {onnx.defs.onnx_opset_version()}, "
                       f"got --opset {opset}")
    if eval_images < MIN_GATE_IMAGES:
        raise ZooError(f"the parity gate needs at least {MIN_GATE_IMAGES} images, got --eval-images {eval_images}")
    if precision == "int8" and calib_size < 1:
        raise ZooError(f"int8 calibration needs at least 1 image, got --calib-size {calib_size}")


def gate_images(spec: DatasetSpec, data: DataOptions, need: int, want: int) -> tuple[EvalSet, list[str]]:
    """Up to `want` real test images, at least `need`; the notes say when they are not the full split. A folder
    dataset with fewer images than `need` in all is gated on every one of them."""
    ev = load_eval_set(spec, data).topped_up(spec, want, data)
    if spec.source is not None and ev.images is not None:
        need = min(need, len(ev))
    if len(ev) < need:
        have = f"the {ev.origin} holds {len(ev)}" if ev.images is not None else "none are shipped"
        raise ZooError(f"the parity gate needs {need} real {spec.name} images and {have}"
                       + (f": {ev.why}" if ev.why else ""))
    notes = [] if ev.full_split else [f"gate measured on {ev.what}: the folder holds fewer held-out images"] \
        if ev.origin == "held-out and training images" else [f"gate measured on {ev.what}: {ev.why}"] \
        if ev.origin == "kept sample" else \
        [f"gate measured on zoo's shipped {spec.name} test sample ({plural(len(ev), 'image')}), not the test "
         f"split ({ev.why})"]
    return ev.take(want), notes


def calibration_images(spec: DatasetSpec, data: DataOptions, n: int) -> tuple[np.ndarray, list[str]]:
    """n training images drawn with a fixed seed; without the dataset, the shipped test sample, said so."""
    cal = load_eval_set(spec, data, split="train")
    if cal.images is None:
        raise ZooError(f"int8 calibration needs real {spec.name} images and none are here: {cal.why}")
    cal = cal.take(n, seed=0)
    notes = [] if cal.full_split else [f"int8 calibrated on {plural(len(cal), 'image')} the run folder keeps: "
                                                f"{cal.why}"] \
        if cal.origin == "kept sample" else [f"int8 calibrated on {plural(len(cal), 'image')} of zoo's shipped "
                                             f"{spec.name} test sample: the training split is not here"]
    return cal.normalized(spec), notes


# the .onnx file; beside it, each runtime's own format (zoo.core.runtimes.RUNTIMES): onnxruntime's ORT format
# (zoo.export.ortformat) and OpenVINO's IR (zoo.export.irformat)
FORMATS = ("onnx", *(r.own_format[0] for r in RUNTIMES.values() if r.own_format))


def export(arch: str, dataset: str | DatasetSpec, *, weights=None, pretrained: bool = False,
           options: ExportOptions | None = None, data: DataOptions | None = None, folder: FolderOptions | None = None,
           **fields) -> ExportResult:
    """Export `arch` for `dataset` (a name, a folder's path or a DatasetSpec) to `OUT/<arch>.<dataset>[-precision]
    [-image].onnx`, after the parity gate. `options` (or its fields by keyword: out=, precision="int8", ...) as
    `zoo export` takes them, its defaults (ExportOptions); `folder`: how a path is read (FolderOptions).

    int8_max_drop: the most top-1 accuracy (points) int8 may lose against fp32 on the eval set.
    image_input: a self-contained graph, uint8 images [N, H, W, C] in, logits and probabilities out.
    formats: ("onnx", "ort") also writes onnxruntime's ORT format beside the .onnx file, gated against it.
    tta: test-time augmentation inside the graph instead of the recipe's ("none", "flip", "flip-shift"):
        fewer passes, lower latency, another accuracy (the card's does not apply; the file is named for it).
    """
    o = _checked(replace(options or ExportOptions(), **fields))
    opset, precision, exporter, image_input = o.opset, o.precision, o.exporter, o.image_input
    spec, data = get_dataset_spec(dataset, weights, folder), data or DataOptions()
    dataset = spec.name  # a path or a spec: the dataset by its name (the card's, the file's)
    check_supported(arch, spec)  # an unknown model is named as such, before any weights are looked for
    src = resolve(Target(arch, dataset, str(weights) if weights else None, pretrained))
    recipe_tta = tta_of(src.card)
    tta = recipe_tta if o.graph_tta() is None else check_tta(o.graph_tta())
    model = build_model(arch, dataset, src, tta)
    out, t0 = writable_dir(o.out), time.perf_counter()
    ev, notes = gate_images(spec, data, o.eval_images, INT8_GATE_IMAGES if precision == "int8" else o.eval_images)
    with owned_tempdir(out, ".export") as tmp:  # a killed export's half-written folder is swept first
        if image_input:
            path = Path(tmp) / "image.onnx"
            torch_to_onnx(ImageInput(model, spec.mean, spec.std).eval(), (spec.size, spec.size, spec.channels),
                          path, opset, exporter, image_input=True)
            fig = parity_image_input(model, path, ev.images, spec)
        else:
            path, fig = _convert_and_gate(model, spec, src, Path(tmp), precision, opset, exporter, ev, data,
                                          o.calib_size, o.int8_max_drop, notes)
        fig["eval_set"] = f"{dataset} {ev.label}"
        meta = _metadata(arch, spec, src, precision, exporter, opset, fig, image_input, model)
        if tta != recipe_tta:  # what runs is not what the card measured
            meta.update(recipe={**meta["recipe"], "tta": tta}, train_top1=None, recipe_tta=recipe_tta)
        add_metadata(path, meta)
        final = out / onnx_name(arch, dataset, precision, image_input, None if tta == recipe_tta else tta)
        os.replace(path, final)
    if "openvino" not in o.formats:  # a previous export's IR of this name would be read for the new file's
        notes += remove_stale_ir(final)
    if "ort" in o.formats:  # onnxruntime's ORT format beside it, gated against it
        from zoo.export.ortformat import write_ort

        ort_path, ort_fig = write_ort(final, ev.normalized(spec))
        fig = {**fig, **ort_fig}
        notes.append(f"ORT format: {ort_path} ({ort_path.stat().st_size / 1e6:.3f} MB), top-1 agreement "
                     f"{ort_fig['ort_agreement']:.2f}% with the .onnx file")
    if "openvino" in o.formats:  # OpenVINO's IR beside it, zoo's metadata in its rt_info, gated against it
        from zoo.export.irformat import write_ir

        xml, ir_fig = write_ir(final, ev.normalized(spec), meta, ev.labels, o.int8_max_drop)
        fig = {**fig, **ir_fig}
        size = xml.stat().st_size + xml.with_suffix(".bin").stat().st_size
        change = f", {ir_fig['openvino_acc_change']:+.2f} pt of top-1 against fp32" if "openvino_acc_change" in ir_fig \
            else ""
        notes.append(f"OpenVINO IR: {xml} + .bin ({size / 1e6:.3f} MB), top-1 agreement "
                     f"{ir_fig['openvino_agreement']:.2f}% with the .onnx file{change}")
    return ExportResult(final, precision, final.stat().st_size, time.perf_counter() - t0, fig, meta, notes)


def _check_formats(formats: tuple[str, ...], image_input: bool, precision: str) -> None:
    unknown = set(formats) - set(FORMATS)
    if unknown or "onnx" not in formats:
        raise ZooError(f"unknown format(s) {', '.join(sorted(unknown)) or '(none)'}; choose from {', '.join(FORMATS)} "
                       f"(the .onnx file is always written)")
    if image_input and len(formats) > 1:
        raise ZooError(f"--format {','.join(f for f in formats if f != 'onnx')} is for the plain graph: export "
                       f"without --image-input")
    if image_input and precision != "fp32":
        raise ZooError(f"--image-input graphs are fp32 (the cast and normalization run inside); got {precision}")
    if "openvino" in formats:  # said before anything is written, not after the .onnx file
        from zoo.core.runtimes import missing_runtime

        if missing_runtime("openvino"):
            raise ZooError(f"--format openvino: {missing_runtime('openvino')}")


def _convert_and_gate(model, spec: DatasetSpec, src: Source, tmp: Path, precision: str, opset: int, exporter: str,
                      ev: EvalSet, data: DataOptions, calib_size: int, int8_max_drop: float, notes: list[str]):
    """The float graph, converted to `precision`, through the parity gate: (its path, the gate's figures)."""
    fp32 = path = tmp / "fp32.onnx"
    torch_to_onnx(model, spec.input_shape, fp32, opset, exporter)
    if precision == "fp16":
        path = tmp / "fp16.onnx"
        to_fp16(fp32, path)
    elif precision == "int8":
        return _int8_and_gate(model, spec, src, tmp, fp32, ev, data, calib_size, int8_max_drop, notes)
    fig = parity(model, path, precision, ev.normalized(spec), ev.labels, random_weights=src.state is None)
    return path, fig


def _int8_and_gate(model, spec: DatasetSpec, src: Source, tmp: Path, fp32: Path, ev: EvalSet, data: DataOptions,
                   calib_size: int, int8_max_drop: float, notes: list[str]):
    """The fastest int8 setting that passes the gate (convert.INT8_SETTINGS, fastest first); the notes say
    which were tried and why they failed."""
    calib, cal_notes = calibration_images(spec, data, calib_size)
    notes += cal_notes
    images, labels = ev.normalized(spec), ev.labels
    for i, (fmt, keep_ends) in enumerate(INT8_SETTINGS):
        path = tmp / f"int8-{i}.onnx"
        kept_float = to_int8(fp32, path, calib, tmp, fmt, keep_ends)
        try:
            fig = parity(model, path, "int8", images, labels, fp32_path=fp32, max_acc_drop=int8_max_drop,
                         random_weights=src.state is None)
        except GateFailed as e:
            if i == len(INT8_SETTINGS) - 1:
                raise
            notes.append(f"int8 {int8_label(fmt, keep_ends)}: {e.reason}; trying "
                         f"{int8_label(*INT8_SETTINGS[i + 1])}")
            continue
        return path, {**fig, "int8_setting": int8_label(fmt, keep_ends), "float_nodes": kept_float}


def _metadata(arch: str, spec: DatasetSpec, src: Source, precision: str, exporter: str, opset: int,
              fig: dict, image_input: bool = False, model=None) -> dict:
    """Everything a consumer of the file needs (classes, shape, normalization) and where it came from; with the
    model as exported, its parameters and MACs per image (test-time augmentation's passes included), which `zoo
    bench --onnx` shows without torch."""
    if image_input:
        io = {"input_shape": ["batch", spec.size, spec.size, spec.channels], "layout": "NHWC", "input_dtype": "uint8",
              "output_name": ["logits", "probabilities"],
              "preprocess": "inside the graph: x = (pixels / 255 - mean) / std, NHWC -> NCHW; feed uint8 pixels "
                            "(resized: shorter side to the size, centre crop; drawn as `polarity` says, "
                            "light-on-dark: light ink on a dark background)"}
    else:
        io = {"input_shape": ["batch", *spec.input_shape], "layout": "NCHW", "input_dtype": "float32",
              "output_name": "logits", "preprocess": "x = (pixels / 255 - mean) / std, float32"}
    return {
        "model": arch, "dataset": spec.name, "class_names": list(spec.class_names), **io, "input_name": "input",
        **({"dataset_spec": spec_record(spec)} if spec.source else {}),
        "mean": list(spec.mean), "std": list(spec.std), "polarity": spec.polarity,
        "weights": src.origin, "weights_sha256": src.sha256 or "",
        "train_top1": src.card.top1 if src.card else None, "recipe": src.card.recipe if src.card else {},
        "precision": precision, "exporter": exporter, "opset": opset, "export_revision": EXPORT_REVISION,
        "parity": fig, "zoo_version": __version__,
        "torch_version": torch.__version__, "onnx_version": onnx.__version__, "onnxruntime_version": ort.__version__,
        **({"params": num_params(model), "macs": macs_per_image(model, spec.input_shape)} if model is not None else {}),
    }
