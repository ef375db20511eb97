"""What zoo may delete: only what it can prove it wrote.

A temporary folder zoo writes in (an export, a report render, a decode, a publish) holds a marker, `.zoo-owner`,
on which its writer holds an exclusive lock for as long as it lives. The lock is flock(2): the OS drops it when
the process ends, kill -9 included; it is the same lock for a zoo in another PID namespace (a container), and
over NFS the client turns it into a lock the server arbitrates between hosts. A sweep removes a folder of the
expected prefix only when the marker is there, reads as zoo's, and its lock can be taken: its writer is provably
gone. A folder without the marker, whatever its name, is someone else's and is never touched.

    with owned_tempdir(out, ".export") as tmp:   # out/.export-XXXX/ with its marker, removed on the way out
        ...
    sweep(out, ".export")                        # the folders killed exports left, and only those

A set of files zoo writes into a folder it shares with its user (a bench report) is listed in a manifest,
`.zoo-files.json`, with each file's sha256: zoo moves or replaces a file there only when the manifest names it
and its bytes still match. A file the user put there, or edited since, is theirs.

    write_manifest(out, names)                   # after the set is in place
    owned_files(out)                             # the files zoo wrote there that are still as it wrote them
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

from zoo.core.io import atomic_write_json, cache_dir
from zoo.core.shipped import sha256_file

OWNER = ".zoo-owner"
MANIFEST = ".zoo-files.json"
MARK = "zoo temporary folder"
MAX_MARKER_BYTES = 4096  # a marker is a line of JSON; anything longer is not one zoo wrote
MAX_MANIFEST_BYTES = 1 << 20


@contextlib.contextmanager
def owned_tempdir(parent: str | os.PathLike, prefix: str):
    """A new folder parent/PREFIX-XXXXXXXX holding a locked marker; removed, with what is left in it, on exit.
    Stale ones (their writer gone) are swept first."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    sweep(parent, prefix)
    path = Path(tempfile.mkdtemp(dir=parent, prefix=f"{prefix}-"))
    marker = open(path / OWNER, "w")
    try:
        fcntl.flock(marker, fcntl.LOCK_EX)
        marker.write(json.dumps({"zoo": MARK, "host": socket.gethostname(), "pid": os.getpid(),
                                 "token": uuid.uuid4().hex}) + "\n")
        marker.flush()
        yield path
    finally:
        marker.close()  # the lock goes with the descriptor
        shutil.rmtree(path, ignore_errors=True)


def read_mark(path: Path) -> dict | None:
    """A mark zoo writes (a line of JSON naming what zoo made), read bounded: None for what is not a regular file
    of at most MAX_MARKER_BYTES holding a JSON object (a FIFO or a huge file is not one)."""
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_MARKER_BYTES:
            return None
        mark = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return mark if isinstance(mark, dict) else None


def _marked(marker: Path) -> bool:
    """The marker is a regular file zoo wrote."""
    return (read_mark(marker) or {}).get("zoo") == MARK


def owner_gone(folder: Path) -> bool:
    """The folder carries zoo's marker and nobody holds its lock."""
    marker = folder / OWNER
    if not _marked(marker):
        return False
    try:
        fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:  # held: its writer is alive (here, in another namespace, or on another host)
        return False
    finally:
        os.close(fd)  # releases the lock if it was taken


def sweep(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """Remove parent's PREFIX-* folders whose writer is provably gone (see the module docstring); returns them."""
    parent, gone = Path(parent), []
    for d in parent.glob(f"{prefix}-*") if parent.is_dir() else ():
        if d.is_dir() and not d.is_symlink() and owner_gone(d):
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d)
    return gone


def _sha256(path: Path) -> str | None:
    """The file's sha256 (zoo.core.shipped.sha256_file), None for what is not a regular file or cannot be read."""
    try:
        return sha256_file(path) if path.is_file() and not path.is_symlink() else None
    except OSError:
        return None


def write_manifest(folder: str | os.PathLike, names: list[str], what: str = "files") -> None:
    """List `names` (files now in `folder`, as zoo wrote them) in the folder's manifest, replacing it."""
    folder = Path(folder)
    atomic_write_json(folder / MANIFEST, {"zoo": what, "files": {n: _sha256(folder / n) for n in sorted(names)}})


def owned_files(folder: str | os.PathLike) -> list[Path]:
    """The files the folder's manifest names whose bytes are still the ones zoo wrote."""
    folder, listed = Path(folder), {}
    manifest = folder / MANIFEST
    try:
        if manifest.is_file() and not manifest.is_symlink() and manifest.stat().st_size <= MAX_MANIFEST_BYTES:
            listed = json.loads(manifest.read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        listed = {}
    if not isinstance(listed, dict):
        return []
    return [folder / n for n, sha in sorted(listed.items())
            if isinstance(n, str) and "/" not in n and n not in ("", ".", "..") and sha and _sha256(folder / n) == sha]


def scratch_dir(kind: str):
    """A temporary folder in zoo's cache (cache_dir("tmp")/.KIND-...), removed when done; those that killed
    processes left behind are swept first, so that a kill -9 never leaves files that nothing removes."""
    return owned_tempdir(cache_dir("tmp"), f".{kind}")
