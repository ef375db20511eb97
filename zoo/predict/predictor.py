"""Predictor: an exported file (or weights zoo exports on the fly) applied to images, batched, with decoding
on a thread pool. With an .onnx source it needs only onnxruntime, numpy and Pillow: everything else it
needs (classes, size, channels, normalization, layout) is read from the file's metadata."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.predict.options import DEFAULTS
from zoo.core.cards import graph_tta
from zoo.core.deploy import openvino_hint, recall, runtime_name
from zoo.core.errors import ZooError
from zoo.core.backends import file_runtime
from zoo.core.runtimes import OWN_FORMATS, missing_runtime
from zoo.core.sessions import IrSession, checked_metadata, ort_session
from zoo.data.images import INVERT, ImageSpec, Problem, decode, normalize_pixels, orient, to_pixels

FILES = {".onnx": "ONNX", ".ort": "ORT-format", ".xml": "OpenVINO IR"}  # what zoo predict reads as it is
FEW_IMAGES = 16  # up to this many, --runtime auto takes the batch-1 (latency) choice; beyond, the throughput one


@dataclass(frozen=True)
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (class name, probability), most likely first
    inverted: bool = False  # the image was drawn the other way round from the model's polarity and was inverted


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def exported_file(source: str | Path, dataset: str | None = None, data=None, precision: str = "fp32") -> Path:
    """The .onnx file a source stands for: the file itself; or, exported once into zoo's cache (the first time
    needs torch; later ones find the sealed file without it), a run folder's best weights or the shipped
    weights of MODEL on DATASET, at `precision`."""
    p = Path(source)
    if p.suffix in FILES:  # .ort, .xml: onnxruntime's and OpenVINO's own formats (zoo export --format)
        if not p.is_file():
            raise ZooError(f"{FILES[p.suffix]} file {p} not found; check the path, or export it with zoo export "
                           f"--format")
        return p
    from zoo.core.sources import Target, card_at

    if p.is_dir():
        card = card_at(p)
        if card is None:
            raise ZooError(f"{p} has no card naming its model and dataset; point at a run folder written by zoo train")
        target = Target(card.arch, card.dataset, str(p))
    elif dataset:
        target = Target(str(source), dataset, pretrained=True)
    else:
        raise ZooError(f"{source} is not an .onnx file or a run folder; for shipped weights give MODEL DATASET "
                       f"(e.g. zoo predict resnet20 cifar10 photo.jpg)")
    from zoo.export.cachekey import sealed_export

    ready = sealed_export(target, precision)  # exported and checked before: no torch, no onnx needed
    if ready is not None:
        return ready
    from zoo.data import DataOptions
    from zoo.export import exported

    return exported(target, precision, data or DataOptions(), log=lambda *_: None)[0]


class Predictor:
    """Classify images with a zoo model:

        p = Predictor("exports/resnet20.cifar10.onnx")   # or Predictor("resnet20", "cifar10"), a run folder
        p.predict(["cat.png"], top_k=3)                   # [Prediction("cat.png", [("cat", 0.91), ...])]
    """

    def __init__(self, source: str | Path, dataset: str | None = None, *, threads: int | None = DEFAULTS.threads,
                 batch: int = DEFAULTS.batch, workers: int | None = None, data=None, runtime: str = DEFAULTS.runtime,
                 invert: str = DEFAULTS.invert, images: int | None = None, log=None):
        if runtime != "auto":
            file_runtime(runtime, threads)  # an unknown or missing runtime: said before any work
        self.source, self.path = str(source), exported_file(source, dataset, data)
        own = OWN_FORMATS.get(self.path.suffix)
        if own:  # a runtime's own format: no other runtime reads it
            if runtime not in ("auto", own):
                raise ZooError(f"{self.path} is in {own}'s own format; --runtime {runtime} reads the "
                                   f".onnx file: give that, or drop --runtime")
            runtime = own
        self._open(threads)
        # an IR runs at the f32 hint it was gated at (OpenVINO's own default is bf16 on CPUs that have it)
        self.precision, hint = self.meta.get("precision", "fp32"), "f32" if self.path.suffix == ".xml" else None
        if runtime == "auto":  # what zoo bench found fastest for these weights on this machine, if it has
            runtime, hint, precision = self._recommended(threads, images, log or (lambda s: None))
            if precision != self.precision and Path(source).suffix not in FILES:
                self.path = exported_file(source, dataset, data, precision)
                self._open(threads)
                self.precision = precision
        self.backend = file_runtime(runtime, threads, hint)
        self.spec = ImageSpec.from_metadata(self.meta)
        if invert not in INVERT:
            raise ZooError(f"invert must be one of {', '.join(INVERT)}, got {invert!r}")
        self.invert = invert
        # files exported before the metadata named it: the digit datasets are light ink on a dark background
        self.polarity = self.meta.get("polarity") or \
            ("light-on-dark" if self.meta.get("dataset") in ("mnist", "kmnist") else "as-is")
        self.classes = list(self.meta["class_names"])
        self.image_input = self.meta.get("layout") == "NHWC"  # a self-contained graph: uint8 pixels in
        self.batch, self.workers = max(1, batch), workers or min(8, os.cpu_count() or 1)
        self.runtime = runtime
        if runtime != "onnxruntime":  # the same file in OpenVINO or OpenCV DNN (logits; softmax here)
            self.backend.load(self.path)
        self.runtime_label = getattr(self.backend, "name", runtime) if runtime == "openvino" else runtime

    def _open(self, threads: int | None) -> None:
        if self.path.suffix == ".xml":  # OpenVINO's IR: its metadata from rt_info, run by OpenVinoBackend
            if missing_runtime("openvino"):
                raise ZooError(f"{self.path} is OpenVINO's IR: {missing_runtime('openvino')}")
            self.session = IrSession(self.path)
        else:
            self.session = ort_session(self.path, threads=threads)
        self.meta = checked_metadata(self.path, self.session)
        inputs, outputs = self.session.get_inputs(), [o.name for o in self.session.get_outputs()]
        self.input_name = inputs[0].name
        self.output = next((o for o in ("probabilities", "logits") if o in outputs), outputs[0])

    def _recommended(self, threads: int | None, images: int | None, log) -> tuple[str, str | None, str]:
        """(runtime, OpenVINO hint, precision) `zoo bench` recommended for these weights on this machine: its
        batch-1 choice for a handful of images, its throughput choice for many; else onnxruntime at the file's
        precision, with one line (on stderr from the CLI) saying how to get a recommendation."""
        rec, why = recall(self.meta.get("weights_sha256"), self.meta.get("export_revision"), threads,
                          graph_tta(self.meta))
        if rec is None:
            log(f"zoo: running onnxruntime {self.precision}: {why}; get one with `{self.bench_command()}`")
            return "onnxruntime", None, self.precision
        choice = rec["latency"] if images is not None and images <= FEW_IMAGES else rec["throughput"]
        if choice["precision"] != self.precision and Path(self.source).suffix in FILES:  # a file is what it is
            log(f"zoo: running onnxruntime {self.precision}: zoo bench's choice is {choice['runtime']} "
                f"{choice['precision']}, and {self.path.name} is {self.precision} (predict from the weights, or "
                f"export them at {choice['precision']}, to use it)")
            return "onnxruntime", None, self.precision
        runtime = runtime_name(choice["runtime"])
        log(f"zoo: running {choice['runtime']} {choice['precision']}, zoo bench's "
            f"{'provisional ' if rec.get('provisional') else ''}choice for "
            f"{'a few images' if choice is rec['latency'] else 'many images'} on this machine "
            f"({rec.get('measured', '')[:10]}; --runtime to choose another)")
        return runtime, openvino_hint(choice["runtime"]), choice["precision"]

    def bench_command(self) -> str:
        """The zoo bench command that measures these very weights (a run folder's, a file's, or the shipped ones)
        over every runtime, for a recommendation zoo predict then follows. Without PyTorch (the light install),
        the exported file itself: the same weights, so the same recommendation."""
        import importlib.util

        if Path(self.source).suffix in FILES:
            return f"zoo bench --onnx {self.source} --runtime all"
        if importlib.util.find_spec("torch") is None:
            return f"zoo bench --onnx {self.path} --runtime all"
        name = f"{self.meta.get('model', 'MODEL')} {self.meta.get('dataset', 'DATASET')}"
        weights = f" --weights {self.source}" if Path(self.source).is_dir() else ""
        return f"zoo bench {name}{weights} --runtime all --precision fp32,int8"

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, C] at the model's size -> probabilities [N, classes]."""
        x = pixels if self.image_input else normalize_pixels(pixels, self.spec)
        if self.runtime != "onnxruntime":
            return softmax(self.backend.predict(x).astype(np.float64))
        out = self.session.run([self.output], {self.input_name: x})[0]
        return out if self.output == "probabilities" else softmax(out.astype(np.float64))

    def top(self, probs: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [[(self.classes[i], float(p[i])) for i in row] for p, row in zip(probs, order)]

    def oriented(self, pixels: list[np.ndarray]) -> tuple[np.ndarray, list[bool]]:
        """The images as the model's polarity expects them (zoo.data.images.orient), and which were inverted."""
        done = [orient(p, self.polarity, self.invert) for p in pixels]
        return np.stack([p for p, _ in done]), [flip for _, flip in done]

    def predict_images(self, images, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """PIL images -> top-k (class, probability) per image."""
        pixels, _ = self.oriented([to_pixels(img, self.spec) for img in images])
        return self.top(self.probabilities(pixels), top_k)

    def predict(self, paths, top_k: int = 5, on_batch=None, errors: str = "raise") -> list[Prediction | Problem]:
        """Files -> a Prediction per file, in order. A file that cannot be read (missing, not an image, too large)
        raises ZooError naming every such file (errors="raise"), or stands in the list as the Problem that kept it
        from being read (errors="return", what zoo predict uses). The next batch is decoded while the model runs
        on this one (two batches of images in memory at most)."""
        if errors not in ("raise", "return"):
            raise ZooError(f"errors must be 'raise' or 'return', got {errors!r}")
        results = self._predict(paths, top_k, on_batch)
        bad = [r for r in results if isinstance(r, Problem)]
        if bad and errors == "raise":
            raise ZooError(f"{len(bad)} of {len(results)} images could not be read: "
                           + "; ".join(f"{b.path}: {b.reason}" for b in bad[:3]) + (" ..." if len(bad) > 3 else "")
                           + "; fix or leave out those files (errors='return' gives the others' predictions and "
                           "these as Problem entries)")
        return results

    def _predict(self, paths, top_k: int, on_batch) -> list[Prediction | Problem]:
        results: list[Prediction | Problem] = []
        chunks = [[Path(p) for p in paths[start:start + self.batch]] for start in range(0, len(paths), self.batch)]
        with ThreadPoolExecutor(self.workers) as pool:  # Pillow decodes without the GIL
            def decoding(chunk):
                return [pool.submit(decode, p, self.spec) for p in chunk]
            ahead = decoding(chunks[0]) if chunks else []
            for n, chunk in enumerate(chunks):
                decoded = [f.result() for f in ahead]
                ahead = decoding(chunks[n + 1]) if n + 1 < len(chunks) else []
                results += self._classified(chunk, decoded, top_k)
                if on_batch is not None:
                    on_batch(len(chunk))
        return results

    def _classified(self, chunk: list[Path], decoded: list, top_k: int) -> list[Prediction | Problem]:
        good = [i for i, d in enumerate(decoded) if not isinstance(d, Problem)]
        pixels, flipped = self.oriented([decoded[i] for i in good]) if good else (None, [])
        tops = self.top(self.probabilities(pixels), top_k) if good else []
        by_index = dict(zip(good, zip(tops, flipped)))
        return [Prediction(str(p), *by_index[i]) if i in by_index else decoded[i] for i, p in enumerate(chunk)]
