"""`zoo publish`: a run's best weights go into a weights folder with a card measured by onnxruntime."""

import json
import re

import pytest
import torch

import zoo.publish as pub
from zoo.cli import main
from zoo.core.cards import SEAL, sealed
from zoo.core.errors import ZooError
from helpers import data, train_fast

from zoo.core.shipped import read_manifest, sha256_file
from zoo.core.sources import from_path


@pytest.fixture(scope="module")
def run(fake_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cnn.mnist"
    train_fast("cnn", "mnist", out, fake_root, epochs=2, batch_size=25)
    return out


def _publish(run, dest, fake_root, **kw):
    return pub.publish(run, dest, data=data(fake_root), log=lambda *_: None, **kw)


def test_publish_fp32_and_fp16(run, tmp_path, fake_root):
    card32 = _publish(run, tmp_path, fake_root)
    best = json.loads((run / "best.json").read_text())
    assert card32["sha256"] == best["sha256"] and card32["file"] == f"cnn.mnist-{best['sha256'][:8]}.safetensors"
    assert sha256_file(tmp_path / card32["file"]) == card32["sha256"]
    assert "onnxruntime" in card32["metrics"]["eval_set"] and "storage" not in card32["metrics"]
    assert "init" not in card32["meta"]  # trained from a random initialization

    card16 = _publish(run, tmp_path, fake_root, storage="fp16", force=True)  # may measure a hair lower
    f16 = tmp_path / card16["file"]
    assert sha256_file(f16) == card16["sha256"] != card32["sha256"]
    assert not (tmp_path / card32["file"]).exists()  # the pair's previous file is replaced, not left behind
    assert card16["size_mb"] < card32["size_mb"] * 0.55
    assert card16["metrics"]["storage"] == "fp16" and card16["metrics"]["fp32_top1"] == card32["metrics"]["top1"]
    assert card32["metrics"]["top1"] - card16["metrics"]["top1"] < pub.FP16_MAX_DROP
    manifest = json.loads((tmp_path / "manifest.json").read_text())["weights"]
    assert [c["file"] for c in manifest] == [card16["file"]]
    # Stored as float16, loaded as float32 values equal to the rounded weights.
    state = from_path(f16).state
    ref = from_path(run).state
    w = "features.0.weight" if "features.0.weight" in ref else next(k for k in ref if ref[k].is_floating_point())
    assert state[w].dtype == torch.float16 and torch.equal(state[w].float(), ref[w].half().float())


def test_fp16_refused_when_it_costs_too_much(run, tmp_path, fake_root, monkeypatch):
    monkeypatch.setattr(pub, "FP16_MAX_DROP", -1.0)  # any result is "too costly"
    with pytest.raises(ZooError, match="fp16 storage costs .* publish it as fp32"):
        _publish(run, tmp_path, fake_root, storage="fp16")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_weights_below_the_shipped_ones_are_refused_unless_forced(run, tmp_path, fake_root, capsys):
    card = _publish(run, tmp_path, fake_root)
    mf = tmp_path / "manifest.json"
    better = json.loads(mf.read_text())
    shipped = {k: v for k, v in better["weights"][0].items() if k != SEAL}
    shipped["metrics"]["top1"] = 100.0  # the shipped weights are perfect
    better["weights"][0] = sealed(shipped)  # as a maintainer's publish would have written them
    mf.write_text(json.dumps(better))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    argv = ["publish", str(run), "--dest", str(tmp_path), "--storage", "fp16", "--data-dir", str(fake_root),
            "--no-verify"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(r"cnn.mnist: these weights measure .*% top-1, below the shipped "
                                              r"100.00% \(cnn.mnist-.*\); keep those, or pass --force", err)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing written or removed
    assert main([*argv, "--force"]) == 0
    forced = json.loads(mf.read_text())["weights"]
    assert len(forced) == 1 and forced[0]["file"] != card["file"] and forced[0]["metrics"]["storage"] == "fp16"
    assert forced[0]["metrics"]["top1"] < 100.0 and not (tmp_path / card["file"]).exists()


def test_publish_bad_input(run, tmp_path, fake_root):
    with pytest.raises(ZooError, match="unknown storage 'int4'"):
        _publish(run, tmp_path, fake_root, storage="int4")
    with pytest.raises(ZooError, match="not found"):
        _publish(tmp_path / "nope", tmp_path, fake_root)


def test_a_fine_tuned_run_s_card_names_its_start(run, tmp_path, fake_root):
    out = tmp_path / "ft"
    train_fast("cnn", "mnist", out, fake_root, epochs=1, batch_size=25, init=str(run))
    card = _publish(out, tmp_path / "w", fake_root)
    init = card["meta"]["init"]
    assert init["sha256"] == json.loads((run / "best.json").read_text())["sha256"]
    assert init["dataset"] == "mnist" and init["reinitialized"] == []


def test_a_hand_edited_manifest_card_is_refused(run, tmp_path, fake_root):
    """Every card in the manifest is sealed: a changed figure (a flipped byte, an edit) is an error, not a number."""
    _publish(run, tmp_path, fake_root)
    mf = tmp_path / "manifest.json"
    edited = json.loads(mf.read_text())
    edited["weights"][0]["metrics"]["top1"] = 100.0
    mf.write_text(json.dumps(edited))
    with pytest.raises(ZooError, match="manifest.json is damaged"):
        read_manifest(tmp_path)


@pytest.mark.e2e
def test_fp16_is_measured_with_the_recipes_test_time_augmentation(fake_root, tmp_path, monkeypatch):
    """fp16 storage is measured as it will ship: through the same flip TTA graph as fp32 (measured bare, a run
    whose recipe averages flips at test time lost a point to fp16 that was the missing TTA's)."""
    from zoo.core.sources import card_at
    from zoo.models import tta_of

    train_fast("cnn", "cifar10", tmp_path / "run", fake_root, epochs=1, batch_size=50, tta="flip")
    seen, real = [], pub.export
    monkeypatch.setattr(pub, "export", lambda arch, dataset, weights, **k: seen.append(tta_of(card_at(weights)))
                        or real(arch, dataset, weights=weights, **k))
    _publish(tmp_path / "run", tmp_path / "w", fake_root, storage="fp16", force=True)
    assert seen == ["flip", "flip"]
