"""A user's folder of images, or a CSV of path,label, as a Listing: its files in training-then-held-out order,
their labels and split, and what was skipped and why. Regular files only, read by directory entry (no stat per
file); nothing is decoded here (zoo.data.decoded does that)."""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.core.errors import ZooError, plural, read_advice
from zoo.data.images import EXTENSIONS, Problem
from zoo.data.options import FolderOptions
from zoo.data.specs import find_dataset

SPLIT_DIRS = {"train": ("train", "training"), "test": ("val", "valid", "validation", "test")}


@dataclass
class Listing:
    """What a scan found: files in training-then-held-out order, their labels, what was skipped."""
    root: Path
    layout: str
    classes: tuple[str, ...]
    train: list[tuple[str, int]]  # (file, label)
    held_out: list[tuple[str, int]]
    skipped: list[Problem] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)



def _visible(p: Path) -> bool:
    return not p.name.startswith(".") and p.name != "__MACOSX"


def _images_in(folder: Path) -> list[str]:
    """Image files under `folder` (recursive, hidden entries skipped), sorted, each folder before its
    sub-folders; strings while walking: a Path per file costs more than the walk itself on a folder of 60,000
    small images. Regular files only (a FIFO named x.png would block its reader), told by the directory
    entry's type, without a stat per file."""
    found, exts, seen, stack = [], {e[1:] for e in EXTENSIONS}, set(), [str(folder)]
    while stack:
        root = stack.pop()
        real = os.path.realpath(root)  # a symlinked folder is read once, and a link up the tree ends here
        if real in seen:
            continue
        seen.add(real)
        try:
            with os.scandir(root) as it:
                entries = sorted((e for e in it if e.name[0] != "."), key=lambda e: e.name)
        except OSError:  # unreadable, or gone: as os.walk, skipped
            continue
        found += [e.path for e in entries if e.name.rpartition(".")[2].lower() in exts and _is_file(e)]
        stack += reversed([e.path for e in entries if e.name != "__MACOSX" and _is_dir(e)])
    return found


def _is_file(e: os.DirEntry) -> bool:
    try:
        return e.is_file()  # follows a symlink (one stat for links only)
    except OSError:
        return False


def _is_dir(e: os.DirEntry) -> bool:
    try:
        return e.is_dir()
    except OSError:
        return False


ZOO_OUTPUTS = ("last.json", "summary.json", "report.json")  # a run folder's, a bench report's files


def _zoo_output(d: Path) -> bool:
    """A folder zoo wrote, or one of such folders (`runs/` when zoo train ran inside the dataset): not a class."""
    try:
        with os.scandir(d) as entries:
            subdirs = [e.path for e in entries if e.is_dir()]
    except OSError:
        return False
    return any(os.path.isfile(os.path.join(x, m)) for x in (str(d), *subdirs[:50]) for m in ZOO_OUTPUTS)


def _class_folders(folder: Path) -> dict[str, list[str]]:
    """{class name: its images} for a folder of class folders; one-line errors for the ways it can be wrong."""
    try:
        dirs = sorted(d for d in folder.iterdir() if d.is_dir() and _visible(d) and not _zoo_output(d))
    except OSError as e:
        raise ZooError(f"cannot read {folder} ({e.strerror}); {read_advice(e)}") from None
    if not dirs:
        loose = any(f.suffix.lower() in EXTENSIONS for f in folder.iterdir() if f.is_file())
        what = "images but no class folders" if loose else "no class folders"
        raise ZooError(f"{folder} holds {what}: put each class's images in a sub-folder named after the class "
                       f"(e.g. {folder}/cat/1.png), or give a CSV of path,label")
    classes = {d.name: _images_in(d) for d in dirs}
    empty = [name for name, files in classes.items() if not files]
    if empty:
        raise ZooError(f"class folder(s) {', '.join(empty[:5])} in {folder} hold no images "
                       f"({', '.join(sorted(EXTENSIONS))}); add images or remove the folder")
    return classes


def _split_dir(folder: Path, split: str) -> Path | None:
    return next((folder / n for n in SPLIT_DIRS[split] if (folder / n).is_dir()), None)


def _stratified(per_class: dict[str, list[str]], classes: tuple[str, ...], fraction: float, seed: int):
    """Hold out round(n * fraction) images of every class (at least 1 of a class with 2 or more), seeded."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for label, name in enumerate(classes):
        files = per_class.get(name, [])
        order = rng.permutation(len(files))
        n_held = min(len(files) - 1, max(1, round(len(files) * fraction))) if len(files) >= 2 else 0
        held += [(files[i], label) for i in np.sort(order[:n_held]).tolist()]
        train += [(files[i], label) for i in np.sort(order[n_held:]).tolist()]
    return train, held


def _check_classes(classes, where: str) -> None:
    if len(classes) < 2:
        raise ZooError(f"{where} has {len(classes)} class{'' if len(classes) == 1 else 'es'} "
                       f"({', '.join(classes) or 'none'}): a classifier needs at least 2")


def _scan_folders(root: Path, opts: FolderOptions) -> Listing:
    train_dir, held_dir = _split_dir(root, "train"), _split_dir(root, "test")
    if train_dir is None:
        per_class = _class_folders(root)
        classes = tuple(per_class)
        _check_classes(classes, str(root))
        return Listing(root, "folders", classes, *_stratified(per_class, classes, opts.val_fraction, opts.seed))
    per_class = _class_folders(train_dir)
    classes = tuple(per_class)
    _check_classes(classes, str(train_dir))
    if held_dir is None:
        return Listing(root, "train split", classes, *_stratified(per_class, classes, opts.val_fraction, opts.seed),
                       notes=[f"no val/ or test/ beside {train_dir.name}/: held out {opts.val_fraction:g} of it"])
    held_classes = _class_folders(held_dir)
    unknown = [c for c in held_classes if c not in per_class]
    if unknown:
        raise ZooError(f"{held_dir} has class(es) {', '.join(unknown[:5])} that {train_dir} lacks; the labels of "
                       f"{held_dir.name}/ and {train_dir.name}/ must be the same folders")
    label = {c: i for i, c in enumerate(classes)}
    notes = [f"{held_dir.name}/ has no images of {', '.join(c for c in classes if c not in held_classes)}"] \
        if set(held_classes) != set(classes) else []
    return Listing(root, "train/val", classes, [(f, label[c]) for c, fs in per_class.items() for f in fs],
                   [(f, label[c]) for c, fs in held_classes.items() for f in fs], notes=notes)


CSV_ADVICE = "save it as UTF-8 text, one path,label row per image"


def _csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [(n, r) for n, r in enumerate(csv.reader(f), 1) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ZooError(f"cannot read {path} as a CSV of path,label ({e}); "
                       f"{read_advice(e) if isinstance(e, OSError) else CSV_ADVICE}") from None
    if rows and rows[0][1][0].strip().lower() in ("path", "file", "filename", "image"):
        rows = rows[1:]  # a header
    if not rows:
        raise ZooError(f"{path} lists no images; write one path,label row per image")
    return rows


def _scan_csv(path: Path, opts: FolderOptions) -> Listing:
    """Rows path,label[,split]; missing files, bad rows, paths outside the CSV's folder (unless
    opts.outside_paths) and a file's second row are skipped and listed."""
    skipped, kept, first, home = [], [], {}, os.path.realpath(path.parent)
    for n, row in _csv_rows(path):
        where = f"{path.name} line {n}"
        cells = [c.strip() for c in row]
        if len(cells) < 2 or not cells[0] or not cells[1]:
            skipped.append(Problem(where, "needs path,label"))
            continue
        split = cells[2].lower() if len(cells) > 2 and cells[2] else ""
        if split and split not in SPLIT_DIRS["train"] + SPLIT_DIRS["test"]:
            skipped.append(Problem(where, f"unknown split {cells[2]!r} (train, val or test)"))
            continue
        file = os.path.join(path.parent, cells[0])
        if not os.path.isfile(file):
            skipped.append(Problem(where, f"{cells[0]}: no such file"))
            continue
        real = os.path.realpath(file)
        if not opts.outside_paths and os.path.commonpath([real, home]) != home:
            skipped.append(Problem(where, f"{cells[0]}: outside the CSV's folder (--allow-outside-paths to use it)"))
            continue
        if real in first:  # one file, one split: a repeated row would put a held-out image in training too
            skipped.append(Problem(where, f"{cells[0]}: listed already on line {first[real]}"))
            continue
        first[real] = n
        kept.append((file, cells[1], "test" if split in SPLIT_DIRS["test"] else "train" if split else ""))
    if not kept:
        raise ZooError(f"none of the {len(skipped)} rows of {path} names an image that exists (paths are relative "
                       f"to the CSV's folder); first: {skipped[0].path}: {skipped[0].reason}; fix the paths")
    split_given = any(s for _, _, s in kept)
    train_labels = sorted({lab for _, lab, s in kept if s != "test"} if split_given else {lab for _, lab, _ in kept})
    _check_classes(train_labels, f"{path} (training rows)")
    unknown = sorted({lab for _, lab, s in kept if s == "test"} - set(train_labels))
    if unknown:
        raise ZooError(f"{path}: held-out rows have label(s) {', '.join(unknown[:5])} that no training row has; "
                       f"add training rows for them, or drop those rows")
    label = {c: i for i, c in enumerate(train_labels)}
    if split_given:
        train = [(f, label[c]) for f, c, s in kept if s != "test"]
        held = [(f, label[c]) for f, c, s in kept if s == "test"]
    else:
        per_class: dict[str, list[str]] = {}
        for f, c, _ in kept:
            per_class.setdefault(c, []).append(f)
        train, held = _stratified(per_class, tuple(train_labels), opts.val_fraction, opts.seed)
    return Listing(path, "csv", tuple(train_labels), train, held, skipped)


def _identity(f: str) -> tuple[int, int] | str:
    """The file itself, whatever names lead to it: (device, inode)."""
    try:
        st = os.stat(f)
        return st.st_dev, st.st_ino
    except OSError:
        return f


def scan(path: str | os.PathLike, opts: FolderOptions) -> Listing:
    p = Path(path).expanduser().resolve()
    if p.is_file() and p.suffix.lower() == ".csv":
        listing = _scan_csv(p, opts)
    elif p.is_dir():
        listing = _scan_folders(p, opts)
    elif p.exists():
        raise ZooError(f"{path} is neither a folder of images nor a .csv file; give a folder with one sub-folder "
                       f"per class, or a CSV of path,label")
    else:
        raise ZooError(f"dataset {path} not found: give a folder of images (one sub-folder per class) or a CSV "
                       f"of path,label")
    held = {_identity(f) for f, _ in listing.held_out}
    shared = [f for f, _ in listing.train if _identity(f) in held]
    if shared:  # a held-out image trained on (a symlink or a hard link to it; a copy is not caught) measures nothing
        listing.train[:] = [(f, c) for f, c in listing.train if _identity(f) not in held]
        listing.skipped.extend(Problem(f, "also held out (the same file): used for measuring only") for f in shared)
    unmeasured = sorted(set(range(len(listing.classes))) - {c for _, c in listing.held_out})
    if unmeasured and listing.held_out and not any("has no images of" in n for n in listing.notes):
        names = [listing.classes[c] for c in unmeasured]
        listing.notes.append(f"{plural(len(names), 'class', 'classes')} ({', '.join(names[:5])}"
                             f"{', ...' if len(names) > 5 else ''}) {'has' if len(names) == 1 else 'have'} no "
                             f"held-out image: accuracy on {'it' if len(names) == 1 else 'them'} is not measured; "
                             f"add images")
    if not listing.held_out:
        raise ZooError(f"{path}: nothing is held out to measure accuracy on (every class has 1 image?); add images, "
                       f"or a val/ folder")
    return listing


def dataset_name(root: Path) -> str:
    """The dataset's name in run folders and files: the folder's (or CSV's) name, made file-safe; built-in names
    get "-folder" (a folder called mnist is not zoo's MNIST)."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", root.stem if root.suffix.lower() == ".csv" else root.name).strip("-")
    base = base or "folder"
    known = find_dataset(base)
    return f"{base}-folder" if known is not None and known.source is None else base
