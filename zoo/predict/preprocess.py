"""One preprocessing definition, used by `zoo predict`, `zoo.transforms()` and the self-contained graphs.

An image becomes the model's input in three steps:
1. mode: EXIF orientation applied; the first frame of an animation; palette, CMYK, 16-bit and float modes
   converted; transparency composited over black (the background of MNIST's and KMNIST's ink); then L for
   1-channel models, RGB for 3-channel ones.
2. size: the shorter side resized to the model's size (bilinear, antialiased), then the centre cropped to a
   square, as torchvision's classification presets do (a 28x28 or 32x32 image passes unchanged).
3. numbers: uint8 pixels / 255, minus the dataset's mean, over its std, float32, channels first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

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


def transforms(arch: str, dataset: str):
    """A torchvision v2 transform for `arch` on `dataset` (like torchvision's `weights.transforms()`): PIL image
    in, normalized float tensor [C, H, W] out, the same numbers as `zoo predict` (steps 1-3 above)."""
    import torch
    from torchvision.transforms import v2

    from zoo.data import get_dataset_spec
    from zoo.models import check_supported

    check_supported(arch, dataset)
    spec = ImageSpec.from_dataset(get_dataset_spec(dataset))
    # The steps themselves, not v2.ToDtype + v2.Normalize: those scale by 1/255 rather than divide by 255 and
    # differ in the last bit, and one definition means the same numbers.
    return v2.Compose([v2.Lambda(lambda img: to_pixels(img, spec)),
                       v2.Lambda(lambda px: torch.from_numpy(normalize_pixels(px[None], spec)[0]))])
