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

import contextlib
import io
import fnmatch
import glob
import os
import stat
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
        if not np.isfinite(a).all():
            raise Refused(f"{int((~np.isfinite(a)).sum()):,} of its pixels are NaN or infinite (a float image); zoo "
                          f"reads finite pixel values only")
        top = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        if img.mode == "F" and np.isfinite(a).all() and 0 <= a.min() and a.max() <= 1.0:
            top = 1.0  # a float image on [0, 1] (scientific TIFFs): read as 0..255, not as nearly black
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
    found, problems = [], []  # found: (path, its real path)
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            try:
                found += sorted((f, real) for f, real in _walk(p) if f.suffix.lower() in EXTENSIONS)
            except OSError as e:
                problems.append(Problem(arg, f"cannot read the folder ({e.strerror})"))
        elif p.exists():
            try:
                check_regular(p)
                found.append((p, os.path.realpath(p)))
            except Refused as e:
                problems.append(Problem(arg, str(e)))
        elif glob.has_magic(arg):
            matches = sorted(_glob(arg))
            found += matches
            if not matches:
                problems.append(Problem(arg, "no file matches this pattern"))
        else:
            problems.append(Problem(arg, "no such file or folder"))
    unique = {}  # one entry per file, whatever symlinks lead to it
    for f, real in found:
        unique.setdefault(real, f)
    return list(unique.values()), problems


def _walk(folder: Path):
    """(path, real path) of every regular file under `folder`; symlinked folders are followed once each, by
    real path (a link back up the tree ends there instead of looping). A file's real path is its folder's
    plus its name unless it is a link: one realpath per folder, not per file (10,000 files: 0.4 s less)."""
    seen, stack = set(), [str(folder)]
    while stack:
        root = stack.pop()
        real = os.path.realpath(root)
        if real in seen:
            continue
        seen.add(real)
        with os.scandir(root) as it:  # an unreadable folder is the caller's OSError, as os.walk's onerror
            entries = sorted(it, key=lambda e: e.name)
        dirs = [e for e in entries if _entry_is(e, "dir")]
        folders = {e.name for e in dirs}
        for e in entries:
            if e.name not in folders and _entry_is(e, "file"):  # regular files only (is_file follows a link to one)
                yield Path(e.path), (os.path.realpath(e.path) if e.is_symlink() else os.path.join(real, e.name))
        stack += reversed([e.path for e in dirs])


def _entry_is(e: os.DirEntry, kind: str) -> bool:
    try:
        return e.is_dir() if kind == "dir" else e.is_file()  # a link is followed (one stat, links only)
    except OSError:  # a dangling link, or gone since the listing
        return False


def _glob(pattern: str) -> list[tuple[Path, str]]:
    """(path, real path) of the regular files a glob names; `**` walks folders as _walk does (Python's glob
    follows links down and, with two that point up the tree, does not come back)."""
    if "**" not in pattern:
        return [(Path(m), os.path.realpath(m)) for m in glob.glob(pattern) if Path(m).is_file()]
    base, _, rest = pattern.partition("**")
    base = Path(base or ".")
    rest = rest.lstrip("/" + os.sep) or "*"
    if not base.is_dir():
        return []
    found = []
    for f, real in _walk(base):
        parts = f.relative_to(base).parts  # `**` stands for any number of folders: try each tail
        if any(fnmatch.fnmatchcase("/".join(parts[i:]), rest) for i in range(len(parts))):
            found.append((f, real))
    return found


# The formats zoo opens. Pillow's other plugins are never tried: EPS runs Ghostscript on the file's PostScript
# whatever its name, and a format no one trains on is more likely an attack than a photo.
FORMATS = ("PNG", "JPEG", "BMP", "WEBP", "TIFF", "GIF", "PPM")
MAX_ASPECT = 50  # long side / short side: beyond, the resize to the model's square would scale a strip up by
#                  the ratio (11,000,000 x 8 px: 8.7 GB); no photo or scan is that thin


class Refused(ValueError):
    """An image path zoo will not open, with the reason in words."""


def check_regular(path: str | os.PathLike) -> None:
    """A user-named path must be a regular file: opening a FIFO blocks forever, a device never ends."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise Refused(f"cannot read it ({e.strerror})") from None
    if not stat.S_ISREG(mode):
        raise Refused("not a regular file (a FIFO, device or socket); zoo reads image files only")


@contextlib.contextmanager
def open_image(path: str | os.PathLike | bytes):
    """Pillow's Image.open for zoo: a regular file (or the bytes of one, as a server receives them), one of
    FORMATS, within Pillow's pixel limit (a refusal here, not a warning) and MAX_ASPECT; its first frame. Raises
    Refused, or Pillow's errors on damaged data."""
    if isinstance(path, bytes):
        path = io.BytesIO(path)
    else:
        check_regular(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(path, formats=FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise Refused(f"too many pixels (over Pillow's limit of {Image.MAX_IMAGE_PIXELS:,}); a decompression "
                          f"bomb?") from None
        except UnidentifiedImageError:
            raise Refused(f"not an image zoo reads ({', '.join(FORMATS)})") from None
        with img:
            img.seek(0)  # GIF, TIFF: the first frame
            w, h = img.size
            if max(w, h) > MAX_ASPECT * max(1, min(w, h)):
                raise Refused(f"{w}x{h} pixels is too thin to be a picture (sides over {MAX_ASPECT}:1)")
            yield img


def decode(path: Path | bytes, spec: ImageSpec, name: str | None = None) -> np.ndarray | Problem:
    """uint8 [H, W, C] at the model's size, or the reason it cannot be read; `path` may be a file's bytes (the
    Problem then names `name`)."""
    label = (name or "image") if isinstance(path, bytes) else path
    try:
        with open_image(path) as img:
            return _checked_pixels(img, label, spec)
    except Exception as e:
        return _problem(label, e)


def _checked_pixels(img, path, spec: ImageSpec) -> np.ndarray | Problem:
    if min(img.size) < MIN_SIDE:
        return Problem(str(path), f"image too small ({img.size[0]}x{img.size[1]}; at least {MIN_SIDE}x{MIN_SIDE} "
                                  f"pixels)")
    return to_pixels(img, spec)


def _problem(path, e: Exception) -> Problem:
    """The words for what kept an image from being read."""
    if isinstance(e, Refused):
        return Problem(str(path), str(e))
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return Problem(str(path), f"too many pixels (over Pillow's limit of {Image.MAX_IMAGE_PIXELS:,}); "
                                  f"a decompression bomb?")
    if isinstance(e, UnidentifiedImageError):
        return Problem(str(path), f"not an image zoo reads ({', '.join(FORMATS)})")
    if isinstance(e, OSError):  # truncated or damaged data, unreadable file
        return Problem(str(path), f"cannot decode it ({str(e).splitlines()[0][:80] or type(e).__name__})")
    # Pillow's decoders raise ValueError, SyntaxError, ... on malformed files
    return Problem(str(path), f"damaged image ({type(e).__name__}: {str(e)[:80]})")
