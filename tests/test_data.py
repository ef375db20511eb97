import pytest
import numpy as np
import torch

from zoo.data import BatchLoader, DataOptions, augment_batch, get_dataset_spec, load_split, make_loader
from zoo.core.errors import ZooError

DATASETS = ["mnist", "kmnist", "cifar10", "cifar100"]


@pytest.mark.parametrize("name", DATASETS)
def test_fake_files_load_through_torchvision(fake_root, name):
    spec = get_dataset_spec(name)
    x, y = load_split(name, "train", DataOptions(fake_root, verify=False))
    assert x.dtype == torch.uint8 and x.shape == (200, *spec.input_shape)
    assert y.dtype == torch.int64 and 0 <= y.min() and y.max() < spec.num_classes
    xt, _ = load_split(name, "test", DataOptions(fake_root, verify=False))
    assert len(xt) == 1000


def test_cifar_md5_check_is_on_by_default(fake_root, monkeypatch):
    import zoo.core.errors as errors

    with pytest.raises(ZooError, match="md5 check; re-download with zoo train MODEL DATASET --download, or set "
                                       "ZOO_VERIFY=0"):  # from Python: no option applies
        load_split("cifar10", "train", DataOptions(fake_root, verify=True))
    monkeypatch.setattr(errors, "_FLAGS", frozenset({"--download", "--no-verify"}))  # zoo train's
    with pytest.raises(ZooError, match="md5 check; re-download with --download, or pass --no-verify"):
        load_split("cifar10", "train", DataOptions(fake_root, verify=True))


def test_missing_dataset_says_where_and_how(tmp_path):
    with pytest.raises(ZooError) as e:
        load_split("mnist", "train", DataOptions(tmp_path))
    msg = str(e.value)
    assert str(tmp_path / "MNIST") in msg and "--download" in msg and "ZOO_DATA" in msg


def test_zoo_data_env_is_the_default_root(fake_root, monkeypatch):
    monkeypatch.setenv("ZOO_DATA", str(fake_root))
    x, _ = load_split("mnist", "test")
    assert len(x) == 1000


def test_unknown_split():
    with pytest.raises(ZooError, match="unknown split"):
        load_split("mnist", "val")


def test_loader_normalizes_and_covers_epoch(fake_root):
    loader = make_loader("mnist", "test", 32, data=DataOptions(fake_root, verify=False))
    seen = 0
    for x, y in loader:
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28)
        seen += len(y)
    assert seen == 1000 and len(loader) == 32


def test_loader_deterministic_per_seed_and_epoch(fake_root):
    def first(seed, epoch):
        loader = make_loader("cifar10", "train", 16, data=DataOptions(fake_root, verify=False), seed=seed)
        loader.set_epoch(epoch)
        return next(iter(loader))

    a, b, c = first(1, 0), first(1, 0), first(1, 1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_loader_shards_are_disjoint(fake_root):
    x, y = load_split("mnist", "train", DataOptions(fake_root, verify=False))
    ids = torch.arange(len(y))
    shards = []
    for rank in range(2):
        loader = BatchLoader(x, ids, 10, mean=(0.0,), std=(1.0,), shuffle=True, rank=rank, world_size=2)
        shards.append(torch.cat([b for _, b in loader]))
    assert len(shards[0]) == len(shards[1]) == 100
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_crop_and_flip_are_exact_pixel_moves():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 8, 8)
    out = augment_batch(x, ("flip",), g)
    for i in range(64):  # each image is either itself or its mirror
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    shifted = augment_batch(x, ("crop",), torch.Generator().manual_seed(1), pad=2)
    # every output pixel is an input pixel or zero padding
    assert torch.isin(shifted, torch.cat([x.flatten(), torch.zeros(1)])).all()


def test_rotation_keeps_range():
    x = torch.rand(8, 1, 28, 28)
    out = augment_batch(x, ("rotate",), torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1 and not torch.equal(out, x)


@pytest.mark.realdata
def test_real_datasets(real_root):
    x, y = load_split("mnist", "test", DataOptions(real_root))
    assert x.shape == (10_000, 1, 28, 28) and (y == 0).sum() == 980 and (y == 1).sum() == 1135
    x, y = load_split("cifar10", "train", DataOptions(real_root, verify=False))
    assert x.shape == (50_000, 3, 32, 32)
    mean = torch.from_numpy(x.numpy().mean(axis=(0, 2, 3), dtype=np.float64) / 255)  # summed in chunks: no float copy
    assert torch.allclose(mean, torch.tensor(get_dataset_spec("cifar10").mean, dtype=torch.float64), atol=1e-3)
    x, y = load_split("cifar100", "test", DataOptions(real_root, verify=False))
    assert torch.bincount(y).tolist() == [100] * 100
