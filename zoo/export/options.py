"""How `zoo export` and `zoo.export.export` write a file: one set of defaults for both (and for the exports zoo
caches for `zoo bench` and `zoo predict`, whose cache key names them). Importable without torch."""

from __future__ import annotations

from dataclasses import dataclass

from zoo.core.options import at_least, non_negative, opt, split
from zoo.core.tta import Tta

FORMAT_HELP = ("onnx, and beside it ort (onnxruntime's ORT format, NAME.ort, optimized once) and/or openvino "
               "(OpenVINO's IR, NAME.xml + NAME.bin, zoo's metadata in its rt_info); each gated against the .onnx "
               "file, each read by zoo predict. e.g. onnx,ort,openvino (default: onnx)")
TTA_HELP = ("test-time augmentation inside the graph: the recipe's (default), or another for fewer passes and lower "
            "latency at another accuracy (named in the file: NAME-tta-flip.onnx; zoo bench --onnx measures it)")


@dataclass(frozen=True)
class ExportOptions:
    out: str = opt("exports", "output folder")
    opset: int = opt(18, "ONNX opset (the dynamo exporter needs >= 18)", type=at_least(7))
    precision: str = opt("fp32", "fp32, fp16 (GPUs) or int8 (static QDQ, CPUs)")
    calib_size: int = opt(256, "training images used to calibrate int8 (>= 1)", type=at_least(1))
    exporter: str = opt("dynamo", "dynamo or torchscript")
    eval_images: int = opt(1000, "real images in the top-1 agreement check (>= 1000)", type=at_least(1000))
    formats: tuple[str, ...] = opt(("onnx",), FORMAT_HELP, flag="--format", type=split)
    image_input: bool = opt(False, "a self-contained graph: uint8 images [N, H, W, C] in, logits and probabilities "
                                   "out (cast, scaling, normalization and layout inside; fp32)")
    int8_max_drop: float = opt(1.0, "int8 gate: most top-1 points int8 may lose against fp32",
                               type=non_negative("points", "0.5"))
    tta: str = opt("recipe", TTA_HELP, choices=("recipe", *(t.label for t in Tta)))

    def graph_tta(self) -> str | None:
        """The test-time augmentation to build into the graph: None for the recipe's, '' for none."""
        return None if self.tta == "recipe" else Tta.of(self.tta).value


# What cached exports are made with (the defaults, named in the cache key so that other settings are not reused).
CACHE_SETTINGS = ("opset", "exporter", "calib_size", "eval_images", "int8_max_drop")


def cache_settings() -> dict:
    defaults = ExportOptions()
    return {k: getattr(defaults, k) for k in CACHE_SETTINGS}
