"""Training: recipes (data), the inner loops, the run folder, and the Run that ties them together."""

from zoo.train.dataset import training_spec
from zoo.train.recipes import RECIPES, TrainConfig, default_recipe, get_recipe, lr_at, parse_overrides
from zoo.train.run import Run, read_config, recipe_from, train
from zoo.train.runtime import Runtime, RuntimeRequest

__all__ = ["RECIPES", "Run", "Runtime", "RuntimeRequest", "TrainConfig", "default_recipe", "get_recipe", "lr_at",
           "parse_overrides",
           "read_config", "recipe_from", "train", "training_spec"]
