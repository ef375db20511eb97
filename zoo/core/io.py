"""Files written whole or not at all, JSON read with one-line errors, the per-user cache folder."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path

from zoo.core.errors import REMAKE, ZooError, has_flag, read_advice


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, fsync, then rename: readers see the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make run folders unreadable to others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, default=str) + "\n").encode())


def read_json(path: str | os.PathLike, what: str = "file"):
    """The decoded JSON at `path`; a missing, unreadable or garbled file is a one-line ZooError."""
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise ZooError(f"{what} {p} not found; check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ZooError(f"cannot read {what} {p} ({getattr(e, 'strerror', None) or e}); "
                       f"{read_advice(e) if isinstance(e, OSError) else 'it is not UTF-8 text: ' + REMAKE}") from None
    except json.JSONDecodeError as e:
        raise ZooError(f"{what} {p} is not valid JSON ({e.msg} at line {e.lineno}); it is damaged: "
                       f"{REMAKE}") from None


def read_jsonl(path: str | os.PathLike, damaged: list[str] | None = None) -> list[dict]:
    """The JSON objects of `path`, one per line ([] when it does not exist); damaged lines (a partial last line
    after a kill, a flipped byte) are skipped, and collected into `damaged` when a list is given."""
    p = Path(path)
    if not p.is_file():
        return []
    rows = []
    for line in p.read_bytes().decode("utf-8", "replace").splitlines():
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        elif line.strip() and damaged is not None:
            damaged.append(line)
    return rows


def cache_dir(*parts: str) -> Path:
    """$XDG_CACHE_HOME/zoo/... (default ~/.cache/zoo/...): exports, the fast-path decisions, datasets."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base, "zoo", *parts)


def writable_dir(out: str | os.PathLike) -> Path:
    """`out`, created if needed; a folder that cannot be written is a one-line ZooError."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out):
            pass
    except OSError as e:
        todo = "choose another --out" if has_flag("--out") else "make it writable, or set XDG_CACHE_HOME to another " \
            "folder" if Path(out).is_relative_to(cache_dir()) else "make it writable"
        raise ZooError(f"cannot write to output folder {out} ({e.strerror}); {todo}") from None
    return out


def check_can_create(path: str | os.PathLike, what: str = "--out") -> Path:
    """Fail early (before any expensive step) when `path` could not be created or written, creating nothing."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ZooError(f"cannot write {what} {path}: {probe} is a file, not a folder; choose another {what}")
    if probe.exists() and not os.access(probe, os.W_OK):
        raise ZooError(f"cannot write {what} {path}: {probe} is read-only; choose another {what}")
    return path


LOCK_WAIT_S = 600.0  # how long a command waits for another zoo's lock before it gives up; ZOO_LOCK_WAIT to change
SAY_WAITING_S = 2.0  # a wait longer than this is said, naming who holds the lock


@contextlib.contextmanager
def waiting_lock(path: str | os.PathLike, log=None):
    """Hold an exclusive lock on the file `path` (created if needed), waiting for another process's: two commands
    that would make the same file take turns. Released by the OS even on kill -9. A wait is said within
    SAY_WAITING_S (who holds the lock: the holder writes its host and PID into the file) and ends in a one-line
    error after $ZOO_LOCK_WAIT seconds (default LOCK_WAIT_S): a holder stopped with Ctrl-Z never blocks forever."""
    import socket
    import sys
    import time

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        bound = float(os.environ.get("ZOO_LOCK_WAIT", LOCK_WAIT_S))
    except ValueError:
        bound = LOCK_WAIT_S
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    with open(path, "a+") as f:
        start, said = time.monotonic(), False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - start
                holder = _holder(path)
                if waited >= bound:
                    raise ZooError(f"another zoo ({holder}) has held {path} for {waited:.0f} s; let it finish, or "
                                   f"stop it, then run this again (ZOO_LOCK_WAIT=SECONDS waits longer)") from None
                if waited >= SAY_WAITING_S and not said:
                    say(f"zoo: waiting for another zoo ({holder}) that is making the same file ({path}); up to "
                        f"{bound:.0f} s")
                    said = True
                time.sleep(0.1)
        try:
            f.seek(0), f.truncate()
            f.write(f"{socket.gethostname()} pid {os.getpid()}\n")
            f.flush()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _holder(path: Path) -> str:
    try:
        with open(path) as f:
            return f.read(200).strip() or "unknown"
    except OSError:
        return "unknown"

