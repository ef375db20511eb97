"""Where datasets are read from: a plain record, importable without torch (the CLI builds one for every
command, `zoo predict` included)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DataOptions:
    """Where datasets are read from; every stage that reads data takes one."""
    root: str | os.PathLike | None = None  # None: $ZOO_DATA, else ~/.cache/zoo/data
    download: bool = False  # fetch missing files (needs internet)
    verify: bool | None = None  # torchvision's md5 check of CIFAR files; None: on unless ZOO_VERIFY=0
