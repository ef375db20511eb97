"""`zoo list`'s rows: every buildable pair with its size, cost and shipped accuracy. The figures ship precomputed
(zoo.core.catalog reads them without torch); `computed_rows` builds the models to compute them, for the
catalog file at publish time and for the test that keeps it true."""

from __future__ import annotations

from zoo.core.catalog import CATALOG_FORMAT, listed_rows, with_card
from zoo.data.resolve import get_dataset_spec
from zoo.models.registry import PAPER_MATRIX, create_model, get_model_entry, list_pairs
from zoo.models.stats import fp32_size_mb, macs_per_image, num_params


def computed_rows(pairs: list[tuple[str, str]]) -> list[dict]:
    """The catalog's rows of `pairs`, each model built once."""
    rank = {p: i for i, p in enumerate(PAPER_MATRIX)}
    rows = []
    for arch, ds in pairs:
        model = create_model(arch, ds)
        rows.append({"model": arch, "dataset": ds, "paper": (arch, ds) in PAPER_MATRIX,
                     "paper_top1": PAPER_MATRIX.get((arch, ds)), "paper_rank": rank.get((arch, ds)),
                     "params": num_params(model), "size_mb": round(fp32_size_mb(model), 3),
                     "macs": macs_per_image(model, get_dataset_spec(ds).input_shape)})
    return rows


def catalog_file() -> dict:
    """What weights/catalog.json holds: every pair the registry builds."""
    return {"format": CATALOG_FORMAT, "rows": computed_rows(list_pairs())}


def list_rows(pattern: str | None = None, dataset: str | None = None, paper: bool = False) -> list[dict]:
    if dataset:
        get_dataset_spec(dataset)  # unknown dataset -> ZooError with close names
    pairs = list_pairs(include=pattern, dataset=dataset, paper=paper)
    if pattern and not pairs:
        get_model_entry(pattern)  # a plain unknown name -> error with close matches
    shipped = listed_rows(pattern, dataset, paper)
    if shipped is not None and [(r["model"], r["dataset"]) for r in shipped] == pairs:
        return shipped
    return [with_card(r) for r in computed_rows(pairs)]  # a model registered since the catalog was written


def write_catalog(dest=None) -> None:
    """weights/catalog.json (or `dest`), from the registry as it builds today."""
    from zoo.core.io import atomic_write_json
    from zoo.core.shipped import weights_dir

    atomic_write_json(dest or weights_dir() / "catalog.json", catalog_file())
