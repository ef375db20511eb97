"""Where datasets are read from: a plain record, importable without torch (the CLI builds one for every
command, `zoo predict` included)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from zoo.core.options import opt


@dataclass(frozen=True)
class DataOptions:
    """Where datasets are read from; every stage that reads data takes one."""
    root: str | os.PathLike | None = opt(None, "dataset root (default: $ZOO_DATA, else ~/.cache/zoo/data)",
                                         flag="--data-dir", metavar="DATA_DIR")
    download: bool = opt(False, "download missing datasets (needs internet)")
    verify: bool | None = opt(None, "skip torchvision's md5 check of CIFAR files (known-good re-encodings); also "
                                    "ZOO_VERIFY=0", flag="--no-verify", action="store_false")
    # verify None: on unless ZOO_VERIFY=0
