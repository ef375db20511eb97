"""How `zoo predict` (and `zoo serve`) run a model: one set of defaults for the command line and the Predictor."""

from __future__ import annotations

from dataclasses import dataclass

from zoo.core.options import at_least, opt
from zoo.core.runtimes import FILE_RUNTIMES

RUNTIME_HELP = ("auto (the runtime and precision zoo bench --runtime all found fastest without losing accuracy for "
                f"this model on this machine; else onnxruntime), or one of {', '.join(FILE_RUNTIMES)} (openvino at its "
                "default precision: bf16 on AMX/AVX512-BF16 CPUs)")
INVERT_HELP = ("auto: an image drawn the other way round from the model's training images (dark ink on light for a "
               "digit model) is inverted first, and said; yes: invert every image; no: never")


@dataclass(frozen=True)
class PredictOptions:
    batch: int = opt(64, "images per forward pass (>= 1)", type=at_least(1))
    threads: int | None = opt(None, "intra-op threads (>= 1; default: all cores)", type=at_least(1))
    runtime: str = opt("auto", RUNTIME_HELP)
    invert: str = opt("auto", INVERT_HELP, choices=("auto", "yes", "no"))


DEFAULTS = PredictOptions()
