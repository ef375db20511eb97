from pathlib import Path

import pytest
import torch

import zoo
from zoo.core.errors import ZooError
from zoo.models import PAPER_MATRIX, create_model, list_models, list_pairs, register_model
from zoo.models.stats import macs_per_image, num_params

PAPER_PAIRS = list(PAPER_MATRIX)


def test_paper_matrix_has_16_pairs():
    assert len(PAPER_PAIRS) == 16
    assert list_pairs(paper=True) == PAPER_PAIRS
    assert {d for _, d in PAPER_PAIRS} == {"mnist", "kmnist", "cifar10", "cifar100"}


ALL_PAIRS = list_pairs()  # every buildable pair: the paper's and timm's


@pytest.mark.parametrize("arch,dataset", ALL_PAIRS, ids=[f"{a}.{d}" for a, d in ALL_PAIRS])
def test_every_pair_builds_and_runs(arch, dataset):
    spec = zoo.get_dataset_spec(dataset)
    model = create_model(arch, dataset).eval()
    with torch.no_grad():
        out = model(torch.randn(3, *spec.input_shape))
    assert out.shape == (3, spec.num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch,dataset,expected", [
    ("mlp", "mnist", 238_510),  # 784*300+300 + 300*10+10
    ("mlp", "cifar10", 795_242),  # 3072*256+256 + 256*32+32 + 32*10+10
    ("lenet5", "mnist", 61_706),  # LeCun 1998 with full C3
    ("resnet20", "cifar10", 269_722),  # He et al. 2015: 0.27 M
    ("resnet18", "cifar10", 11_173_962),  # CIFAR ResNet-18: 11.2 M
    ("cnn", "mnist", 80_602),  # ~300 KB as in the paper
])
def test_param_counts(arch, dataset, expected):
    assert num_params(create_model(arch, dataset)) == expected


def test_mnist_cnn_is_about_300_kb():
    assert 250_000 < num_params(create_model("cnn", "mnist")) * 4 < 350_000


def test_no_conv_bias_before_batchnorm():
    for arch in ("cnn", "resnet20", "resnet18"):
        model = create_model(arch, "cifar10")
        mods = list(model.modules())
        for m, nxt in zip(mods, mods[1:]):
            if isinstance(m, torch.nn.Conv2d) and isinstance(nxt, torch.nn.BatchNorm2d):
                assert m.bias is None, arch


def test_no_dropout_with_batchnorm():
    for arch, ds in PAPER_PAIRS:
        kinds = {type(m) for m in create_model(arch, ds).modules()}
        assert not ({torch.nn.Dropout, torch.nn.BatchNorm2d} <= kinds), arch


def test_alexnet_signal_survives_init():
    """No BatchNorm in AlexNet: He init keeps the activations' scale through the 5 convs (the default init
    shrank it ~6x per layer, and training crawled)."""
    torch.manual_seed(0)
    model = create_model("alexnet", "cifar10").eval()
    with torch.no_grad():
        feats = model.pool(model.features(torch.randn(64, 3, 32, 32)))
    assert 0.3 < feats.std().item() < 5


def test_macs_resnet20():
    # He et al.: ResNet-20 is ~41 M multiply-adds at 32x32.
    assert 40e6 < macs_per_image(create_model("resnet20", "cifar10"), (3, 32, 32)) < 42e6


def test_list_models_wildcards():
    assert list_models("resnet*") == ["resnet20", "resnet18"]
    assert "timm/resnet18" in list_models("timm/*")
    assert "timm/resnet18" not in list_models(exclude="timm/*")
    assert set(list_models(dataset="mnist")) >= {"mlp", "cnn", "lenet5"}


def test_unknown_model_lists_close_names():
    with pytest.raises(ZooError, match="did you mean resnet20, resnet18"):
        create_model("resnet2", "cifar10")


def test_unknown_dataset_lists_close_names():
    with pytest.raises(ZooError, match="cifar10, cifar100"):
        create_model("mlp", "cifar")


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_model("mlp")(lambda spec: None)


def test_shape_comes_from_spec_not_caller():
    with pytest.raises(ZooError, match="dataset spec"):
        create_model("mlp", "mnist", num_classes=5)


def test_unsupported_shape_is_a_clear_error():
    tiny = zoo.DatasetSpec("tiny8", "MNIST", 1, 8, tuple("abcd"), (0.5,), (0.5,), "mnist", 10)
    with pytest.raises(ZooError, match="resnet18 needs images of at least 16x16"):
        create_model("resnet18", tiny)
    with pytest.raises(ZooError, match="lenet5 takes 28x28 or 32x32"):
        create_model("lenet5", tiny)
    assert create_model("mlp", tiny)(torch.randn(2, 1, 8, 8)).shape == (2, 4)


@pytest.mark.parametrize("name", ["timm/resnet18", "timm/mobilenetv3_small_100"])
@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_timm_models_forward_backward(name, dataset):
    spec = zoo.get_dataset_spec(dataset)
    model = create_model(name, dataset).train()
    out = model(torch.randn(4, *spec.input_shape))
    assert out.shape == (4, spec.num_classes)
    out.logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_unknown_timm_model():
    with pytest.raises(ZooError, match="unknown timm model 'resnet1'"):
        create_model("timm/resnet1", "cifar10")


def test_the_shipped_catalog_is_what_the_registry_builds_today():
    """zoo list reads weights/catalog.json instead of building 36 models: a model changed without writing the
    catalog again (zoo.models.catalog.write_catalog) fails here. In a fresh interpreter: other tests register
    models of their own in this one."""
    import subprocess
    import sys

    code = ("import json; from zoo.models.catalog import catalog_file; from zoo.core.shipped import weights_dir\n"
            "assert json.loads((weights_dir() / 'catalog.json').read_text()) == json.loads(json.dumps(catalog_file()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-1500:]


def test_every_registered_model_is_a_torch_hub_entry():
    """hubconf.py's entries come from the registry: a model added to zoo (zoonet, say) is a hub entry at once,
    and every one with shipped weights loads them."""
    import subprocess
    import sys

    code = ("import torch, zoo\nfrom pathlib import Path\nrepo = Path(zoo.__file__).resolve().parents[1]\n"
            "import importlib.util as u\nspec = u.spec_from_file_location('hubconf', repo / 'hubconf.py')\n"
            "hub = u.module_from_spec(spec)\nspec.loader.exec_module(hub)\n"
            "names = {n for n in dir(hub) if callable(getattr(hub, n)) and not n.startswith('_')}\n"
            "want = {m.replace('/', '_') for m in zoo.list_models()}\n"
            "assert want <= names, (want - names)\n"
            "m = torch.hub.load(str(repo), 'zoonet', dataset='cifar10', pretrained=True, source='local')\n"
            "assert not m.training")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-1500:]


def test_adding_a_model_as_contributing_md_says_makes_it_a_model_everywhere(monkeypatch):
    """docs/contributing.md's "Add a model", followed with a toy: a builder under @register_model taking its
    shape from the spec, its name in zoo.core.names; it builds, the command line accepts it, classifier() finds
    its head, and it is a torch.hub entry."""
    import importlib.util

    from torch import nn

    from zoo.core import names
    from zoo.models.entries import MODELS
    from zoo.models.transfer import classifier

    @register_model("toy_net")
    def toy_net(spec):
        return nn.Sequential(nn.Flatten(), nn.Linear(spec.channels * spec.size ** 2, 16), nn.ReLU(),
                             nn.Linear(16, spec.num_classes))
    try:
        monkeypatch.setattr(names, "MODELS", (*names.MODELS, "toy_net"))
        model = create_model("toy_net", "cifar10")
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10) and "toy_net" in list_models()
        assert classifier(model) is model[3]
        names.check_model("toy_net")  # the command line's early check, before torch is imported
        spec = importlib.util.spec_from_file_location("hubconf_toy", Path(__file__).resolve().parents[1] / "hubconf.py")
        hub = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(hub)
        assert hub.toy_net(dataset="mnist")(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    finally:
        MODELS.pop("toy_net")


def test_adding_a_dataset_as_contributing_md_says_makes_it_a_dataset_everywhere(monkeypatch):
    """"Add a dataset", followed with a toy spec: registered and named in zoo.core.names, every resolver finds
    it and models build for its shape and classes."""
    from zoo.core import names
    from zoo.data import DatasetSpec, get_dataset_spec, list_datasets, register_dataset
    from zoo.data.specs import _DATASETS

    toy = DatasetSpec("toyset", "", 3, 32, ("a", "b", "c"), (0.5,) * 3, (0.25,) * 3, "cifar", 300)
    register_dataset(toy)
    try:
        monkeypatch.setattr(names, "DATASETS", (*names.DATASETS, "toyset"))
        names.check_dataset("toyset")
        assert get_dataset_spec("toyset") is toy and "toyset" in list_datasets()
        assert create_model("resnet20", "toyset")(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    finally:
        _DATASETS.pop("toyset")
