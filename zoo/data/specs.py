"""Dataset registry: everything a model or an exporter needs to know about a dataset's tensors."""

from __future__ import annotations

from dataclasses import dataclass, field

from zoo.core.errors import ZooError

CIFAR100_CLASSES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly "
    "camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup "
    "dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower "
    "leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid "
    "otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road "
    "rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower "
    "sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale "
    "willow_tree wolf woman worm"
).split()


@dataclass(frozen=True)
class FolderSource:
    """Where a dataset given as a path comes from and how it was split (zoo.data.folder reads it)."""
    path: str  # absolute: the image folder or the CSV file
    layout: str  # "folders" (one sub-folder per class), "train/val" (split folders), "csv"
    val_fraction: float  # held out per class when the layout has no split of its own
    seed: int  # of that split
    outside_paths: bool = False  # a CSV may name images outside its folder (--allow-outside-paths)
    kept: str = ""  # the sample of it the run folder keeps (zoo.data.evalset.keep_sample); found, not recorded


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    tv_class: str  # torchvision.datasets class that reads (and downloads) the on-disk format
    channels: int
    size: int  # square images: size x size pixels
    class_names: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, on [0, 1] pixels (training split)
    std: tuple[float, ...]
    family: str  # "mnist" (1x28x28 digits/characters) or "cifar" (3x32x32 photos): picks the paper's variant
    train_size: int  # images in the training split (sizes a run's fast-path decision)
    augment: tuple[str, ...] = field(default=())  # default train-time augmentations for this family
    folder: str = ""  # sub-folder of the data root torchvision reads
    source: FolderSource | None = None  # a dataset given as a path (zoo.data.folder); None: built in
    polarity: str = "as-is"  # "light-on-dark" (MNIST's ink), "dark-on-light", or "as-is" (photos): what
    #                          `zoo predict` checks an image's border against (zoo.data.images.orient)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return (self.channels, self.size, self.size)


_DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset; a folder dataset (spec.source) replaces an earlier one of its name."""
    old = _DATASETS.get(spec.name)
    if old is not None and not (old.source and spec.source):
        raise ValueError(f"dataset {spec.name!r} is already registered")
    _DATASETS[spec.name] = spec
    return spec


def find_dataset(name: str) -> DatasetSpec | None:
    """The registered spec of that name, or None (no folder is opened)."""
    return _DATASETS.get(name)


def list_datasets() -> list[str]:
    return list(_DATASETS)


_MNIST_AUG = ()  # the paper trains the MNISTs without augmentation
_CIFAR_AUG = ("crop", "flip", "rotate")  # the paper: random crop, flip and rotation

register_dataset(DatasetSpec(
    "mnist", "MNIST", 1, 28, tuple(str(i) for i in range(10)), (0.1307,), (0.3081,), "mnist",
    60_000, _MNIST_AUG, "MNIST", polarity="light-on-dark"))
register_dataset(DatasetSpec(
    "kmnist", "KMNIST", 1, 28, ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    (0.1918,), (0.3483,), "mnist", 60_000, _MNIST_AUG, "KMNIST", polarity="light-on-dark"))
register_dataset(DatasetSpec(
    "cifar10", "CIFAR10", 3, 32,
    ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), "cifar", 50_000, _CIFAR_AUG,
    "cifar-10-batches-py"))
register_dataset(DatasetSpec(
    "cifar100", "CIFAR100", 3, 32, tuple(CIFAR100_CLASSES),
    (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), "cifar", 50_000, _CIFAR_AUG,
    "cifar-100-python"))


class DatasetMissing(ZooError):
    """The dataset's files are not there (as opposed to there and damaged, which is never papered over)."""
