"""Training: recipes (data), the inner loops, the run folder, and the Run that ties them together. Names load
their module on first use (PEP 562), as in zoo.data: TrainRequest's options are read without torch."""

from __future__ import annotations

from zoo.core.lazy import lazy_names

_LAZY = {
    "training_spec": "dataset", "TrainRequest": "options", "RuntimeRequest": "options",
    "RECIPES": "recipes", "TrainConfig": "recipes", "default_recipe": "recipes", "get_recipe": "recipes",
    "lr_at": "recipes", "parse_overrides": "recipes",
    "train": "request", "Run": "run", "read_config": "run", "recipe_from": "run", "Runtime": "runtime",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(globals(), {name: f"zoo.train.{module}" for name, module in _LAZY.items()})
