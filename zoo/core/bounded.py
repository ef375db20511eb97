"""Reads that are bounded before they happen: zoo learns how large a file's content is, from its headers or a
streaming pass, before it loads it, and refuses what is over these limits in one line. Regular files only: a
FIFO or a device would block or never end.

    arrays = npz_arrays(path, {"images": KEPT_BYTES, "labels": 1 << 20})   # shapes read from the zip's headers
    check_xml(path)                                                        # size and nesting depth, streamed

The limits, in one place (docs/reliability.md lists them):
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import numpy as np

from zoo.core.errors import REMAKE, ZooError, read_advice

KEPT_BYTES = 16 << 20  # a run folder's kept sample (heldout.npz): 1,000 images of at most 16 MB in all
MAX_XML_BYTES = 32 << 20  # an OpenVINO IR's .xml: its graph and zoo's metadata (a ResNet-18's is ~0.3 MB)
MAX_XML_DEPTH = 64  # elements inside elements: an IR nests six deep; OpenVINO's parser recurses on depth
MAX_BIN_BYTES = 2 << 30  # an IR's weights (a ResNet-18's are 45 MB)


def regular_file(path: str | os.PathLike, what: str) -> Path:
    """`path`, when it is a regular file (not a FIFO, a device or a folder); a one-line ZooError otherwise."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except OSError as e:
        raise ZooError(f"cannot read {what} {p} ({e.strerror}); {read_advice(e)}") from None
    if not stat.S_ISREG(mode):
        raise ZooError(f"{what} {p} is not a regular file (a FIFO, a device or a folder); zoo reads files only")
    return p


def npz_arrays(path: str | os.PathLike, limits: dict[str, int], what: str = "file") -> dict[str, np.ndarray]:
    """The arrays named in `limits` of an .npz file, each refused before it is read when its header says it holds
    more than its limit in bytes (or an object dtype, which would need unpickling)."""
    p = regular_file(path, what)
    try:
        with zipfile.ZipFile(p) as z:
            for name, limit in limits.items():
                with z.open(f"{name}.npy") as f:
                    major, _ = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)  # the header only
                if dtype.hasobject or int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > limit:
                    raise ZooError(f"{what} {p}: {name} holds {shape} {dtype}, over zoo's limit of {limit:,} bytes; "
                                   f"it is not a file zoo wrote: {REMAKE}")
        with np.load(p, allow_pickle=False) as z:
            return {name: z[name] for name in limits}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ZooError(f"cannot read {what} {p} ({str(e).splitlines()[0][:100]}); it is damaged: {REMAKE}") from None


def check_xml(path: str | os.PathLike, what: str = "OpenVINO IR") -> Path:
    """An .xml file no larger than MAX_XML_BYTES and no deeper than MAX_XML_DEPTH, measured by a streaming parse
    (expat is not recursive) before OpenVINO's own parser reads it."""
    import xml.etree.ElementTree as ET

    p = regular_file(path, what)
    if p.stat().st_size > MAX_XML_BYTES:
        raise ZooError(f"{what} {p} is {p.stat().st_size:,} bytes, over zoo's limit of {MAX_XML_BYTES:,}; "
                       f"it is not an IR zoo wrote: export it again")
    depth = 0
    try:
        for event, _ in ET.iterparse(p, events=("start", "end")):
            depth += 1 if event == "start" else -1
            if depth > MAX_XML_DEPTH:
                raise ZooError(f"{what} {p} nests elements more than {MAX_XML_DEPTH} deep; it is not an IR zoo "
                               f"wrote: export it again")
    except ET.ParseError as e:
        raise ZooError(f"{what} {p} is not well-formed XML ({e}); it is damaged: export it again") from None
    return p
