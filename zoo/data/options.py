"""Where datasets are read from, and how a folder becomes one: plain records, importable without torch, numpy or
Pillow (the CLI builds them for every command, `zoo predict` included)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from zoo.core.errors import ZooError
from zoo.core.options import at_least, fraction, opt


@dataclass(frozen=True)
class DataOptions:
    """Where datasets are read from; every stage that reads data takes one."""
    root: str | os.PathLike | None = opt(None, "dataset root (default: $ZOO_DATA, else ~/.cache/zoo/data)",
                                         flag="--data-dir", metavar="DATA_DIR")
    download: bool = opt(False, "download missing datasets (needs internet)")
    verify: bool | None = opt(None, "skip torchvision's md5 check of CIFAR files (known-good re-encodings); also "
                                    "ZOO_VERIFY=0", flag="--no-verify", action="store_false")
    # verify None: on unless ZOO_VERIFY=0


GROUP = "a dataset given as a path (a folder of class folders, or a CSV of path,label)"


@dataclass(frozen=True)
class FolderOptions:
    """How a folder becomes a dataset (recorded with every run, so a resume or an export sees the same)."""
    val_fraction: float = opt(0.1, "held out per class when the folder has no val/ or test/ (0 < F <= 0.5)",
                              type=fraction, group=GROUP)
    seed: int = 0  # of that split
    channels: int | None = opt(None, "1 (grey) or 3 (RGB) (default: from the images)", type=int, choices=(1, 3),
                               group=GROUP)
    size: int | None = opt(None, "pixels per side (default: 28 for grey, 32 for RGB, or --init's dataset's)",
                           type=at_least(8), group=GROUP)
    outside_paths: bool = opt(False, "a CSV may name images outside its own folder (../ or absolute paths)",
                              flag="--allow-outside-paths", group=GROUP)  # otherwise such rows are skipped, said

    def validate(self) -> FolderOptions:
        if not 0 < self.val_fraction <= 0.5:
            raise ZooError(f"--val-fraction must be in (0, 0.5], got {self.val_fraction}")
        if self.channels not in (None, 1, 3):
            raise ZooError(f"--channels must be 1 (grey) or 3 (RGB), got {self.channels}")
        if self.size is not None and not 8 <= self.size <= 512:
            raise ZooError(f"--size must be 8..512 pixels, got {self.size}")
        return self
