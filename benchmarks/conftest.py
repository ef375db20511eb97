"""Benchmarks (not part of the CI test run): python -m pytest benchmarks/ --benchmark-only -s

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
