"""What `zoo predict` prints: predictions as a table, JSON or CSV, file names made safe for a terminal."""

from __future__ import annotations

import json
import sys

from zoo.core.errors import plural


def printable(name: str) -> str:
    """A file name for the terminal: control characters (escape sequences) and undecodable bytes shown as
    escapes, never sent raw."""
    if name.isprintable():
        return name
    return name.encode("utf-8", "backslashreplace").decode("utf-8").encode("unicode_escape").decode("ascii")


def classify(predictor, paths, top_k: int):
    """predictor.predict over `paths`, errors returned as Problems; a progress bar on a terminal for many images."""
    if len(paths) <= PROGRESS_FROM or not sys.stderr.isatty():
        return predictor.predict(paths, top_k, errors="return")
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("classifying", total=len(paths))
        return predictor.predict(paths, top_k, on_batch=lambda n: bar.advance(task, n), errors="return")


PROGRESS_FROM = 200  # images: fewer finish before a bar would help


def print_predictions(found, fmt: str, top_k: int, ran: tuple[str, str]) -> None:
    """`found` (Predictions) on stdout: as JSON (`fmt` "json"), CSV ("csv") or a table; `ran`: (runtime, precision)."""
    runtime, precision = ran
    if fmt == "json":
        print(json.dumps([{"file": r.path, "top": [{"class": c, "probability": p} for c, p in r.top],
                           "inverted": r.inverted, "runtime": runtime, "precision": precision} for r in found],
                         indent=1))
        return
    if fmt == "csv":
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(["file", *[f"{k}{i + 1}" for i in range(top_k) for k in ("class", "probability")],
                    "inverted", "runtime", "precision"])
        for r in found:
            w.writerow([r.path, *[v for c, p in r.top for v in (c, f"{p:.6f}")], "yes" if r.inverted else "no",
                        runtime, precision])
        return
    from rich.markup import escape
    from rich.table import Table

    from zoo.core.ui import console

    t = Table(title=f"zoo predict — {plural(len(found), 'image')} ({runtime} {precision})")
    t.add_column("file", overflow="fold")
    t.add_column("class")
    t.add_column("p", justify="right")
    if top_k > 1:
        t.add_column(f"next {top_k - 1}")
    inverted = any(r.inverted for r in found)
    if inverted:
        t.add_column("inverted")
    for r in found:
        (c, p), rest = r.top[0], r.top[1:]
        others = [", ".join(f"{c2} {p2:.3f}" for c2, p2 in rest)] if top_k > 1 else []
        t.add_row(escape(printable(r.path)), c, f"{p:.3f}", *others,
                  *(["yes" if r.inverted else ""] if inverted else []))
    if inverted:
        t.caption = "inverted: drawn the other way round from the model's training images (light ink on dark " \
                    "for digits); read inverted (--invert no to turn off)"
    console()(t)
