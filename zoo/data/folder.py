"""A user's own images as a dataset, given as a path wherever a dataset name goes:

    photos/cat/1.png, photos/dog/2.jpg, ...          one sub-folder per class (a stratified split is held out)
    photos/train/cat/..., photos/val/cat/...         split folders (val/, valid/, validation/ or test/)
    labels.csv: path,label[,split]                   paths relative to the CSV's folder

    spec = open_folder("photos")        # scans; decodes once into the cache; registers DatasetSpec "photos"
    load_split("photos", "train")       # uint8 [N, C, H, W], a view on the memory-mapped cache

Images go through zoo.data.images (the preprocessing `zoo predict` uses), decoded on a thread pool into a
uint8 .npy that later runs memory-map: a second run starts without decoding, and a dataset larger than RAM
trains from the map. The cache ($XDG_CACHE_HOME/zoo/folders/) is keyed by every file's path, size and
mtime, its label and split, and the channels and size asked for: touch one file and the folder is decoded
again. Unreadable images and CSV rows naming missing files are listed and skipped, with the count said.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import hashlib
import json
import os
import re
import shutil
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.core.errors import REMAKE, ZooError, close_matches, plural, read_advice
from zoo.core.io import atomic_write_json, cache_dir, read_json, sweep_stale
from zoo.core.owned import OWNER, owned_tempdir
from zoo.core.names import looks_like_path, pretrained_dataset
from zoo.data.options import FolderOptions
from zoo.data.images import EXTENSIONS, ImageSpec, Problem, decode, infer_polarity, open_image
from zoo.data.specs import (DatasetMissing, DatasetSpec, FolderSource, find_dataset, list_datasets,
                            register_dataset)

FORMAT = 1  # of the cache folder; part of its key
SPLIT_DIRS = {"train": ("train", "training"), "test": ("val", "valid", "validation", "test")}
NATIVE_SIZE = {1: 28, 3: 32}  # the zoo architectures' sizes: MNIST-like grey, CIFAR-like colour
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
CHUNK = 256  # images per decoding task, at least


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


@dataclass
class Opened:
    """A decoded folder: the memory-mapped images, their labels, how many are training images, its record."""
    images: np.ndarray  # uint8 [N, C, H, W], training images first
    labels: np.ndarray  # int64 [N]
    n_train: int
    meta: dict


# --- scanning -----------------------------------------------------------------------------------------------

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


# --- the cache ----------------------------------------------------------------------------------------------

def _png_colour_type(path: str) -> int | None:
    """A PNG's colour type from its header bytes (0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA)."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return None
    return head[25] if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" else None


def _infer_channels(files: list[str]) -> tuple[int, str]:
    """(3 if any of up to 256 images spread over the list has colour, else 1; why). Colour is in the pixels,
    not the file's mode: grey digits saved as RGB JPEGs are grey. A grey file (PNG: the header's colour type;
    others: Pillow's mode, read from the header) needs no decoding; an RGB one is decoded and is grey when its
    three channels are equal everywhere within GREY_TOLERANCE levels (JPEG's colour conversion)."""
    step = max(1, len(files) // 256)
    stored_rgb = 0
    for f in files[::step]:
        kind = _png_colour_type(f) if f.lower().endswith(".png") else None
        if kind in (0, 4):
            continue
        try:
            with open_image(f) as img:
                if img.mode in GREY_MODES or (img.mode == "P" and _grey_palette(img)):
                    continue
                if not _grey_pixels(img):
                    return 3, f"{Path(f).name} has colour"
                stored_rgb += 1
        except Exception:  # unreadable here: decoding lists it
            continue
    if stored_rgb:
        return 1, f"{stored_rgb} sampled RGB files hold grey pixels (their channels are equal)"
    return 1, "the files are grey"


GREY_TOLERANCE = 2  # levels by which a grey pixel's channels may differ after JPEG decoding


def _grey_pixels(img: Image.Image) -> bool:
    """The image's channels are equal within GREY_TOLERANCE at every pixel (read at most ~128 px a side)."""
    if img.format == "JPEG":
        img.draft("RGB", (128, 128))  # JPEG decodes at a reduced scale for free
    img.thumbnail((128, 128), Image.Resampling.NEAREST)  # a photo's size: its colour shows at 128 px
    a = np.asarray(img.convert("RGB"), np.int16)
    return int(np.abs(a[..., 0] - a[..., 1]).max(initial=0)) <= GREY_TOLERANCE \
        and int(np.abs(a[..., 1] - a[..., 2]).max(initial=0)) <= GREY_TOLERANCE


def _grey_palette(img: Image.Image) -> bool:
    pal = np.asarray(img.getpalette() or [], np.uint8).reshape(-1, 3)
    return bool((pal == pal[:, :1]).all())


def _stats(files: list[str]) -> list[str]:
    """"size mtime_ns" per file."""
    stat = os.stat
    return [f"{st.st_size} {st.st_mtime_ns}" for st in map(stat, files)]


def _key(listing: Listing, channels: int, size: int) -> str:
    """Of the file list: every file's path, size, mtime and label, the split, the channels and size asked for."""
    entries = listing.train + listing.held_out
    stats = _stats([f for f, _ in entries])
    body = "\n".join(f"{f}\0{st}\0{label}" for (f, label), st in zip(entries, stats))
    head = json.dumps([FORMAT, str(listing.root), channels, size, len(listing.train)])
    return hashlib.sha256((head + "\n" + body).encode()).hexdigest()


def _read(path: str) -> bytes:
    """A file's bytes: os.open + fstat + one read (measured 2x faster than open().read() on 28x28 PNGs)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def _fast_png(path: str, channels: int, size: int, png) -> np.ndarray | None:
    """A fast PNG decoder (`png`: bytes -> [H, W(, 3)] RGB, or None) for the common case it reproduces exactly:
    an 8-bit grey PNG for a 1-channel model or an 8-bit RGB one for a 3-channel model, already at the model's
    size, no orientation chunk. None: take Pillow's path."""
    if not path.lower().endswith(".png"):
        return None
    try:
        raw = _read(path)
    except OSError:  # Pillow's path says why
        return None
    if raw[12:16] != b"IHDR" or raw[24:26] != (b"\x08\x00" if channels == 1 else b"\x08\x02"):
        return None  # bit depth 8, colour type grey / RGB (from the header), else Pillow converts it
    if raw.find(b"eXIf", 0, max(raw.find(b"IDAT"), 0)) >= 0 or b"Raw profile type exif" in raw:
        return None  # an orientation Pillow would apply (the eXIf chunk, or ImageMagick's text chunk)
    a = png(raw)
    if a is None or a.dtype != np.uint8 or a.shape != ((size, size) if channels == 1 else (size, size, 3)):
        return None
    return a[None] if channels == 1 else a.transpose(2, 0, 1)


def _opencv():
    try:
        import cv2
    except ImportError:
        return None
    cv2.setNumThreads(1)
    return cv2


def _png_decoder():
    """The fastest installed PNG decoder, as bytes -> RGB array or None: libspng through imagecodecs (the
    `fast` extra; 7-10 us per 28x28 PNG on an AMD EPYC core), else OpenCV (18-24 us), else None (Pillow,
    45-58 us). Both are checked against Pillow on the first image of every chunk."""
    try:
        import imagecodecs

        if imagecodecs.SPNG.available:
            def spng(raw: bytes):
                try:
                    return imagecodecs.spng_decode(raw)
                except Exception:  # damaged data: Pillow's path says why
                    return None
            return spng
    except ImportError:
        pass
    cv2 = _opencv()
    if cv2 is None:
        return None

    def opencv(raw: bytes):
        a = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
        return a[:, :, ::-1] if a is not None and a.ndim == 3 else a  # BGR -> RGB
    return opencv


def decode_chunk(npy: str, start: int, files: list[str], channels: int, size: int, n_train: int):
    """Decode files into rows start.. of the .npy at `npy` (a worker process's task): the fast PNG decoder where
    it applies, checked against Pillow's on the chunk's first image (a difference turns it off), else Pillow.
    Returns the failures [(row, Problem)] and the pixel histogram [channels, 256] of its training rows."""
    out = np.load(npy, mmap_mode="r+")
    spec = ImageSpec(channels, size, (0.0,) * channels, (1.0,) * channels)
    png, bad, hist = _png_decoder(), [], np.zeros((channels, 256), np.int64)
    for j, f in enumerate(files):
        a = _fast_png(f, channels, size, png) if png is not None else None
        if a is not None and j == 0:
            ref = decode(f, spec)
            if isinstance(ref, Problem) or not np.array_equal(ref.transpose(2, 0, 1), a):
                png, a = None, None
        if a is None:
            px = decode(f, spec)
            if isinstance(px, Problem):
                bad.append((start + j, px))
                continue
            a = px.transpose(2, 0, 1)
        out[start + j] = a
    train_rows = out[start:min(start + len(files), n_train)]
    good = np.ones(len(train_rows), bool)
    good[[i - start for i, _ in bad if i < n_train]] = False
    for c in range(channels):
        hist[c] += np.bincount(np.ascontiguousarray(train_rows[good, c]).reshape(-1), minlength=256)
    out.flush()
    return bad, hist


def _die_with_parent() -> None:
    """A decoding worker ends when the process that started it does, even by kill -9 (Linux's
    PR_SET_PDEATHSIG; elsewhere the pool's own shutdown is all there is)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _decode_into(npy: Path, files: list[str], channels: int, size: int, n_train: int):
    """Every file into the .npy, on one process per core (decoding holds the GIL too often for threads to
    scale: measured 2x slower than one thread on 2 cores); small folders in this process. Returns the failures
    and the training split's pixel histogram (for its mean and std)."""
    workers = min(os.cpu_count() or 1, 8)
    step = max(CHUNK, -(-len(files) // (workers * 8)))
    jobs = [(str(npy), i, files[i:i + step], channels, size, n_train) for i in range(0, len(files), step)]
    if workers == 1 or len(files) < 4 * CHUNK:
        results = [decode_chunk(*job) for job in jobs]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork where there is one (as torch's DataLoader): spawn would re-run a user's script that lacks a
        # `if __name__ == "__main__":` guard
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        _png_decoder()  # imported once here, not by every forked worker
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                 initializer=_die_with_parent) as pool:
            results = [t.result() for t in [pool.submit(decode_chunk, *job) for job in jobs]]
    return [b for bad, _ in results for b in bad], sum(h for _, h in results)


def _mean_std(hist: np.ndarray) -> tuple[list[float], list[float]]:
    """Per channel, on [0, 1] pixels, from the pixel histogram (exact integer sums)."""
    v = np.arange(256, dtype=np.float64) / 255
    n = hist.sum(axis=1)
    mean = (hist * v).sum(axis=1) / n
    std = np.sqrt(np.maximum((hist * v * v).sum(axis=1) / n - mean * mean, 0))
    return [round(float(m), 4) for m in mean], [round(max(float(x), 1e-3), 4) for x in std]


def _compact(tmp: Path, images: np.ndarray, labels: np.ndarray, bad: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """The arrays without the images that failed to decode (copied in chunks: bounded memory)."""
    keep = np.array([i for i in range(len(labels)) if i not in bad], dtype=np.int64)
    kept = np.lib.format.open_memmap(tmp / "kept.npy", "w+", np.uint8, (len(keep), *images.shape[1:]))
    _reserve(tmp / "kept.npy")
    for i in range(0, len(keep), 4096):
        kept[i:i + 4096] = images[keep[i:i + 4096]]
    kept.flush()
    del images
    os.replace(tmp / "kept.npy", tmp / "images.npy")
    return np.load(tmp / "images.npy", mmap_mode="r"), labels[keep]


def _reserve(npy: Path) -> None:
    """Give the memory-mapped file its disk blocks now: a write through a map into a sparse file on a full disk
    is a SIGBUS (the process dies with "Bus error"), where this is one line."""
    size = npy.stat().st_size
    fd = os.open(npy, os.O_RDWR)
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            where = npy.parent.parent
            raise ZooError(f"not enough disk space for the decoded images ({size / 1e6:,.0f} MB) in {where}; "
                           f"free some, or point XDG_CACHE_HOME at a larger disk") from None
        # EOPNOTSUPP, EINVAL: a file system without it; the writes will say
    finally:
        os.close(fd)


def _build(listing: Listing, channels: int, size: int, dest: Path, log) -> None:
    """Decode every image into a temporary folder beside `dest`, then rename it into place (all or nothing)."""
    files = [f for f, _ in listing.train + listing.held_out]
    labels = np.array([lab for _, lab in listing.train + listing.held_out], dtype=np.int64)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with owned_tempdir(dest.parent, ".tmp") as tmp:
        t0 = time.perf_counter()
        log(f"zoo: decoding {plural(len(files), 'image')} of {listing.root} into zoo's cache (once; later runs map it)")
        images = np.lib.format.open_memmap(tmp / "images.npy", "w+", np.uint8, (len(files), channels, size, size))
        images.flush()
        del images
        _reserve(tmp / "images.npy")
        try:
            bad, hist = _decode_into(tmp / "images.npy", files, channels, size, len(listing.train))
        except BrokenProcessPool:
            raise ZooError(f"a decoding worker died (out of memory?) while decoding {listing.root}; try again, or "
                           f"free memory") from None
        images = np.load(tmp / "images.npy", mmap_mode="r")
        n_train = len(listing.train) - sum(i < len(listing.train) for i, _ in bad)
        if bad:
            images, labels = _compact(tmp, images, labels, {i for i, _ in bad})
        if n_train < 1 or n_train == len(labels):
            raise ZooError(f"{listing.root}: no {'training' if n_train < 1 else 'held-out'} image could be decoded "
                           f"({len(bad)} unreadable; first: {bad[0][1].path}: {bad[0][1].reason}); save them as "
                           f"PNG or JPEG")
        mean, std = _mean_std(hist)
        np.save(tmp / "labels.npy", labels)
        wall = time.perf_counter() - t0
        atomic_write_json(tmp / "meta.json", {
            "format": FORMAT, "root": str(listing.root), "layout": listing.layout, "classes": list(listing.classes),
            "channels": channels, "size": size, "n_train": int(n_train), "n_held_out": int(len(labels) - n_train),
            "mean": mean, "std": std, "decode_s": round(wall, 2), "images_per_s": round(len(files) / wall),
            "skipped": [{"path": p.path, "reason": p.reason} for p in listing.skipped + [b for _, b in bad]]})
        del images
        (tmp / OWNER).unlink()  # the folder becomes the cache entry: no longer a temporary one to sweep
        try:
            os.replace(tmp, dest)
        except OSError:
            if not (dest / "meta.json").is_file():
                raise  # not another process that decoded the same files first


def _clean_stale(folder: Path) -> None:
    """Temporary folders of decodes that were killed (their process is gone)."""
    sweep_stale(folder, ".tmp")


_OPENED: dict[tuple[str, FolderOptions], Opened] = {}  # per process: (folder, options) -> its opened cache


def _open(path: str | os.PathLike, opts: FolderOptions, log=print) -> Opened:
    """Scan, then map the cache (decoding first if the files changed). Memoized per process by folder and
    options, so the splits, the gate and the calibration of one command scan and stat the folder once."""
    asked = (str(Path(path).expanduser().resolve()), opts.validate())
    if asked not in _OPENED:
        listing = scan(path, opts)
        channels, why = (opts.channels, "--channels") if opts.channels else \
            _infer_channels([f for f, _ in listing.train])
        size = opts.size or NATIVE_SIZE[channels]
        opened = _map(listing, channels, size, log)
        opened.meta["channels_inferred"] = opts.channels is None
        opened.meta["channels_why"] = why
        resolved = dataclasses.replace(opts, channels=channels, size=size)  # what a recorded spec asks for
        _OPENED[asked] = _OPENED[(asked[0], resolved)] = opened
    return _OPENED[asked]


def _map(listing: Listing, channels: int, size: int, log) -> Opened:
    """The cache entry for this listing, decoded first when there is none; a damaged one is removed."""
    key = _key(listing, channels, size)
    root = cache_dir("folders")
    _clean_stale(root)
    dest = root / f"{_name(listing.root)}-{key[:16]}"
    if not (dest / "meta.json").is_file():
        _build(listing, channels, size, dest, log)
    try:
        meta = read_json(dest / "meta.json", "folder cache record")
        images = np.load(dest / "images.npy", mmap_mode="c")  # copy-on-write: writable, never written back
        labels = np.load(dest / "labels.npy")
    except (ZooError, OSError, ValueError) as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise ZooError(f"zoo's cache of {listing.root} was damaged ({e}) and is removed; run again to decode it "
                       f"afresh") from None
    if len(images) != len(labels) or meta.get("n_train", 0) + meta.get("n_held_out", 0) != len(labels):
        shutil.rmtree(dest, ignore_errors=True)
        raise ZooError(f"zoo's cache of {listing.root} was damaged (counts differ) and is removed; run again")
    return Opened(images, labels, meta["n_train"], {**meta, "notes": listing.notes, "cache": str(dest)})


def _name(root: Path) -> str:
    """The dataset's name in run folders and files: the folder's (or CSV's) name, made file-safe; built-in names
    get "-folder" (a folder called mnist is not zoo's MNIST)."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", root.stem if root.suffix.lower() == ".csv" else root.name).strip("-")
    base = base or "folder"
    known = find_dataset(base)
    return f"{base}-folder" if known is not None and known.source is None else base


def open_folder(path: str | os.PathLike, opts: FolderOptions | None = None, log=print) -> DatasetSpec:
    """The folder (or CSV) as a registered DatasetSpec: classes, channels, size, mean/std of the training split."""
    opts = opts or FolderOptions()
    opened = _open(path, opts, log)
    meta = opened.meta
    root = Path(meta["root"])
    channels = meta["channels"]
    spec = DatasetSpec(_name(root), "", channels, meta["size"], tuple(meta["classes"]), tuple(meta["mean"]),
                       tuple(meta["std"]), "mnist" if channels == 1 else "cifar", opened.n_train, (), str(root),
                       FolderSource(str(root), meta["layout"], opts.val_fraction, opts.seed, opts.outside_paths),
                       infer_polarity(opened.images[:opened.n_train]))
    _say(spec, meta, log)
    return register_dataset(spec)


def _say(spec: DatasetSpec, meta: dict, log) -> None:
    how = f" ({meta.get('channels_why', 'from the images')}; --channels to change)" if meta["channels_inferred"] \
        else ""
    channels = "1 channel: grey" if spec.channels == 1 else \
        f"{spec.channels} channels: {'colour' if meta['channels_inferred'] else 'read as RGB'}"
    log(f"zoo: {spec.name}: {meta['n_train']:,} training and {meta['n_held_out']:,} held-out images "
        f"({spec.source.layout}), {spec.num_classes} classes, {channels}{how}, {spec.size}x{spec.size}")
    for note in meta["notes"]:
        log(f"zoo: note: {note}")
    if meta["skipped"]:
        first = meta["skipped"][0]
        log(f"zoo: warning: skipped {len(meta['skipped'])} unreadable image(s) or row(s), listed in "
            f"{meta['cache']}/meta.json; first: {first['path']}: {first['reason']}")


def folder_split(spec: DatasetSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, C, H, W] as a memory-map view, labels) of a folder dataset's split, from its folder as
    recorded (the spec's classes must still be the folder's)."""
    src = spec.source
    if not Path(src.path).exists():
        raise DatasetMissing(f"{spec.name}: its images ({src.path}) are not there any more")
    opened = _open(src.path, FolderOptions(src.val_fraction, src.seed, spec.channels, spec.size, src.outside_paths),
                   log=_quiet)
    if tuple(opened.meta["classes"]) != spec.class_names:
        raise ZooError(f"{src.path} now has classes {', '.join(opened.meta['classes'][:6])}..., not the "
                       f"{spec.num_classes} this model was trained on; restore the folder or train again")
    n = opened.n_train
    return (opened.images[:n], opened.labels[:n]) if split == "train" else (opened.images[n:], opened.labels[n:])


def _quiet(*_) -> None:
    pass


# --- the spec as a record (configs, cards, ONNX metadata) ------------------------------------------------------

def spec_record(spec: DatasetSpec) -> dict | None:
    if not spec.source:
        return None
    record = dataclasses.asdict(spec)
    del record["source"]["kept"]  # where this machine keeps its sample is no part of what the dataset is
    return record


def spec_from_record(record: dict) -> DatasetSpec:
    try:
        fields = {**record, "source": FolderSource(**record["source"])}
        for k in ("class_names", "mean", "std", "augment"):
            fields[k] = tuple(fields[k])
        return DatasetSpec(**fields)
    except (TypeError, KeyError) as e:
        raise ZooError(f"a recorded dataset spec is damaged ({type(e).__name__}: {e}); {REMAKE}") from None


def get_dataset_spec(name: str) -> DatasetSpec:
    """A registered dataset, or a folder of images / CSV file given as a path (opened with default options)."""
    known = find_dataset(name)
    if known is not None:
        return known
    if looks_like_path(name):
        return open_folder(name)
    raise ZooError(f"unknown dataset {name!r}{close_matches(name, list_datasets())} (or give a folder of images, "
                   f"one sub-folder per class, or a CSV of path,label)")


KEPT_SAMPLE = "heldout.npz"  # in a run folder trained on a folder of images: real images to gate its exports on


def kept_sample_of(weights: str | os.PathLike) -> Path | None:
    """The kept sample of the run folder that `weights` names (the folder, its best.safetensors, or one of its
    checkpoints/epoch-N folders), if it has one."""
    p = Path(weights)
    base = p if p.is_dir() else p.parent
    for run in (base, base.parent.parent):
        if (run / KEPT_SAMPLE).is_file() and (run / "config.json").is_file():
            return run / KEPT_SAMPLE
    return None


def _recorded(weights: str | os.PathLike | None) -> DatasetSpec | None:
    """The folder dataset recorded in the card of `weights` (a run trained on a folder), if any."""
    if weights is None:
        return None
    from zoo.core.sources import card_at

    record = getattr(card_at(weights), "dataset_spec", None)
    if not record:
        return None
    spec = spec_from_record(record)
    kept = kept_sample_of(weights)  # what its exports are gated on once the folder is gone
    return dataclasses.replace(spec, source=dataclasses.replace(spec.source, kept=str(kept))) if kept else spec


def same_path(arg: str, path: str) -> bool:
    """Whether the argument `arg` names the recorded (absolute) `path`."""
    try:
        return Path(arg).expanduser().resolve() == Path(path)
    except OSError:
        return False


def spec_of(dataset: str, weights: str | os.PathLike | None = None, opts: FolderOptions | None = None,
            init: str | None = None, log=print) -> DatasetSpec:
    """The spec `dataset` stands for: a registered name; else the folder dataset recorded in the card of
    `weights` when `dataset` names it (by name or path: its spec comes back as trained, mean and std included);
    else a path, opened with `opts` (the size defaults to that of `--init pretrained:DATASET`; the channels are
    the images', and the first convolution adapts to them: zoo.models.transfer)."""
    known = find_dataset(dataset)
    if known is not None and known.source is None:
        return known
    recorded = _recorded(weights)  # a folder's spec as the weights recorded it (and their run folder's sample)
    if recorded is not None and (dataset == recorded.name or same_path(dataset, recorded.source.path)):
        return register_dataset(recorded)
    if known is not None:
        return known
    if not looks_like_path(dataset):
        return get_dataset_spec(dataset)  # unknown: the one message, with close names
    opts = opts or FolderOptions()
    source = pretrained_dataset(init)
    if source is None:
        return open_folder(dataset, opts, log)
    base = get_dataset_spec(source)
    spec = open_folder(dataset, dataclasses.replace(opts, size=opts.size or base.size), log)
    return register_dataset(with_normalization_of(spec, base))


def with_normalization_of(spec: DatasetSpec, base: DatasetSpec) -> DatasetSpec:
    """`spec` normalized as `base`, whose weights it starts from: pretrained weights expect the inputs they were
    trained on (timm's pretrained configs carry their mean/std for the same reason). Across channel counts the
    statistics are averaged or repeated as the first convolution is adapted (zoo.models.transfer)."""
    mean, std = base.mean, base.std
    if len(mean) != spec.channels:
        mean, std = ((sum(mean) / len(mean),) * spec.channels, (sum(std) / len(std),) * spec.channels)
    return dataclasses.replace(spec, mean=tuple(mean), std=tuple(std))


def register_record(record: dict | None) -> None:
    """Make a recorded folder dataset (a run's config, an ONNX file's metadata) known by its name."""
    if record and find_dataset(record.get("name", "")) is None:
        register_dataset(spec_from_record(record))
