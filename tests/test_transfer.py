"""Fine-tuning at the defaults: heads mapped by class name, the first convolution adapted to the channels,
channels inferred from the pixels, the recipe that fits the data, epoch 0, and no probe for a short run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.data import FolderOptions, get_dataset_spec, open_folder
from zoo.data import folder as folder_mod
from zoo.models import create_model
from zoo.models.transfer import adapt_input_conv, class_key, map_classes, transfer_state
from zoo.train import default_recipe
from zoo.train import fastpath

from test_folder import WORDS, quiet, write_digits


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder_mod._OPENED.clear()


# ---------------------------------------------------------------- class names
@pytest.mark.parametrize("a, b", [("7", "seven"), ("7 - seven", "7"), ("Seven", "seven"), ("lawn_mower", "Lawn Mower"),
                                  ("maple-tree", "maple_tree"), ("0 - zero", "zero"), ("AIRPLANE", "airplane")])
def test_names_that_mean_the_same_class_match(a, b):
    assert class_key(a) == class_key(b)


@pytest.mark.parametrize("a, b", [("7", "1"), ("seven", "seventeen"), ("cat", "catfish"), ("oak_tree", "tree")])
def test_names_of_different_classes_do_not(a, b):
    assert class_key(a) != class_key(b)


def test_mapping_by_name_whatever_the_order():
    mnist = [str(i) for i in range(10)]
    folder = sorted(WORDS)  # eight, five, four, nine, one, seven, six, three, two, zero
    assert map_classes(mnist, folder) == [8, 5, 4, 9, 1, 7, 6, 3, 2, 0]
    assert map_classes(get_dataset_spec("cifar10").class_names, ["Truck", "lion", "cat"]) == [9, None, 3]
    assert map_classes(["a", "b"], ["c", "d"]) == [None, None]


def _logits(model, x):
    return model.eval()(x).detach()


def test_a_mapped_head_gives_the_pretrained_logits_of_its_classes():
    base = create_model("resnet20", "cifar10", pretrained=True).eval()
    model = create_model("resnet20", "cifar10", pretrained=True, classes=["ship", "Cat", "unicorn"]).eval()
    x = torch.randn(3, 3, 32, 32)
    assert torch.allclose(_logits(model, x)[:, :2], _logits(base, x)[:, [8, 3]], atol=1e-5)
    said = model.zoo_transfer
    assert said.mapped == ["ship", "Cat"] and said.fresh == ["unicorn"]
    assert said.line() == "head: 2 of 3 classes mapped by name (ship, Cat); 1 start fresh (unicorn)"


def test_head_modes_keep_fresh_and_no_common_name():
    torch.manual_seed(0)
    mnist = create_model("cnn", "mnist")
    state = {k: v + 1 for k, v in mnist.state_dict().items()}
    target = create_model("cnn", "mnist")
    w = "fc2.weight" if "fc2.weight" in state else [k for k in state if k.endswith("weight")][-1]
    kept, said = transfer_state(target, state, [str(i) for i in range(10)], list(WORDS), head="keep")
    assert torch.equal(kept[w], state[w]) and said.note.startswith("kept row for row")
    fresh, said = transfer_state(target, state, [str(i) for i in range(10)], list(WORDS), head="fresh")
    assert torch.equal(fresh[w], target.state_dict()[w]) and said.fresh == list(WORDS)
    none, said = transfer_state(target, state, list("abcdefghij"), list(WORDS))
    assert torch.equal(none[w], target.state_dict()[w])
    assert said.line() == "head started fresh: no class names in common with the weights"
    mapped, said = transfer_state(target, state, [str(i) for i in range(10)], list(WORDS))
    assert torch.equal(mapped[w][WORDS.index("seven")], state[w][7])
    assert said.line() == "head: 10 classes mapped by name"


# ---------------------------------------------------------------- channels
def test_grey_weights_adapted_to_rgb_give_the_same_logits_on_a_grey_image_replicated():
    grey = create_model("cnn", "mnist", pretrained=True).eval()
    rgb_spec = get_dataset_spec("mnist").__class__(**{**get_dataset_spec("mnist").__dict__, "name": "rgb_digits",
                                                     "channels": 3, "mean": (0.1307,) * 3, "std": (0.3081,) * 3})
    rgb = create_model("cnn", rgb_spec)
    state, said = transfer_state(rgb, grey.state_dict(), None, None, head="keep")
    rgb.load_state_dict(state)
    assert said.input.startswith("1 to 3 channels")
    x = torch.randn(5, 1, 28, 28)
    assert torch.allclose(_logits(rgb, x.repeat(1, 3, 1, 1)), _logits(grey, x), atol=1e-4)


def test_rgb_weights_adapted_to_grey_sum_the_channels():
    w = torch.randn(8, 3, 3, 3)
    grey = adapt_input_conv(w, 1)
    x = torch.randn(2, 1, 9, 9)
    same = torch.nn.functional.conv2d(x.repeat(1, 3, 1, 1), w)
    assert torch.allclose(torch.nn.functional.conv2d(x, grey), same, atol=1e-5)
    assert adapt_input_conv(grey, 3).shape == (8, 3, 3, 3)


def _digits_as(tmp_path, fmt: str, colour: bool = False):
    root = write_digits(tmp_path / f"digits_{fmt}", limit=60, size=16)
    rng = np.random.default_rng(0)
    for f in root.rglob("*.png"):
        img = Image.open(f).convert("RGB")
        if colour:
            a = np.asarray(img).copy()
            a[..., 0] = rng.integers(0, 256, a.shape[:2])
            img = Image.fromarray(a)
        if fmt == "palette":
            img = img.convert("L").convert("P")
        img.save(f.with_suffix(".jpg" if fmt == "jpeg" else ".png"), **({"quality": 90} if fmt == "jpeg" else {}))
        if fmt == "jpeg":
            f.unlink()
    return root


@pytest.mark.parametrize("fmt, colour, channels", [("jpeg", False, 1), ("png", False, 1), ("palette", False, 1),
                                                   ("jpeg", True, 3), ("png", True, 3)])
def test_channels_are_inferred_from_the_pixels_not_the_file_mode(tmp_path, fmt, colour, channels):
    said = []
    spec = open_folder(_digits_as(tmp_path, fmt, colour), FolderOptions(), log=said.append)
    assert spec.channels == channels
    line = next(s for s in said if "training and" in s)
    assert ("1 channel: grey" if channels == 1 else "3 channels: colour") in line and "--channels to change" in line
    if fmt == "jpeg" and not colour:
        assert "hold grey pixels" in line


def test_init_normalizes_as_its_weights_and_keeps_the_images_channels(tmp_path):
    spec = get_dataset_spec(str(_digits_as(tmp_path, "jpeg")), opts=FolderOptions(), init="pretrained:mnist", log=quiet)
    assert (spec.channels, spec.size, spec.mean, spec.std) == (1, 28, (0.1307,), (0.3081,))


# ---------------------------------------------------------------- the recipe, epoch 0, the probe
def test_default_recipe_per_case(tmp_path):
    folder = open_folder(write_digits(tmp_path / "d", limit=40), FolderOptions(), log=quiet)
    assert default_recipe(get_dataset_spec("cifar10"))[0] == "paper"
    assert default_recipe(get_dataset_spec("mnist"), "pretrained")[0] == "paper"
    assert default_recipe(folder, "pretrained:mnist")[0] == "finetune"
    assert default_recipe(folder)[0] == "fast"


def test_fine_tuning_at_the_defaults_maps_the_head_evaluates_epoch_0_and_skips_the_probe(tmp_path, capsys):
    """The command a user types, every option at its default: the classes of real digits sort as words
    (eight, five, …), MNIST's as digits; epoch 0 already reads them right."""
    from zoo.cli import main

    root = write_digits(tmp_path / "digits", size=28)
    out = tmp_path / "run"
    assert main(["train", "cnn", str(root), "--init", "pretrained:mnist", "--epochs", "1", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "recipe finetune (a folder of your images, started from --init weights" in said
    assert "head: 10 classes mapped by name" in said
    assert "not measured" in said and "fast path" not in said  # a short run: no probe
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [0, 1]
    # 8x8 scans upscaled are not MNIST, yet the mapped rows read them well above chance (10%: rows kept in
    # order give about that), and one epoch of finetune makes a useful model
    assert lines[0]["test_acc"] > 30 and lines[1]["test_acc"] > 85, lines
    assert json.loads((out / "summary.json").read_text())["init_test_acc"] == lines[0]["test_acc"]
    assert "no epoch improved" not in said
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"]["recipe"] == "finetune" and config["init"]["head"] == "map"
    assert len(config["init"]["mapped"]) == 10 and config["init"]["fresh"] == []


def test_a_run_that_never_beats_its_init_weights_keeps_them(capsys, tmp_path):
    """A learning rate that wrecks the weights in one epoch: epoch 0 (the --init weights) stays the best, the
    run keeps them, the last line compares the result with its start, and a note says what to try."""
    from zoo.cli import main

    root = write_digits(tmp_path / "digits", size=28, limit=400)
    out = tmp_path / "r"
    assert main(["train", "cnn", str(root), "--init", "pretrained:mnist", "--epochs", "1", "--lr", "80",
                 "--out", str(out)]) == 0
    said = capsys.readouterr()
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[1]["test_acc"] < lines[0]["test_acc"], lines  # the epoch made it worse
    best = json.loads((out / "best.json").read_text())
    assert best["epoch"] == 0 and best["metrics"]["test_acc"] == lines[0]["test_acc"]
    assert f"best test accuracy {lines[0]['test_acc']:.2f}% (+0.00 pt on the --init weights'" in said.out
    assert "no epoch improved on the --init weights" in said.err and "--freeze-backbone" in said.err


def test_a_short_run_is_not_probed(monkeypatch):
    monkeypatch.setattr(fastpath, "measure", lambda *a, **k: pytest.fail("probed a short run"))
    said = []
    path = fastpath.choose("cnn", "mnist", "cpu", 32, total_images=32 * 100, log=said.append)
    assert path.images_per_s == 0 and not path.provisional and "too few to repay measuring" in said[-1]


def test_which_networks_adapt_their_weights_to_other_channels():
    """The classic networks: only the first convolution follows the channels (adapted as timm does). ZooNet:
    its whitening layer's width, and so the next convolution's input, follow them too."""
    from zoo.models import adapts_channels

    assert adapts_channels("resnet20", get_dataset_spec("cifar10"), 1)
    assert adapts_channels("cnn", get_dataset_spec("mnist"), 3)
    assert not adapts_channels("zoonet", get_dataset_spec("cifar10"), 1)


@pytest.mark.parametrize("arch, channels", [("zoonet", 3), ("resnet20", 1)])
def test_grey_images_are_read_as_rgb_when_the_network_cannot_adapt_rgb_weights(tmp_path, capsys, arch, channels):
    """zoo train zoonet GREY_FOLDER --init pretrained:cifar10 reads the images as RGB, and says so, instead of
    starting the whitening and the first group fresh; ResNet-20 adapts its first convolution and keeps 1."""
    from zoo.cli import main

    root = write_digits(tmp_path / "digits", limit=60, size=32)
    out = tmp_path / "run"
    assert main(["train", arch, str(root), "--init", "pretrained:cifar10", "--epochs", "1", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["dataset_spec"]["channels"] == channels
    assert all(k.startswith("fc.") for k in config["init"]["reinitialized"]), config["init"]  # digits: a new head
    assert ("reading the images as 3 channels" in said) == (arch == "zoonet")
    assert said.count(f"zoo: {root.name}: ") == 1  # the folder's line once, with the channels it was read with


def test_the_python_api_resolves_a_folder_as_zoo_train_does(tmp_path):
    """zoo.train.train on a folder with init="pretrained:cifar10" normalizes it with CIFAR-10's statistics, as
    the CLI does (it used to record the folder's own): the two paths resolve through one function."""
    from zoo.train import training_spec

    root = tmp_path / "photos"
    for i, f in enumerate(sorted((Path(__file__).resolve().parents[1] / "weights" / "samples" / "cifar10")
                              .glob("*.png"))):
        (root / f.name.split("_")[0]).mkdir(parents=True, exist_ok=True)
        Image.open(f).save(root / f.name.split("_")[0] / f"{i}.png")
    spec = training_spec("resnet20", str(root), "pretrained:cifar10", log=quiet)
    assert (spec.mean, spec.std, spec.channels, spec.size) == (get_dataset_spec("cifar10").mean,
                                                               get_dataset_spec("cifar10").std, 3, 32)


def test_classes_that_are_one_name_share_no_pretrained_row():
    """cat, Cat and c_a_t normalize to one name: mapping all three onto CIFAR-10's cat row would make three
    classes the head cannot tell apart; none takes it, and dog still maps."""
    rows = map_classes(get_dataset_spec("cifar10").class_names, ["cat", "Cat", "c_a_t", "dog"])
    assert rows[:3] == [None, None, None] and rows[3] == get_dataset_spec("cifar10").class_names.index("dog")


def test_a_grey_folder_fine_tunes_from_the_colour_cnn_read_as_rgb(tmp_path):
    """The cnn's grey (MNIST) and colour (CIFAR) builds are different networks: a grey folder from
    pretrained:cifar10 is read as RGB, where it used to end in "does not fit cnn"."""
    from zoo.train import training_spec

    spec = training_spec("cnn", str(write_digits(tmp_path / "d", limit=40, size=32)), "pretrained:cifar10",
                         log=quiet)
    assert spec.channels == 3


def test_a_linear_probe_fits_as_scikit_learn_does():
    """The probe's closed-form fit (L-BFGS on the summed loss, L2 as LogisticRegression's C=1) against
    scikit-learn's on the same features: the same answers on held-out points."""
    from sklearn.linear_model import LogisticRegression

    from zoo.train.probe import fit

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 2
    y = torch.arange(800) % 4
    x = centres[y] + torch.randn(800, 16, generator=g) * 1.5
    ours = fit(x[:400], y[:400], 4, scale=1.0, bias=True)
    theirs = LogisticRegression(C=1.0, max_iter=5000).fit(x[:400].numpy(), y[:400].numpy())
    agree = (ours.logits(x[400:]).argmax(1).numpy() == theirs.predict(x[400:].numpy())).mean()
    assert agree >= 0.99 and ours.accuracy(x[400:], y[400:]) > 80
    scaled = fit(x[:400], y[:400], 4, scale=1 / 9, bias=False)  # ZooNet's head: no bias, logits x 1/9
    assert abs(scaled.accuracy(x[400:], y[400:]) - ours.accuracy(x[400:], y[400:])) < 3


def test_new_classes_start_from_a_linear_probe_and_the_last_line_compares_with_it(tmp_path, capsys):
    """Classes the weights never saw (letters, not digits): the classifier is fitted to them on the frozen
    features before any step (LP-FT), so epoch 0 already reads them; the last line compares the result with the
    start and with the linear probe."""
    from zoo.cli import main

    root = write_digits(tmp_path / "letters", names=[f"letter_{c}" for c in "abcdefghij"], size=28, limit=600)
    out = tmp_path / "run"
    assert main(["train", "cnn", str(root), "--init", "pretrained:mnist", "--epochs", "1", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "the classifier fitted to your 10 classes on the frozen features first (a linear probe" in said
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["test_acc"] > 70 and lines[0]["probe_acc"] > 70, lines  # a fresh head would read ~10%
    summary = json.loads((out / "summary.json").read_text())
    assert summary["init_probe_acc"] == lines[0]["probe_acc"]
    assert f"on a linear probe of their features' {lines[0]['probe_acc']:.2f}%)" in said
    assert json.loads((out / "config.json").read_text())["init"]["probe"] == "fitted"


def test_init_auto_fine_tunes_from_the_shipped_weights_whose_probe_is_best(tmp_path, capsys):
    """Real digits: of the cnn's shipped weights (CIFAR-10, CIFAR-100, MNIST), MNIST's features read them best
    (probes of 95.0, 91.7 and 81.7% here); --init auto measures each and starts from it, on the CLI and in Python
    alike."""
    from zoo.cli import main
    from zoo.train import train
    from zoo.train.autoinit import candidate_spec, probe_score

    root = write_digits(tmp_path / "digits", size=28, limit=600)
    scores = {s: probe_score("cnn", candidate_spec("cnn", str(root), s, FolderOptions()), s)
              for s in ("cifar10", "cifar100", "mnist")}
    assert scores["mnist"].best > scores["cifar100"].best + 2 and scores["mnist"].best > scores["cifar10"].best + 10
    assert scores["mnist"].mapped == 10 and scores["cifar10"].mapped == 0  # MNIST's rows know the digits by name
    out = tmp_path / "run"
    assert main(["train", "cnn", str(root), "--init", "auto", "--epochs", "1", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "--init auto: pretrained:mnist, the best start among cnn's shipped weights" in said, said
    assert "(knows every class by name)" in said and "zoo: digits: " in said  # the folder is described, as ever
    config = json.loads((out / "config.json").read_text())
    assert config["init"]["arg"] == "pretrained:mnist" and config["dataset_spec"]["channels"] == 1
    from zoo.train import TrainConfig

    recipe = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["recipe"].items()})
    train("cnn", str(root), recipe, init="auto", out=tmp_path / "api", progress=False)
    api = json.loads((tmp_path / "api" / "config.json").read_text())
    assert api["init"] == config["init"] and api["dataset_spec"] == config["dataset_spec"]


def test_init_auto_is_for_folders(tmp_path, capsys):
    from zoo.cli import main

    assert main(["train", "cnn", "mnist", "--init", "auto", "--out", str(tmp_path / "r")]) == 2
    assert "--init auto chooses among shipped weights for a folder" in capsys.readouterr().err


def test_init_auto_breaks_a_tie_towards_the_weights_that_know_the_classes(tmp_path, monkeypatch, capsys):
    """Fifty held-out digits cannot tell 92% from 92%: the weights whose classifier knows every class by name
    (MNIST's) win the tie over CIFAR-100's, whose head would start fresh (a newcomer trial met this)."""
    from zoo.train import autoinit

    fixed = {"cifar10": autoinit.Score(80.0, 0, 80.0), "cifar100": autoinit.Score(92.0, 0, 92.0),
             "mnist": autoinit.Score(92.0, 10, 92.0)}
    monkeypatch.setattr(autoinit, "probe_score", lambda arch, spec, source, seed=0: fixed[source])
    root = write_digits(tmp_path / "digits", size=28, limit=300)
    init, spec, scores = autoinit.choose_init("cnn", str(root), FolderOptions())
    assert init == "pretrained:mnist" and spec.channels == 1 and scores["mnist"] == 92.0


def test_the_command_that_made_a_run_resumes_it(tmp_path, capsys):
    """The same command with --resume, the folder given by its path and --init auto as typed: the run's own
    start and dataset, not a refusal (a newcomer trial was told the run was of another dataset)."""
    from zoo.cli import main

    root = write_digits(tmp_path / "digits", size=28, limit=300)
    cmd = ["train", "cnn", str(root), "--init", "auto", "--epochs", "1", "--out", str(tmp_path / "run")]
    assert main(cmd) == 0
    capsys.readouterr()
    assert main([*cmd, "--resume"]) == 0
    said = capsys.readouterr()
    assert "already finished its 1 epoch" in said.out.splitlines()[-1] and "error" not in said.err


def test_an_epoch_replaces_the_start_only_beyond_the_held_out_noise():
    """McNemar's test on the same held-out images: two won and none lost is noise, as is two net of eight that
    differ; five of five, or 25 net of 35, is not; ties and losses never replace the start."""
    import torch

    from zoo.train.loop import beyond_noise, versus

    start = torch.tensor([True, True, False, False, True])
    now = torch.tensor([True, False, True, True, True])
    assert versus(start, now) == (2, 1)
    assert not beyond_noise(5, 3) and not beyond_noise(4, 4) and not beyond_noise(0, 3) and not beyond_noise(2, 0)
    assert not beyond_noise(0, 0) and beyond_noise(30, 5) and beyond_noise(5, 0)


def test_a_gain_within_the_noise_keeps_the_start_and_says_so(capsys, tmp_path, monkeypatch):
    """An epoch that beats the --init weights by less than the held-out images' noise does not replace them: the
    start stays the best, summary.json keeps that epoch's figures, and the note names them."""
    from zoo.cli import main
    from zoo.train import run as run_module

    monkeypatch.setattr(run_module, "beyond_noise", lambda won, lost: False)  # every gain within the noise
    root = write_digits(tmp_path / "digits", size=28, limit=400)
    out = tmp_path / "r"
    assert main(["train", "cnn", str(root), "--init", "pretrained:mnist", "--epochs", "1", "--out", str(out)]) == 0
    said = capsys.readouterr()
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    won, lost = lines[1]["vs_start"]
    assert lines[1]["test_acc"] > lines[0]["test_acc"] and won > lost, lines  # better, yet not kept
    assert json.loads((out / "best.json").read_text())["epoch"] == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_test_acc"] == lines[0]["test_acc"] and summary["within_noise"]["epoch"] == 1
    assert f"epoch 1's {lines[1]['test_acc']:.2f}% got {won} right that they got wrong and {lost}" in said.err
