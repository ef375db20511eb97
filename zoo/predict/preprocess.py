"""`zoo.transforms()`: zoo's preprocessing (zoo.data.images) as a torchvision v2 transform."""

from __future__ import annotations

from zoo.data.images import ImageSpec, normalize_pixels, to_pixels

__all__ = ["ImageSpec", "normalize_pixels", "to_pixels", "transforms"]


def transforms(arch: str, dataset: str):
    """A torchvision v2 transform for `arch` on `dataset` (like torchvision's `weights.transforms()`): PIL image
    in, normalized float tensor [C, H, W] out, the same numbers as `zoo predict` (the steps in zoo.data.images)."""
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
