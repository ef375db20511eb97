"""Finding and decoding a user's images: files, folders (recursive) and globs; every failure is a value
(the file and the reason), so one bad image never stops the others."""

from __future__ import annotations

import glob
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from zoo.predict.preprocess import MIN_SIDE, ImageSpec, to_pixels

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str


def find_images(args: list[str]) -> tuple[list[Path], list[Problem]]:
    """Image files named by `args` (files as given, folders searched recursively for image extensions, globs
    expanded), in order and without duplicates; and the arguments that named nothing readable."""
    found, problems = [], []
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            try:
                found += sorted(f for f in _walk(p) if f.suffix.lower() in EXTENSIONS)
            except OSError as e:
                problems.append(Problem(arg, f"cannot read the folder ({e.strerror})"))
        elif p.exists():
            found.append(p)
        elif glob.has_magic(arg):
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True) if Path(m).is_file())
            found += matches
            if not matches:
                problems.append(Problem(arg, "no file matches this pattern"))
        else:
            problems.append(Problem(arg, "no such file or folder"))
    return list(dict.fromkeys(found)), problems


def _walk(folder: Path):
    def fail(e: OSError):
        raise e
    for root, _, files in os.walk(folder, onerror=fail):
        for f in files:
            yield Path(root, f)


def decode(path: Path, spec: ImageSpec) -> np.ndarray | Problem:
    """uint8 [H, W, C] at the model's size, or the reason it cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # Pillow's limit is a refusal here
            with Image.open(path) as img:
                img.seek(0)  # GIF, TIFF: the first frame
                if min(img.size) < MIN_SIDE:
                    return Problem(str(path), f"image too small ({img.size[0]}x{img.size[1]}; at least "
                                              f"{MIN_SIDE}x{MIN_SIDE} pixels)")
                return to_pixels(img, spec)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return Problem(str(path), f"too many pixels (over Pillow's limit of {Image.MAX_IMAGE_PIXELS:,}); "
                                  f"a decompression bomb?")
    except UnidentifiedImageError:
        return Problem(str(path), "not an image Pillow can read (PNG, JPEG, BMP, WebP, TIFF, GIF)")
    except OSError as e:  # truncated or damaged data, unreadable file
        return Problem(str(path), f"cannot decode it ({str(e).splitlines()[0][:80] or type(e).__name__})")
    except Exception as e:  # Pillow's decoders raise ValueError, SyntaxError, ... on malformed files
        return Problem(str(path), f"damaged image ({type(e).__name__}: {str(e)[:80]})")
