"""One exception type for every user-facing failure: the CLI prints its message on one line."""

from __future__ import annotations

import re

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


def os_error_message(e: OSError, out: str = "", again: str = "") -> str:
    """A command's OSError in one line: the system's words, the file, and what to do (`out`: " or choose another
    --out" where the command has one; `again`: how to run it again, e.g. " with --resume"). Not a full disk:
    the advice says what happened, not "free space"."""
    import errno

    where = f" ({e.filename})" if e.filename else ""
    todo = {errno.ENOENT: "it was removed while zoo worked (by another process?)",
            errno.EACCES: "zoo may not write there", errno.EROFS: "that file system is read-only"}.get(e.errno)
    if todo:
        other = out.replace(" or ", "", 1) if out and e.errno != errno.ENOENT else ""
        step = f"{other}, then run the command again" if other else "run the command again"
        return f"{e.strerror}{where}: {todo}; nothing half-written is left: {step}{again}"
    return f"{e.strerror or e}{where}; nothing half-written is left: free space{out}, then run the command again{again}"


def wrong_advice(message: str, flags: dict[str, set[str]], command: str) -> list[str]:
    """The options a message advises that the command they are advised for does not have: those inside a quoted
    `zoo CMD ...` (or "zoo CMD --flag", up to a `;`, `)` or backquote) are CMD's, the others the running one's."""
    wrong = []
    for cmd, rest in re.findall(r"zoo (" + "|".join(flags) + r")\b([^`);]*)", message):
        wrong += [f"zoo {cmd} {f}" for f in re.findall(r"--[a-z][a-z0-9-]*", rest) if f not in flags[cmd]]
    bare = re.sub(r"zoo (" + "|".join(flags) + r")\b[^`);]*", "", message)
    return wrong + [f"zoo {command} {f}" for f in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", bare)
                    if f not in flags[command]]


TRAIN_EXTRA = ("torch", "torchvision", "timm", "onnx", "onnxscript", "matplotlib")  # pyproject.toml's `train`


def missing_extra(e: ModuleNotFoundError, command: str) -> str | None:
    """The one line for a module of the `train` extra missing from a light install; None for any other module."""
    name = (e.name or "").split(".")[0]
    if name not in TRAIN_EXTRA:
        return None
    return (f"zoo {command} needs {name}, which the light install leaves out: pip install 'zoo-classifiers[train]' "
            f"(zoo predict and zoo serve on exported files need none of it)")
