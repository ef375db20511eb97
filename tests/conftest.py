import os
from pathlib import Path

import pytest
import torch

# Advice naming an option its command does not have fails the test that meets it (zoo.cli._fail), whichever
# error it is: the rule is checked wherever the suite reaches, not only in the tests written for it.
os.environ["ZOO_CHECK_ADVICE"] = "1"

# Real datasets live beside the checkout in our workplace; the project never requires them.
SHARED_DATA = Path(os.environ.get("ZOO_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "datasets"))


@pytest.fixture(autouse=True)
def _threads_and_seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _own_deploy_cache(tmp_path, monkeypatch):
    """zoo bench remembers its recommendation per machine: a test's never reaches the user's cache, nor the
    next test's zoo predict --runtime auto."""
    import zoo.core.deploy as deploy

    monkeypatch.setattr(deploy, "cache_file", lambda: tmp_path / "deploy-cache" / "deploy.json")


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory):
    """All four datasets in their real on-disk formats, small."""
    from zoo.data.fake import write_fake_dataset

    root = tmp_path_factory.mktemp("data")
    for name in ("mnist", "kmnist", "cifar10", "cifar100"):
        write_fake_dataset(name, root, n_train=200, n_test=1000)  # the gate needs 1,000 real test images
    return root


@pytest.fixture(scope="session")
def real_root(tmp_path_factory):
    """The real datasets unpacked into a temp folder; skips when ../shared/datasets is absent."""
    import subprocess
    import sys

    script = SHARED_DATA / "unpack.sh"
    if not script.is_file():
        pytest.skip("real datasets not found: set ZOO_REAL_DATA to a folder holding unpack.sh and the data files")
    target = os.environ.get("ZOO_REAL_UNPACKED")  # reuse an unpacked copy when given
    if target and (Path(target) / "MNIST").is_dir():
        return Path(target)
    root = tmp_path_factory.mktemp("real")
    subprocess.run(["bash", str(script), str(root)], check=True, capture_output=True,
                   env={**os.environ, "PYTHON": sys.executable})
    return root


def pytest_collection_modifyitems(config, items):
    if os.environ.get("ZOO_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set ZOO_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
