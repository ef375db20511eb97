"""`zoo list`'s figures without building a model: parameters, fp32 size and MACs of every registered pair, as
zoo.models.catalog computed them when the package was published (weights/catalog.json), joined with the shipped
weights' cards. Reading them takes milliseconds and no torch; building the 36 models took seconds and ~1 GB.

    rows = listed_rows("resnet*", None, paper=False)   # None: the catalog does not cover this query

tests/test_registry.py keeps the file equal to what the registry builds today.
"""

from __future__ import annotations

import fnmatch
import json
from functools import lru_cache

from zoo.core.shipped import OFFLINE_UNAVAILABLE, get_card, no_weights_reason, weights_dir

CATALOG_FORMAT = 1


@lru_cache(maxsize=1)
def catalog() -> list[dict] | None:
    """The shipped rows in the registry's order, or None when the file is missing or not this format."""
    try:
        data = json.loads((weights_dir() / "catalog.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != CATALOG_FORMAT or not isinstance(data.get("rows"), list):
        return None
    return data["rows"]


def listed_rows(pattern: str | None, dataset: str | None, paper: bool) -> list[dict] | None:
    """`zoo list`'s rows from the shipped catalog, or None when it cannot answer (no file, or a dataset it does
    not hold: a folder's pairs are built)."""
    rows = catalog()
    if rows is None or (dataset and dataset not in {r["dataset"] for r in rows}):
        return None
    keep = [r for r in rows if (not dataset or r["dataset"] == dataset) and (not paper or r["paper"])
            and (pattern is None or fnmatch.fnmatchcase(r["model"], pattern))]
    if paper:
        keep.sort(key=lambda r: r["paper_rank"])
    return [with_card(r) for r in keep]


def with_card(row: dict) -> dict:
    """A catalog row (model, dataset, paper, paper_top1, params, size_mb, macs) with its shipped weights' card."""
    card = get_card(row["model"], row["dataset"])
    return {**{k: v for k, v in row.items() if k != "paper_rank"},
            "pretrained": card is not None, "top1": card.top1 if card else None,
            "weights_note": "" if card else no_weights_reason(row["model"], row["dataset"]),
            "data_offline": row["dataset"] not in OFFLINE_UNAVAILABLE}


def models_table(rows: list[dict]):
    """`zoo list`'s table of rows (listed_rows)."""
    from rich.table import Table

    table = Table(title=f"zoo models ({len(rows)})")
    for col, just in [("model", "left"), ("dataset", "left"), ("paper %", "right"), ("params", "right"),
                      ("MB fp32", "right"), ("MMAC/img", "right"), ("weights top-1 %", "right")]:
        table.add_column(col, justify=just, no_wrap=True)
    for r in rows:
        table.add_row(r["model"], r["dataset"], f"{r['paper_top1']:.1f}" if r["paper"] else "",
                      f"{r['params']:,}", f"{r['size_mb']:.2f}", f"{r['macs'] / 1e6:.2f}",
                      f"{r['top1']:.2f}" if r["top1"] is not None else
                      "[dim]-[/dim]" if r["data_offline"] else "[dim]no data offline[/dim]")
    table.caption = "paper %: the paper's test accuracy; weights: shipped pretrained weights (top-1 by onnxruntime)"
    return table
