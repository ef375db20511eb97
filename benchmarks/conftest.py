"""Benchmarks (not part of the CI test run): python -m pytest benchmarks/ -n 0 --benchmark-only -s

Real data is read from $ZOO_DATA (CIFAR re-encodings need ZOO_VERIFY=0); without it, generated data in
the same formats is used and the figures say so.
"""

import os

import pytest


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    from zoo.data import DataOptions, dataset_available

    root = os.environ.get("ZOO_DATA")
    if root and dataset_available("mnist", DataOptions(root)) and dataset_available("cifar10", DataOptions(root)):
        return root, "real"
    from zoo.data.fake import write_fake_dataset

    fake = tmp_path_factory.mktemp("data")
    for name in ("mnist", "cifar10"):
        write_fake_dataset(name, fake, n_train=10_000, n_test=1_000)
    os.environ["ZOO_VERIFY"] = "0"
    return str(fake), "generated"


class TutorialDataset:
    """What torchvision's MNIST / CIFAR10 classes do per sample — a PIL image from the in-memory array, then the
    transforms — over zoo's decoded split (torchvision's own CIFAR reader would unpickle the files, which zoo
    never does for files it did not write)."""

    def __init__(self, name, root, transform):
        from zoo.data import DataOptions, load_split

        x, y = load_split(name, "train", DataOptions(root))
        self.images = x[:, 0].numpy() if x.shape[1] == 1 else x.permute(0, 2, 3, 1).numpy()  # HW or HWC, as tv
        self.labels, self.transform = y.tolist(), transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]
