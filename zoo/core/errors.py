"""One exception type for every user-facing failure: the CLI prints its message on one line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """A bad input or state the user can fix; the message says what was wrong and what to do."""


# The options of the command running (zoo.cli.main sets them): advice names a flag only where it exists. From
# Python, no flag applies, and the advice names the zoo command that has it.
_FLAGS: frozenset[str] = frozenset()


def set_command_flags(flags: Iterable[str]) -> None:
    global _FLAGS
    _FLAGS = frozenset(flags)


def has_flag(flag: str) -> bool:
    """Whether the command running takes `flag` (advice such as "pass --download" is only given where it does)."""
    return flag in _FLAGS


def close_matches(name: str, choices: Iterable[str], n: int = 4) -> str:
    """'; did you mean a, b?' for the nearest choices, or the full list when nothing is close."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if not close:  # prefix/substring matches catch 'resnet' -> resnet18, resnet20
        close = [c for c in choices if name.lower() in c.lower() or c.lower().startswith(name.lower())][:n]
    if close:
        return f"; did you mean {', '.join(close)}?"
    shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f"; choose from {shown}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 image', '2 images', '1,000 images' (`many`: an irregular plural)."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


# Advice for a file zoo wrote that is damaged, foreign or incomplete: zoo cannot repair it, the user can.
REMAKE = "restore the file zoo wrote, or make it again with the zoo command that wrote it"


def read_advice(e: OSError) -> str:
    """What to do about a file that could not be read, from why (the errno): never "free space" for a read."""
    import errno

    return {errno.ENOENT: "check the path", errno.ENOTDIR: "check the path",
            errno.EACCES: "make it readable (chmod), or copy it to a folder you own",
            errno.EPERM: "make it readable (chmod), or copy it to a folder you own",
            errno.EISDIR: "give a file, not a folder",
            errno.EIO: "the disk could not read it: copy it from elsewhere"}.get(e.errno, "check the file and its disk")
