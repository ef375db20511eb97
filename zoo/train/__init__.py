"""Training: recipes (data), the inner loops, checkpoints, and the run orchestration."""

from zoo.train.recipes import RECIPES, TrainConfig, get_recipe, lr_at
from zoo.train.runner import train

__all__ = ["RECIPES", "TrainConfig", "get_recipe", "lr_at", "train"]
