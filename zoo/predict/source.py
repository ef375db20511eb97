"""What `zoo predict` and `zoo serve` were given: SOURCE [DATASET] IMAGE..., told apart, and said in words."""

from __future__ import annotations

from pathlib import Path

from zoo.core.errors import ZooError
from zoo.core.names import check_pair
from zoo.core.runtimes import OWN_FORMATS

FILE_SUFFIXES = (".onnx", *OWN_FORMATS)  # the files zoo export writes, each read as it is


def split_items(items: list[str]) -> tuple[str, str | None, list[str]]:
    """(source, dataset, the rest): an exported file or a run folder, else MODEL DATASET; then the images."""
    if not items:
        raise ZooError("zoo predict needs a model and images (e.g. zoo predict resnet20 cifar10 photos/)")
    first = Path(items[0])
    if first.suffix in FILE_SUFFIXES or first.is_dir():
        return items[0], None, items[1:]
    if len(items) < 2:
        raise ZooError(f"{items[0]} is not an .onnx file or a run folder; for shipped weights give MODEL DATASET")
    check_pair(items[0], items[1])
    return items[0], items[1], items[2:]


def is_file(source: str) -> bool:
    return source.endswith(FILE_SUFFIXES)


def images_of(source: str, dataset: str | None, image_args: list[str], log=print) -> tuple[list, list]:
    """(image paths, Problems) named by `image_args` (files, folders, globs; none: the sample images zoo ships for
    the model's dataset, said to `log`); none found at all is an error naming why."""
    from zoo.data.images import EXTENSIONS, find_images  # numpy and Pillow: the paths are checked before any model

    if not image_args:
        folder, dataset = sample_folder(source, dataset)
        image_args = [str(folder)]
        log(f"zoo: no images given: classifying the sample {dataset} test images shipped with zoo ({folder})")
    paths, problems = find_images(image_args)
    if not paths:
        from zoo.predict.render import printable

        raise ZooError("; ".join(f"{printable(p.path)}: {p.reason}" for p in problems) if problems else
                       f"no images in {', '.join(image_args)}; give files or folders of "
                       f"{', '.join(sorted(EXTENSIONS))} images")
    return paths, problems


def sample_folder(source: str, dataset: str | None) -> tuple[Path, str]:
    """(folder, dataset): the real test images shipped for the model's dataset (zoo.core.shipped.sample_images)."""
    from zoo.core.shipped import sample_images

    if dataset is None and Path(source).is_dir():
        from zoo.core.sources import card_at

        card = card_at(Path(source))
        dataset = card.dataset if card else None
    folder = sample_images(dataset)
    if folder is None:
        raise ZooError("no images given: name files, folders or globs after the model (zoo ships sample images "
                       "for mnist, cifar10 and cifar100 only: e.g. zoo predict resnet20 cifar10)")
    return folder, dataset


def export_pending(source: str, dataset: str | None) -> str | None:
    """The name of the weights when they will be exported into zoo's cache before the first prediction (seconds),
    else None (an exported file, or an export made already)."""
    if is_file(source):
        return None
    from zoo.core.sources import Target, card_at
    from zoo.export.cachekey import sealed_export

    card = card_at(Path(source)) if Path(source).is_dir() else None
    target = Target(card.arch, card.dataset, source) if card else Target(source, dataset or "", pretrained=True)
    if (card or dataset) and sealed_export(target, "fp32") is None:
        return target.name
    return None


def describe(source: str, dataset: str | None) -> str:
    """The weights zoo predict uses, in words."""
    from zoo.core.sources import Target

    if dataset:
        return Target(source, dataset, pretrained=True).describe()
    return f"the {'exported file' if is_file(source) else 'run folder'} {source}"
