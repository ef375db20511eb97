"""ZooNet and its `speedrun` recipe: the architecture on every CIFAR-shaped dataset, the whitening layer's
construction, alternating flips, Lookahead through a resume, and the flip-shift TTA graph's parity."""

import json

import numpy as np
import pytest
import torch
from helpers import FP32, data, interrupt_after, same, weights

from zoo.data import get_dataset_spec
from zoo.data.loader import BatchLoader
from zoo.models import create_model, with_tta
from zoo.models.zoonet import ZooNet
from zoo.train import train
from zoo.train.loop import Interrupted
from zoo.train.recipes import get_recipe


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_zoonet_builds_for_every_cifar_shaped_dataset(dataset):
    spec = get_dataset_spec(dataset)
    model = create_model("zoonet", dataset).eval()
    assert model(torch.randn(2, *spec.input_shape)).shape == (2, spec.num_classes)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "whiten.weight" not in trained and "whiten.bias" in trained  # frozen filters, a trained bias
    assert not any(n.endswith("norm1.weight") or n.endswith("norm2.weight") for n in trained)  # BN: bias only
    conv = model.groups[1].conv1.weight  # dirac: the first in-channels filters pass their channel on
    assert torch.equal(conv[:64, :, 1, 1], torch.eye(64)) and conv[:64, :, 0, 0].abs().sum() == 0


def test_the_whitening_filters_whiten_the_patches_they_were_fitted_on():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(40, 3, 12, 12, generator=g)
    images = base + 0.8 * base.roll(1, dims=3) + torch.tensor([0.5, -0.2, 0.1]).view(1, 3, 1, 1)  # correlated
    net = ZooNet(3, 10, widths=(8, 8, 8))
    eigenvalues = net.fit_whitening(images, eps=1e-6)
    assert len(eigenvalues) == 12 and eigenvalues == sorted(eigenvalues)
    flat = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
    w = net.whiten.weight.detach().double().reshape(24, 12)
    assert torch.allclose(w[:12], -w[12:])  # each filter and its negative
    out = flat @ w[:12].T
    cov = out.T @ out / len(out)
    assert torch.allclose(cov, torch.eye(12, dtype=torch.float64), atol=1e-3)


def test_altflip_mirrors_each_image_every_other_epoch():
    images = torch.arange(8 * 4 * 4, dtype=torch.uint8).view(8, 1, 4, 4)
    loader = BatchLoader(images, torch.zeros(8, dtype=torch.long), 8, mean=(0.0,), std=(1.0,), augment=("altflip",))
    seen = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        x, _ = next(iter(loader))
        seen.append([bool(torch.equal(x[i], images[i].float().div(255).flip(-1))) for i in range(8)])
    assert seen[0] == seen[2] and all(a != b for a, b in zip(seen[0], seen[1])) and 0 < sum(seen[0]) < 8


def _speedrun(**kw):
    return get_recipe("speedrun", get_dataset_spec("cifar10"), "zoonet", **{"epochs": 2, "batch_size": 40, **kw})


@pytest.mark.e2e
def test_speedrun_records_its_whitening_and_lookahead_resumes_bit_identically(fake_root, tmp_path, monkeypatch):
    cfg = _speedrun(lookahead=2, tta="")
    train("zoonet", "cifar10", cfg, FP32, out=tmp_path / "a", data=data(fake_root), progress=False)
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["whitening"]["images"] == 200 and len(config["whitening"]["eigenvalues"]) == 12
    assert config["recipe"]["lookahead"] == 2 and config["recipe"]["bias_lr"] == 64.0
    interrupt_after(monkeypatch, 7)  # mid-way through epoch 2, between two Lookahead pulls
    with pytest.raises(Interrupted):
        train("zoonet", "cifar10", cfg, FP32, out=tmp_path / "b", data=data(fake_root), progress=False)
    monkeypatch.undo()
    train("zoonet", "cifar10", cfg, FP32, out=tmp_path / "b", data=data(fake_root), progress=False, resume=True)
    assert same(weights(tmp_path / "a"), weights(tmp_path / "b"))
    no_lookahead = tmp_path / "c"
    train("zoonet", "cifar10", _speedrun(lookahead=0, tta=""), FP32, out=no_lookahead, data=data(fake_root),
          progress=False)
    assert not same(weights(tmp_path / "a"), weights(no_lookahead))  # the option does something


@pytest.mark.e2e
def test_the_flip_shift_graph_computes_what_was_evaluated(fake_root, tmp_path):
    import onnxruntime as ort

    from zoo.export import export, read_metadata

    train("zoonet", "cifar10", _speedrun(epochs=1), FP32, out=tmp_path / "run", data=data(fake_root), progress=False)
    res = export("zoonet", "cifar10", weights=tmp_path / "run", out=tmp_path / "onnx", data=data(fake_root))
    assert read_metadata(res.path)["recipe"]["tta"] == "flip-shift"
    plain = _plain(tmp_path / "run")
    x = torch.randn(3, 3, 32, 32)
    got = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
        flip = lambda v: (plain(v) + plain(v.flip(-1))) / 2  # noqa: E731
        want = (flip(x) / 2 + (flip(padded[..., :32, :32]) + flip(padded[..., 2:, 2:])) / 4).numpy()
        assert np.allclose(with_tta(plain, "flip-shift")(x).numpy(), want, atol=1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _plain(run) -> torch.nn.Module:
    from zoo.core.sources import from_path

    model = create_model("zoonet", "cifar10")
    model.load_state_dict(from_path(run).state)
    return model.eval()


def test_speedrun_reads_its_test_time_augmentation_at_the_last_epoch_and_one_pass_before(fake_root, tmp_path):
    """As airbench evaluates: the epochs before the last in one pass (said in the metrics), the last with the
    recipe's flip + shift, whose figure the card keeps."""
    cfg = _speedrun(epochs=2, batch_size=100)
    assert not cfg.tta_each_epoch and cfg.tta == "flip-shift"
    s = train("zoonet", "cifar10", cfg, FP32, out=tmp_path / "r", data=data(fake_root), progress=False)
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [m["test_tta"] for m in lines] == ["none", "flip-shift"]
    assert s["final"]["test_tta"] == "flip-shift"
    every = _speedrun(epochs=2, batch_size=100, tta_each_epoch=True)
    train("zoonet", "cifar10", every, FP32, out=tmp_path / "e", data=data(fake_root), progress=False)
    lines_e = [json.loads(x) for x in (tmp_path / "e" / "metrics.jsonl").read_text().splitlines()]
    assert [m["test_tta"] for m in lines_e] == ["flip-shift", "flip-shift"]
    assert lines_e[-1]["test_acc"] == lines[-1]["test_acc"]  # the same training: only the reading differs
