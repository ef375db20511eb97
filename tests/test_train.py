import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import interrupt_after, same, train_fast, weights

from zoo.core.errors import ZooError
from zoo.data import get_dataset_spec
from zoo.train import get_recipe, lr_at
from zoo.train.loop import Interrupted
from zoo.train.rundir import load_checkpoint, run_lock


def test_paper_recipes_match_spec():
    mn = get_recipe("paper", get_dataset_spec("mnist"))
    assert (mn.lr, mn.batch_size, mn.epochs, mn.schedule) == (0.01, 500, 50, "constant")
    cf = get_recipe("paper", get_dataset_spec("cifar10"))
    assert [lr_at(cf, e) for e in (0, 13.9, 14, 28.9, 29, 38.9, 39, 49.9)] == pytest.approx(
        [0.1, 0.1, 0.02, 0.02, 0.004, 0.004, 0.0008, 0.0008])
    assert set(cf.augment) == {"crop", "flip", "rotate"}
    fast = get_recipe("fast", get_dataset_spec("cifar10"))
    assert lr_at(fast, 0) < lr_at(fast, fast.warmup * fast.epochs) == pytest.approx(fast.lr)
    assert lr_at(fast, fast.epochs) == 0


def test_loss_goes_down_and_checkpoint_is_valid(fake_root, tmp_path):
    out = tmp_path / "run"
    s = train_fast("cnn", "mnist", out, fake_root, epochs=4, batch_size=50)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3, 4]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    assert s["best_test_acc"] > 50  # class templates + noise: learnable
    w, card, state = load_checkpoint(out)
    assert card.arch == "cnn" and card.dataset == "mnist" and card.epoch == 4
    assert card.recipe["recipe"] == "fast" and card.env["torch"] == torch.__version__
    assert set(state) >= {"optimizer", "torch_rng", "epoch"}
    assert (out / "best.safetensors").is_file() and json.loads((out / "best.json").read_text())["sha256"]
    assert json.loads((out / "config.json").read_text())["recipe"]["epochs"] == 4
    assert not list(out.rglob("*.tmp"))


def test_alexnet_fast_recipe_lr():
    spec = get_dataset_spec("cifar10")
    assert get_recipe("fast", spec, "alexnet").lr == 0.03 and get_recipe("fast", spec, "cnn").lr == 0.2
    assert get_recipe("fast", spec, "alexnet", lr=0.05).lr == 0.05  # the caller's override still wins


@pytest.mark.e2e
def test_resume_mid_epoch_is_bit_identical(fake_root, tmp_path, monkeypatch):
    # alexnet has Dropout, so the torch RNG state must be restored too; cifar10 exercises augmentation.
    kw = dict(epochs=2, batch_size=40)
    train_fast("alexnet", "cifar10", tmp_path / "a", fake_root, **kw)
    interrupt_after(monkeypatch, 7)  # epoch 2, step 2 of 5
    with pytest.raises(Interrupted, match="--resume"):
        train_fast("alexnet", "cifar10", tmp_path / "b", fake_root, **kw)
    monkeypatch.undo()
    assert json.loads((tmp_path / "b" / "last.json").read_text())["step"] == 2
    before = load_checkpoint(tmp_path / "b")[2]["sums"]["wall"]  # the interrupted epoch's wall time so far
    t = time.perf_counter()
    train_fast("alexnet", "cifar10", tmp_path / "b", fake_root, resume=True, **kw)
    resumed = time.perf_counter() - t
    assert same(weights(tmp_path / "a"), weights(tmp_path / "b"))
    a = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    b = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(x).items() if k not in ("images_per_s", "wall_s")} for x in a + b]
    assert strip[:2] == strip[2:]
    assert before < json.loads(b[1])["wall_s"] < before + resumed  # the resumed epoch counts both processes


def test_ema_weights_are_what_is_evaluated_saved_and_resumed(fake_root, tmp_path, monkeypatch):
    """With ema on, the checkpoint's model is torch's AveragedModel of the weights (buffers included); the
    trained weights ride in state.pt, so a resume mid-epoch ends bit-identical to an uninterrupted run."""
    from zoo.core.sources import from_path
    from zoo.models import create_model
    from zoo.train.loop import evaluate
    from zoo.data import make_loader
    from helpers import data

    kw = dict(epochs=2, batch_size=40, ema=0.9)
    train_fast("cnn", "cifar10", tmp_path / "a", fake_root, **kw)
    _, _, state = load_checkpoint(tmp_path / "a")
    avg = load_file(str(tmp_path / "a" / "checkpoints" / "epoch-0002" / "model.safetensors"))
    trained = state["trained_weights"]
    assert not same(avg, trained) and state["ema_n_averaged"] == 10  # 5 steps per epoch, 2 epochs
    model = create_model("cnn", "cifar10")
    model.load_state_dict(from_path(tmp_path / "a" / "checkpoints" / "epoch-0002").state)
    loader = make_loader("cifar10", "test", 1000, data=data(fake_root))
    loss, correct, n = evaluate(model, loader)
    last = json.loads((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["test_acc"] == pytest.approx(100 * correct / n)  # the metrics are the average's
    interrupt_after(monkeypatch, 7)
    with pytest.raises(Interrupted):
        train_fast("cnn", "cifar10", tmp_path / "b", fake_root, **kw)
    monkeypatch.undo()
    train_fast("cnn", "cifar10", tmp_path / "b", fake_root, resume=True, **kw)
    assert same(weights(tmp_path / "a"), weights(tmp_path / "b"))


@pytest.mark.e2e
def test_periodic_mid_epoch_checkpoint_resumes_bit_identically(fake_root, tmp_path, monkeypatch):
    """save_every_s=0 checkpoints after every step; a copy taken right after one is what a kill -9 leaves."""
    from zoo.train import rundir as ck

    kw = dict(epochs=2, batch_size=40)
    train_fast("alexnet", "cifar10", tmp_path / "a", fake_root, **kw)
    real, tags = ck.save_checkpoint, []

    def save_and_copy(out, tag, *args, **kwargs):
        d = real(out, tag, *args, **kwargs)
        tags.append(tag)
        if tag == "epoch-0001-step000002":  # epoch 2, step 2 of 5
            shutil.copytree(out, tmp_path / "killed")
        return d

    monkeypatch.setattr(ck, "save_checkpoint", save_and_copy)
    train_fast("alexnet", "cifar10", tmp_path / "b", fake_root, save_every_s=0, **kw)
    monkeypatch.undo()
    steps = [f"step{s:06d}" for s in range(1, 5)]  # none after the last step: the epoch's own save follows
    assert tags == [f"epoch-0000-{s}" for s in steps] + ["epoch-0001"] + [f"epoch-0001-{s}" for s in steps] + \
        ["epoch-0002"]
    assert same(weights(tmp_path / "a"), weights(tmp_path / "b"))  # saving does not perturb the run
    kept = sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir())  # the newest two and the best one
    best = json.loads((tmp_path / "b" / "last.json").read_text())["best"]
    assert set(kept) == {"epoch-0001-step000004", "epoch-0002", best}
    assert json.loads((tmp_path / "killed" / "last.json").read_text())["step"] == 2
    train_fast("alexnet", "cifar10", tmp_path / "killed", fake_root, resume=True, **kw)
    assert same(weights(tmp_path / "a"), weights(tmp_path / "killed"))
    a, k = (json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[-1:] +
            (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()[-1:])
    assert {**a, "images_per_s": 0, "wall_s": 0} == {**k, "images_per_s": 0, "wall_s": 0}


def test_save_interval_must_not_be_negative(fake_root, tmp_path):
    with pytest.raises(ZooError, match="save interval"):
        train_fast("mlp", "mnist", tmp_path, fake_root, recipe="paper", epochs=1, save_every_s=-1)
    assert not tmp_path.joinpath("last.json").exists()


def _spawn(fake_root, out, *extra):
    env = {**os.environ, "ZOO_DATA": str(fake_root), "ZOO_VERIFY": "0"}
    cmd = [sys.executable, "-m", "zoo.cli", "train", "mlp", "mnist", "--recipe", "fast", "--batch-size", "20",
           "--precision", "fp32", "--compile", "off", "--out", str(out), *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(out: Path, proc, timeout=60):
    t = time.time()
    while not (out / "last.json").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t < timeout
        time.sleep(0.05)


@pytest.mark.e2e
def test_kill_9_loses_at_most_the_epoch_in_flight(fake_root, tmp_path):
    ref = tmp_path / "ref"
    train_fast("mlp", "mnist", ref, fake_root, epochs=12, batch_size=20)
    out = tmp_path / "killed"
    proc = _spawn(fake_root, out, "--epochs", "12")
    _wait_for_checkpoint(out, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads((out / "last.json").read_text())["epoch"]
    assert 1 <= done <= 12
    train_fast("mlp", "mnist", out, fake_root, epochs=12, batch_size=20, resume=True)
    assert same(weights(ref), weights(out))


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_saves_and_exits_cleanly(fake_root, tmp_path, sig, code):
    out = tmp_path / "run"
    proc = _spawn(fake_root, out, "--epochs", "2000")
    _wait_for_checkpoint(out, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    # the signal lands inside an epoch ("at epoch N step S") or between two ("after epoch N")
    assert re.search(rf"interrupted \({sig.name}\) (at|after) epoch \d+", err), err
    assert "--resume" in err and "Traceback" not in err
    w, card, _ = load_checkpoint(out)  # a valid, hash-checked checkpoint
    assert card.epoch >= 1


def test_second_trainer_is_refused(fake_root, tmp_path):
    out = tmp_path / "run"
    with run_lock(out):
        with pytest.raises(ZooError, match="in use by another trainer"):
            train_fast("mlp", "mnist", out, fake_root, recipe="paper", epochs=1)


def test_existing_run_needs_resume(fake_root, tmp_path):
    train_fast("mlp", "mnist", tmp_path, fake_root, recipe="paper", epochs=1)
    with pytest.raises(ZooError, match="--resume"):
        train_fast("mlp", "mnist", tmp_path, fake_root, recipe="paper", epochs=1)
    with pytest.raises(ZooError, match=r"was started with --epochs 1, not --epochs 2; resume it with its own recipe"):
        train_fast("mlp", "mnist", tmp_path, fake_root, recipe="paper", epochs=2, resume=True)


def test_resuming_a_finished_run_keeps_it(fake_root, tmp_path, capsys):
    from zoo.cli import main

    train_fast("mlp", "mnist", tmp_path, fake_root, recipe="paper", epochs=1)
    files = lambda: {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}  # noqa: E731
    before = files()
    # Nothing left to train: no data is read (this folder has none) and nothing is rewritten.
    s = train_fast("mlp", "mnist", tmp_path, tmp_path / "no-data", recipe="paper", epochs=1, resume=True)
    assert s["already_finished"] and s["final"]["epoch"] == 1 and files() == before
    assert main(["train", "mlp", "mnist", "--epochs", "1", "--precision", "fp32", "--compile", "off",
                 "--resume", "--out", str(tmp_path), "--data-dir", str(tmp_path / "no-data")]) == 0
    assert "already finished its 1 epoch;" in capsys.readouterr().out and files() == before
    # Killed between the last checkpoint and the summary: resuming writes the summary from the checkpoint.
    (tmp_path / "summary.json").unlink()
    s = train_fast("mlp", "mnist", tmp_path, fake_root, recipe="paper", epochs=1, resume=True)
    assert s["final"] == json.loads((tmp_path / "last.json").read_text())["metrics"]
    assert json.loads((tmp_path / "summary.json").read_text())["final"]["epoch"] == 1


def test_non_finite_loss_stops_and_keeps_last_good(fake_root, tmp_path, monkeypatch):
    import zoo.train.loop as loop

    orig, calls = loop.F.cross_entropy, []

    def poisoned(*a, **k):  # 4 steps per epoch: the loss turns NaN in the second epoch
        calls.append(1)
        return orig(*a, **k) * (float("nan") if len(calls) > 6 else 1.0)

    monkeypatch.setattr(loop.F, "cross_entropy", poisoned)
    out = tmp_path / "run"
    with pytest.raises(ZooError, match="loss became nan at epoch 1 step 1"):
        train_fast("mlp", "mnist", out, fake_root, recipe="paper", epochs=3, batch_size=50)
    w, card, _ = load_checkpoint(out)
    assert card.epoch == 1 and all(torch.isfinite(t).all() for t in w.values())


@pytest.mark.parametrize("args,msg", [
    (["--recipe", "papr"], "unknown recipe 'papr'; did you mean paper"),
    (["--epochs", "-3"], "argument --epochs: must be >= 1, got -3"),
    (["--lr", "0"], "learning rate must be a positive number"),
    (["--lr", "1e300"], "learning rate must be a positive number up to 100, got 1e+300"),
    (["--out", "{file}/run"], "is a file, not a folder; choose another --out"),
    (["--precision", "fp8"], "unknown precision 'fp8'"),
])
def test_bad_options_one_line(fake_root, tmp_path, args, msg):
    (tmp_path / "f").write_text("")
    args = [a.replace("{file}", str(tmp_path / "f")) for a in args]
    r = subprocess.run([sys.executable, "-m", "zoo.cli", "train", "mlp", "mnist", "--data-dir", str(fake_root),
                        "--out", str(tmp_path / "x"), *args], capture_output=True, text=True)
    assert r.returncode == 2 and msg in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "x").exists()


def test_missing_dataset_writes_nothing(tmp_path):
    with pytest.raises(ZooError, match="not found in"):
        train_fast("mlp", "mnist", tmp_path / "run", tmp_path / "none", recipe="paper", epochs=1)
    assert not (tmp_path / "run").exists()


DDP_SCRIPT = """
import json, sys, zoo
from zoo.data import DataOptions
from zoo.train import RuntimeRequest, train
cfg = zoo.get_recipe("fast", zoo.get_dataset_spec("cifar10"), "cnn", epochs=2, batch_size=40)
s = train("cnn", "cifar10", cfg, RuntimeRequest("cpu", "fp32", "off"), out=sys.argv[1], progress=False,
          data=DataOptions(verify=False))
print("SUMMARY", json.dumps(s))
"""


def test_two_process_gloo_run(fake_root, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "ZOO_DATA": str(fake_root), "OMP_NUM_THREADS": "1"}
    import socket

    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", port,
                        str(script), str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summaries = [json.loads(line.split(" ", 1)[1]) for line in r.stdout.splitlines() if line.startswith("SUMMARY")]
    assert sorted(s["rank"] for s in summaries) == [0, 1]
    assert summaries[0]["weights_sha256"] == summaries[1]["weights_sha256"]
    ckpts = list((tmp_path / "run" / "checkpoints").iterdir())
    assert len(ckpts) == 2 and json.loads((tmp_path / "run" / "last.json").read_text())["epoch"] == 2
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_progress_without_a_terminal_prints_periodic_step_lines(capsys):
    from zoo.train.loop import EpochSums
    from zoo.train.progress import EpochProgress

    sums = EpochSums(loss=460.0, correct=200, seen=200, step=2, seconds=4.0)
    with EpochProgress(enabled=True, interval=0.0) as bar:
        bar.start_epoch(0, 10, 8, 0)
        bar.step(sums, 0.1, 1)
    with EpochProgress(enabled=True, interval=3600.0) as quiet:
        quiet.start_epoch(0, 10, 8, 0)
        quiet.step(sums, 0.1, 1)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["epoch 1/10  step 2/8  loss 2.3000 acc 100.00% lr 0.1 50 img/s  epoch ends in 0m12s"]


def test_init_fine_tunes_from_another_datasets_run(fake_root, tmp_path, capsys):
    from zoo.cli import main

    src = tmp_path / "c10"
    train_fast("cnn", "cifar10", src, fake_root, recipe="paper", epochs=1, batch_size=50)
    before = load_file(str(src / "best.safetensors"))
    out = tmp_path / "c100"
    # lr so small that a step leaves the weights as they were: the run must start from the source's tensors.
    train_fast("cnn", "cifar100", out, fake_root, recipe="paper", epochs=1, batch_size=50, lr=1e-30, init=str(src))
    said = capsys.readouterr().out
    assert "head started fresh: no class names in common with cifar10" in said  # CIFAR-100 has no 'cat'
    assert "2 tensors start fresh: head.3.weight, head.3.bias" in said
    after = weights(out)
    convs = [k for k, v in before.items() if v.ndim == 4]
    assert convs and all(torch.equal(before[k], after[k]) for k in convs)
    assert after["head.3.weight"].shape == (100, 256)
    init = json.loads((out / "config.json").read_text())["init"]
    assert init["reinitialized"] == ["head.3.weight", "head.3.bias"] and init["dataset"] == "cifar10"
    assert init["sha256"] == json.loads((src / "best.json").read_text())["sha256"]
    assert load_checkpoint(out)[1].init == init  # publish copies it into the shipped card
    # Resuming keeps the recorded init; asking for another is refused in one line.
    with pytest.raises(ZooError, match="differs from the run"):
        train_fast("cnn", "cifar100", out, fake_root, recipe="paper", epochs=2, batch_size=50, lr=1e-30, resume=True,
                   init="pretrained:cifar10")
    # Another architecture's weights: refused before anything is written.
    assert main(["train", "lenet5", "mnist", "--init", str(src), "--out", str(tmp_path / "x"),
                 "--data-dir", str(fake_root), "--compile", "off", "--precision", "fp32"]) == 2
    assert "holds cnn weights, not lenet5" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_transfer_load_refuses_another_architecture():
    from zoo.core.state import load_state_dict_transfer
    from zoo.models import create_model

    c10, c100 = create_model("resnet20", "cifar10"), create_model("resnet20", "cifar100")
    assert load_state_dict_transfer(c100, c10.state_dict(), "src") == ["fc.weight", "fc.bias"]
    assert torch.equal(c100.state_dict()["stem.0.weight"], c10.state_dict()["stem.0.weight"])
    with pytest.raises(ZooError, match="tensors missing"):
        load_state_dict_transfer(c100, create_model("cnn", "cifar10").state_dict(), "src")


# ---------------------------------------------------------------- recipes from the command line and from records
def _cli(*args):
    from zoo.cli import main
    return main(["train", *args, "--precision", "fp32", "--compile", "off"])


def test_set_overrides_any_recipe_field_and_config_replays_a_run(fake_root, tmp_path, capsys):
    data = ["--data-dir", str(fake_root), "--no-verify"]
    assert _cli("mlp", "mnist", "--recipe", "fast", "--epochs", "1", "--set", "label_smoothing=0",
                "--set", "augment=", "--set", "milestones=3,5", "--out", str(tmp_path / "a"), *data) == 0
    recipe = json.loads((tmp_path / "a" / "config.json").read_text())["recipe"]
    assert recipe["label_smoothing"] == 0 and recipe["augment"] == [] and recipe["milestones"] == [3, 5]
    assert recipe["epochs"] == 1 and recipe["recipe"] == "fast"
    # Replayed from its record: the same recipe, the same weights.
    assert _cli("--config", str(tmp_path / "a" / "config.json"), "--out", str(tmp_path / "b"), *data) == 0
    assert json.loads((tmp_path / "b" / "config.json").read_text())["recipe"] == recipe
    assert same(weights(tmp_path / "a"), weights(tmp_path / "b"))
    # TOML works too, and flags override the record.
    (tmp_path / "c.toml").write_text('arch = "mlp"\ndataset = "mnist"\n[recipe]\nrecipe = "fast"\nepochs = 2\n')
    assert _cli("--config", str(tmp_path / "c.toml"), "--set", "lr=0.01", "--out", str(tmp_path / "c"), *data) == 0
    c = json.loads((tmp_path / "c" / "config.json").read_text())["recipe"]
    assert (c["epochs"], c["lr"], c["label_smoothing"]) == (2, 0.01, 0.1)
    capsys.readouterr()
    assert _cli("mlp", "mnist", "--set", "lr", "--out", str(tmp_path / "x"), *data) == 2
    assert _cli("mlp", "mnist", "--set", "warmpu=0.1", "--out", str(tmp_path / "x"), *data) == 2
    assert _cli("mlp", "mnist", "--set", "epochs=two", "--out", str(tmp_path / "x"), *data) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["zoo: error: --set 'lr': write FIELD=VALUE, e.g. --set lr=0.1",
                   "zoo: error: --set warmpu: not a recipe field; did you mean warmup?",
                   "zoo: error: --set epochs=two: not a valid int"]
    assert not (tmp_path / "x").exists()


def test_resume_with_only_the_run_folder(fake_root, tmp_path, monkeypatch, capsys):
    """The interrupt message's command works as printed: model, dataset and recipe come from config.json."""
    data = ["--data-dir", str(fake_root), "--no-verify"]
    interrupt_after(monkeypatch, 3)
    assert _cli("mlp", "mnist", "--recipe", "fast", "--epochs", "2", "--batch-size", "50", "--out",
                str(tmp_path / "r"), *data) == 130
    monkeypatch.undo()
    err = capsys.readouterr().err
    printed = err.split("continue with ")[1].split()
    assert printed[:3] == ["zoo", "train", "--resume"]
    assert _cli(*printed[2:], *data) == 0
    assert "mlp.mnist: best test accuracy" in capsys.readouterr().out
    assert json.loads((tmp_path / "r" / "last.json").read_text())["epoch"] == 2


def test_a_run_card_in_the_old_vocabulary_still_reads(tmp_path, fake_root):
    from zoo.core.sources import from_path

    train_fast("mlp", "mnist", tmp_path / "r", fake_root, recipe="paper", epochs=1)
    card = json.loads((tmp_path / "r" / "best.json").read_text())
    old = {k: v for k, v in card.items() if k not in ("arch", "env", "schema", "card_sha256", "state_sha256")}
    old.update(model=card["arch"], **card["env"])  # schema 1: `model`, the environment at the top level
    (tmp_path / "r" / "best.json").write_text(json.dumps(old))
    src = from_path(tmp_path / "r")
    assert (src.card.arch, src.card.schema, src.card.env["torch"]) == ("mlp", 1, torch.__version__)
    assert src.card.top1 == card["metrics"]["test_acc"]


@pytest.mark.e2e
def test_flip_tta_is_evaluated_exported_and_loaded_as_one_model(fake_root, tmp_path):
    """tta=flip: every epoch's test accuracy is the flip-averaged model's, the checkpoint holds the plain model's
    tensors, and the exported graph computes the same average (the card's recipe carries it to export)."""
    import numpy as np
    import onnxruntime as ort
    from zoo.core.sources import from_path
    from zoo.data import make_loader
    from zoo.export import export, read_metadata
    from zoo.models import create_model, with_tta
    from zoo.models.tta import FlipAverage
    from zoo.train.loop import evaluate
    from helpers import data

    train_fast("cnn", "cifar10", tmp_path / "run", fake_root, epochs=1, batch_size=40, tta="flip")
    src = from_path(tmp_path / "run")
    plain = create_model("cnn", "cifar10")
    plain.load_state_dict(src.state)  # the checkpoint's keys are the plain model's
    flipped = with_tta(plain, "flip").eval()
    loader = make_loader("cifar10", "test", 1000, data=data(fake_root))
    loss, correct, n = evaluate(flipped, loader)
    plain_loss, _, _ = evaluate(plain, loader)
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["test_acc"] == pytest.approx(100 * correct / n)
    assert last["test_loss"] == pytest.approx(loss / n, rel=1e-5) and abs(plain_loss - loss) / n > 1e-4
    res = export("cnn", "cifar10", weights=tmp_path / "run", out=tmp_path / "onnx", data=data(fake_root))
    assert read_metadata(res.path)["recipe"]["tta"] == "flip"
    x = torch.randn(3, 3, 32, 32)
    got = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = ((plain(x) + plain(x.flip(-1))) / 2).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert isinstance(flipped, FlipAverage) and flipped.zoo_name == "cnn"
    # zoo export --tta none: one pass instead of the recipe's two, a file of its own, the card's accuracy not claimed
    from zoo.cli import main
    assert main(["export", "cnn", "cifar10", "--weights", str(tmp_path / "run"), "--tta", "none", "--out",
                 str(tmp_path / "onnx"), "--data-dir", str(fake_root), "--no-verify"]) == 0
    single = tmp_path / "onnx" / "cnn.cifar10-tta-none.onnx"
    meta = read_metadata(single)
    assert (meta["recipe"]["tta"], meta["recipe_tta"], meta["train_top1"]) == ("", "flip", None)
    got = ort.InferenceSession(str(single), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, plain(x).numpy(), rtol=1e-4, atol=1e-4)
    assert read_metadata(res.path)["recipe"]["tta"] == "flip"  # the recipe's export is still there, untouched
    assert main(["bench", "--onnx", str(res.path), str(single), "--out", str(tmp_path / "b"), "--data-dir",
                 str(fake_root), "--no-verify", "--warmup", "1", "--repeat", "5", "--batch", "8"]) == 0
    rows = json.loads((tmp_path / "b" / "report.json").read_text())["rows"]
    assert sorted(r["arch"] for r in rows) == ["cnn", "cnn (tta none)"]  # told apart in the report
    two, one = (next(r for r in rows if r["arch"] == a) for a in ("cnn", "cnn (tta none)"))
    assert (two["tta"], one["tta"]) == ("flip", "") and two["params"] == one["params"]
    assert two["macs"] == 2 * one["macs"]  # MACs count the passes the file runs per image


def test_an_unknown_tta_is_one_line():
    with pytest.raises(ZooError, match="unknown test-time augmentation 'mirror'"):
        get_recipe("fast", get_dataset_spec("cifar10"), tta="mirror")
