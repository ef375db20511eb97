import os
from pathlib import Path

import pytest
import torch

# Advice naming an option its command does not have fails the test that meets it (zoo.cli._fail), whichever
# error it is: the rule is checked wherever the suite reaches, not only in the tests written for it.
os.environ["ZOO_CHECK_ADVICE"] = "1"

# The real datasets: $ZOO_DATA when it holds them (the folder users point zoo at, in the layout zoo train
# --download leaves), else the packed copy beside the checkout in our workplace, unpacked once per run. The
# project never requires either: the tests that need them skip, saying so.
# The user's $ZOO_DATA is read here once and taken out of the environment: every other test, and every zoo
# command a test runs, sees the data the test gives it (a re-encoded copy there fails the md5 check).
USER_DATA = os.environ.pop("ZOO_DATA", None) or os.environ.get("ZOO_TESTS_REAL_DATA")
if USER_DATA:
    os.environ["ZOO_TESTS_REAL_DATA"] = USER_DATA  # for the xdist workers, started after this import
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
REAL_LAYOUT = ("MNIST", "cifar-10-batches-py", "cifar-100-python")


@pytest.fixture(autouse=True)
def _threads_and_seed():
    torch.manual_seed(0)
    yield
    # A test that trained or benched set glibc to keep freed memory for the next step (zoo.core.memory): hand
    # it back between tests, or each worker keeps the largest working set any of its tests had.
    from zoo.core.memory import release_freed_memory

    release_freed_memory()


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
    """A folder holding the real datasets (see REAL_LAYOUT); skips when there is none."""
    import subprocess
    import sys

    given = USER_DATA
    if given and all((Path(given) / d).is_dir() for d in REAL_LAYOUT):
        return Path(given)
    script = SHARED_DATA / "unpack.sh"
    if not script.is_file():
        pytest.skip(f"real datasets not found: set ZOO_DATA to a folder holding {', '.join(REAL_LAYOUT)} (as zoo "
                    f"train --download leaves them)")
    root = tmp_path_factory.mktemp("real")
    subprocess.run(["bash", str(script), str(root)], check=True, capture_output=True,
                   env={**os.environ, "PYTHON": sys.executable})
    return root


def pytest_collection_modifyitems(config, items):
    """Two opt-in levels: `e2e` (end to end, minutes: CI runs them with ZOO_E2E=1) and `slow` (ZOO_SLOW=1, both)."""
    slow = os.environ.get("ZOO_SLOW") == "1"
    e2e = slow or os.environ.get("ZOO_E2E") == "1"
    for item in items:
        if "slow" in item.keywords and not slow:
            item.add_marker(pytest.mark.skip(reason="slow: set ZOO_SLOW=1"))
        elif "e2e" in item.keywords and not e2e:
            item.add_marker(pytest.mark.skip(reason="end to end: set ZOO_E2E=1 (CI does)"))
