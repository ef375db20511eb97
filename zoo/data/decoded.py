"""zoo's cache of a decoded folder: every image of a Listing decoded once (zoo.data.images' preprocessing, the
one `zoo predict` uses) on one process per core into a uint8 .npy that later runs memory-map. Keyed by every
file's path, size and mtime, its label and split, and the channels and size asked for; written into a
temporary folder and renamed into place (all or nothing); a damaged entry is removed with a one-line error."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from zoo.core.errors import ZooError, plural
from zoo.core.io import atomic_write_json, cache_dir, read_json
from zoo.core.owned import OWNER, owned_tempdir, read_mark, sweep
from zoo.data.images import ImageSpec, Problem, decode, open_image
from zoo.data.scan import Listing, dataset_name

FORMAT = 2  # of the cache folder; part of its key (2: entries carry ENTRY_MARK)
ENTRY_MARK = ".zoo-cache-entry"  # in an entry zoo built: {"zoo": ENTRY, "entry": its folder's name}
ENTRY = "zoo folder cache"
ENTRY_FILES = ("images.npy", "labels.npy", "meta.json", ENTRY_MARK)  # all that zoo writes into one
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
CHUNK = 256  # images per decoding task, at least


@dataclass
class Opened:
    """A decoded folder: the memory-mapped images, their labels, how many are training images, its record."""
    images: np.ndarray  # uint8 [N, C, H, W], training images first
    labels: np.ndarray  # int64 [N]
    n_train: int
    meta: dict


def _png_colour_type(path: str) -> int | None:
    """A PNG's colour type from its header bytes (0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA)."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return None
    return head[25] if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" else None


def infer_channels(files: list[str]) -> tuple[int, str]:
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
        atomic_write_json(tmp / ENTRY_MARK, {"zoo": ENTRY, "entry": dest.name})  # what _discard reads
        (tmp / OWNER).unlink()  # the folder becomes the cache entry: no longer a temporary one to sweep
        try:
            os.replace(tmp, dest)
        except OSError:
            if not (dest / "meta.json").is_file():
                raise  # not another process that decoded the same files first


def cached(listing: Listing, channels: int, size: int, log) -> Opened:
    """The cache entry for this listing, decoded first when there is none; a damaged one is removed."""
    key = _key(listing, channels, size)
    root = cache_dir("folders")
    sweep(root, ".tmp")  # the temporary folders of decodes that were killed (their process gone)
    dest = root / f"{dataset_name(listing.root)}-{key[:16]}"
    if not (dest / "meta.json").is_file():
        _build(listing, channels, size, dest, log)
    try:
        meta = read_json(dest / "meta.json", "folder cache record")
        images = np.load(dest / "images.npy", mmap_mode="c")  # copy-on-write: writable, never written back
        labels = np.load(dest / "labels.npy")
    except (ZooError, OSError, ValueError) as e:
        raise _discard(dest, listing.root, str(e)) from None
    if len(images) != len(labels) or meta.get("n_train", 0) + meta.get("n_held_out", 0) != len(labels):
        raise _discard(dest, listing.root, "counts differ")
    return Opened(images, labels, meta["n_train"], {**meta, "notes": listing.notes, "cache": str(dest)})


def _discard(dest: Path, root: Path, why: str) -> ZooError:
    """Remove a damaged cache entry, only as far as zoo can prove it wrote it: the files zoo writes into an
    entry, when the entry's mark (read bounded) names it; the folder itself only once nothing else is in it.
    Returns the error to raise."""
    if read_mark(dest / ENTRY_MARK) != {"zoo": ENTRY, "entry": dest.name}:
        return ZooError(f"zoo's cache of {root} at {dest} is damaged ({why}) and holds files zoo cannot prove it "
                        f"wrote; remove that folder and run again")
    with contextlib.suppress(OSError):
        for name in ENTRY_FILES:
            (dest / name).unlink(missing_ok=True)
        dest.rmdir()  # not empty: files zoo did not write stay
    return ZooError(f"zoo's cache of {root} was damaged ({why}) and is removed; run again to decode it afresh")
