"""`zoo list`'s rows: every buildable pair with its size, cost and shipped accuracy."""

from __future__ import annotations

from zoo.core.shipped import OFFLINE_UNAVAILABLE, get_card, no_weights_reason
from zoo.data.specs import get_dataset_spec
from zoo.models.registry import PAPER_MATRIX, create_model, get_model_entry, list_pairs
from zoo.models.stats import fp32_size_mb, macs_per_image, num_params


def list_rows(pattern: str | None = None, dataset: str | None = None, paper: bool = False) -> list[dict]:
    if dataset:
        get_dataset_spec(dataset)  # unknown dataset -> ZooError with close names
    pairs = list_pairs(include=pattern, dataset=dataset, paper=paper)
    if pattern and not pairs:
        get_model_entry(pattern)  # a plain unknown name -> error with close matches
    rows = []
    for arch, ds in pairs:
        model = create_model(arch, ds)
        card = get_card(arch, ds)
        rows.append({
            "model": arch, "dataset": ds, "paper": (arch, ds) in PAPER_MATRIX,
            "paper_top1": PAPER_MATRIX.get((arch, ds)),
            "params": num_params(model), "size_mb": round(fp32_size_mb(model), 3),
            "macs": macs_per_image(model, get_dataset_spec(ds).input_shape),
            "pretrained": card is not None, "top1": card.top1 if card else None,
            "weights_note": "" if card else no_weights_reason(arch, ds),
            "data_offline": ds not in OFFLINE_UNAVAILABLE,
        })
    return rows
