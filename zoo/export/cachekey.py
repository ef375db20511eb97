"""What names a cached export, and finding one that can be used as it is. Standard library and zoo.core only:
`zoo predict` on shipped weights or a run folder exported before reaches onnxruntime without importing torch
or onnx (about 4 s of CPU time at start-up; zoo.export.cache makes and checks the entries).

An entry is `exports/<weights sha256[:16]>[-<tta>]-<settings>-r<revision>/<arch>.<dataset>[-<precision>].onnx`,
sealed once it has passed `check_onnx` by `<file>.seal`: the file's own sha256 and what it was made from. A
sealed file whose bytes still hash to its seal is used without the check; anything else goes the long way
(checked, or rebuilt). A few sealed entries ship in the package (weights/exports/, same layout), so that the
headline pairs predict at once on a fresh install."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from zoo.core.cards import graph_tta, tta_of
from zoo.core.tta import Tta
from zoo.core.errors import ZooError
from zoo.core.io import atomic_write_json, cache_dir
from zoo.core.shipped import sha256_file, weights_dir
from zoo.core.sources import Target, card_at, pretrained_path, weights_file
from zoo.export.options import cache_settings

# Bump whenever export writes a different graph for the same weights (zoo bench's cache keys on it).
# 2: int8 keeps the first conv and the last layer in float. 3: int8 tried QOperator, every layer int8, first.
# 4: QDQ, every layer int8, first. 5: int8's first conv padded to 4 input channels (qdq.py). 6: option-A
# shortcuts as 1x1 convolutions (shortcut.py). 7: the metadata names the ink polarity and the export revision
# (a deployment recommendation's key).
EXPORT_REVISION = 7
INT8_SETTINGS = (("QDQ", False), ("QDQ", True))  # (format, keep the first and last layer in float), fastest first
EXPORT_SETTINGS = cache_settings()  # what cached exports are made with: ExportOptions' defaults


def onnx_name(arch: str, dataset: str, precision: str, image_input: bool = False, tta: str | None = None) -> str:
    """`tta`: a test-time augmentation other than the recipe's ('' for none), named in the file's name."""
    suffix = ("" if precision == "fp32" else f"-{precision}") + ("-image" if image_input else "") + \
        ("" if tta is None else f"-tta-{Tta.of(tta).label}")
    return f"{arch.replace('/', '_')}.{dataset}{suffix}.onnx"


def entry_folder(weights_key: str, tta: str) -> Path:
    """The cache folder of one set of weights (`weights_key`: their sha256) under today's export settings."""
    settings = hashlib.sha256(json.dumps([EXPORT_SETTINGS, INT8_SETTINGS], sort_keys=True).encode()) \
        .hexdigest()[:8]  # the int8 settings tried are part of what an export is
    # an older exporter's files, or files exported with other settings, are not reused
    return cache_dir("exports") / f"{weights_key[:16]}{'-' + tta if tta else ''}-{settings}-r{EXPORT_REVISION}"


def _seal_of(path: Path) -> Path:
    return path.with_name(path.name + ".seal")


def seal(path: Path, meta: dict) -> None:
    """Record that `path` passed check_onnx with metadata `meta`."""
    atomic_write_json(_seal_of(path), {"sha256": sha256_file(path), "weights_sha256": meta.get("weights_sha256"),
                                       "precision": meta.get("precision"),
                                       "tta": graph_tta(meta)})


def is_sealed(path: Path, weights_sha256: str, precision: str, tta: str) -> bool:
    """`path` is the sealed export of these weights at this precision and test-time augmentation, byte for byte."""
    try:
        record = json.loads(_seal_of(path).read_text())
        return isinstance(record, dict) and \
            (record.get("weights_sha256"), record.get("precision"), record.get("tta")) == \
            (weights_sha256, precision, tta) and record.get("sha256") == sha256_file(path)
    except (OSError, ValueError):  # no seal, no file, a garbled seal: the long way decides
        return False


def sealed_export(target: Target, precision: str) -> Path | None:
    """The cached export of shipped weights or of a run folder's, when it was made and checked before and its
    bytes are unchanged; else None. The weights file is hashed (as loading it would be), so other weights under
    the same card are never answered with the old export."""
    try:
        if target.pretrained:
            _, card = pretrained_path(target.arch, target.dataset)  # hashes the file against its manifest entry
            sha = card.sha256
        elif target.weights:
            card, sha = card_at(target.weights), sha256_file(weights_file(target.weights))
            if card is None or (card.arch, card.dataset, card.sha256) != (target.arch, target.dataset, sha):
                return None
        else:
            return None
    except (ZooError, OSError):  # the long way says what is wrong
        return None
    path = entry_folder(sha, tta_of(card)) / onnx_name(target.arch, target.dataset, precision)
    shipped = shipped_exports() / path.parent.name / path.name  # made at publish time for the headline pairs
    return next((p for p in (path, shipped) if is_sealed(p, sha, precision, tta_of(card))), None)


def shipped_exports() -> Path:
    """Sealed exports that ship inside the package (weights/exports/, laid out as the cache is): the README's
    first commands answer without torch and without exporting on a fresh install."""
    return weights_dir() / "exports"
