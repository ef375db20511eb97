"""Images: one preprocessing definition (training on a folder, `zoo predict`, `zoo.transforms()` and the
self-contained graphs all use it), and finding and decoding files, where every failure is a value.

An image becomes the model's input in three steps:
1. mode: EXIF orientation applied; the first frame of an animation; palette, CMYK, 16-bit and float modes
   converted; transparency composited over black (the background of MNIST's and KMNIST's ink); then L for
   1-channel models, RGB for 3-channel ones.
2. size: the shorter side resized to the model's size (bilinear, antialiased), then the centre cropped to a
   square, as torchvision's classification presets do (a 28x28 or 32x32 image passes unchanged).
3. numbers: uint8 pixels / 255, minus the dataset's mean, over its std, float32, channels first.
"""

from __future__ import annotations

import glob
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MIN_SIDE = 8  # px: smaller images hold too little to classify, and cropping them up is guesswork


@dataclass(frozen=True)
class ImageSpec:
    """What a model expects: channels, square size, normalization."""
    channels: int  # 1 (L) or 3 (RGB)
    size: int  # pixels per side
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_metadata(cls, meta: dict) -> ImageSpec:
        """From an exported file's metadata_props (input_shape [batch, C, H, W] or [batch, H, W, C])."""
        shape = meta["input_shape"][1:]
        channels, size = (shape[2], shape[0]) if meta.get("layout") == "NHWC" else (shape[0], shape[1])
        return cls(int(channels), int(size), tuple(meta["mean"]), tuple(meta["std"]))

    @classmethod
    def from_dataset(cls, spec) -> ImageSpec:
        return cls(spec.channels, spec.size, tuple(spec.mean), tuple(spec.std))


def _flatten_mode(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> L, RGB, LA or RGBA, 8 bits per channel."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit or 32-bit grey: scale to 8 bits
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        return Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("L", "RGB", "LA", "RGBA"):
        return img
    return img.convert("RGBA" if "A" in img.getbands() else "RGB")  # CMYK, YCbCr, LAB, HSV, 1, PA, ...


def to_model_mode(img: Image.Image, channels: int) -> Image.Image:
    img = ImageOps.exif_transpose(img) if img.getexif() else img
    img = _flatten_mode(img)
    if img.mode in ("LA", "RGBA"):  # alpha over black
        base = Image.new(img.mode[:-1], img.size, 0)
        base.paste(img.convert(img.mode[:-1]), mask=img.getchannel("A"))
        img = base
    return img.convert("L" if channels == 1 else "RGB")


def resize_crop(img: Image.Image, size: int) -> Image.Image:
    """Shorter side to `size`, then the centre `size` x `size`."""
    w, h = img.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR,
                         reducing_gap=None)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return img


def to_pixels(img: Image.Image, spec: ImageSpec) -> np.ndarray:
    """Steps 1-2: uint8 [H, W, C] as images are stored (the input of a self-contained graph)."""
    a = np.asarray(resize_crop(to_model_mode(img, spec.channels), spec.size), dtype=np.uint8)
    return a[:, :, None] if a.ndim == 2 else a


def normalize_pixels(pixels: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """Step 3 on a batch: uint8 [N, H, W, C] -> float32 [N, C, H, W]."""
    x = pixels.astype(np.float32) / np.float32(255)
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


POLARITIES = ("light-on-dark", "dark-on-light", "as-is")
INVERT = ("auto", "yes", "no")
BORDER = 2  # pixels: the frame whose brightness says which way round an image is drawn


def border_is_light(pixels: np.ndarray) -> bool:
    """uint8 [H, W, C]: the mean of the outer BORDER-pixel frame is above mid-grey (a light background)."""
    frame = np.concatenate([pixels[:BORDER].ravel(), pixels[-BORDER:].ravel(), pixels[:, :BORDER].ravel(),
                            pixels[:, -BORDER:].ravel()])
    return float(frame.mean()) > 127.5


def orient(pixels: np.ndarray, polarity: str, invert: str = "auto") -> tuple[np.ndarray, bool]:
    """(pixels as the model expects them, whether they were inverted). "auto": a digit model trained on light
    ink over a dark background ("light-on-dark") reads a dark-on-light image inverted, and the reverse;
    photos ("as-is") are never touched. "yes"/"no": always/never."""
    if invert == "yes":
        flip = True
    elif invert == "no" or polarity not in ("light-on-dark", "dark-on-light"):
        flip = False
    else:
        flip = border_is_light(pixels) == (polarity == "light-on-dark")
    return (255 - pixels if flip else pixels), flip


def infer_polarity(images: np.ndarray) -> str:
    """A grey dataset's polarity from up to 512 of its images uint8 [N, 1, H, W] (the majority's border); colour
    images are "as-is"."""
    if images.shape[1] != 1 or not len(images):
        return "as-is"
    sample = images[:: max(1, len(images) // 512)]
    light = sum(border_is_light(np.asarray(a).transpose(1, 2, 0)) for a in sample)
    return "dark-on-light" if light > len(sample) / 2 else "light-on-dark"


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
