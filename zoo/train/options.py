"""What `zoo train` and `zoo.train.train` take, with one set of defaults, importable without torch (`zoo --help`
builds its options from these fields): the TrainRequest, and the RuntimeRequest inside it. zoo.train.request
resolves a request (the pair, the start, the dataset as training reads it, the recipe) and runs it.

    req = TrainRequest("resnet20", "photos/", init="pretrained:cifar10", epochs=2)
    summary = zoo.train.request.run(req)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from zoo.core.errors import ZooError
from zoo.core.options import at_least, non_negative, opt
from zoo.data.options import DataOptions, FolderOptions

RECIPE_HELP = ("paper, fast, finetune (small datasets from --init weights), record (fast, longer, EMA) or speedrun "
               "(zoonet's) (default: paper for the study's datasets; for a folder, finetune with --init, else fast; "
               "with --resume or --config, the recorded one)")
INIT_HELP = ("fine-tune from trained weights instead of random ones: pretrained (shipped, this pair), "
             "pretrained:DATASET (this model's shipped weights for another dataset; the classifier's rows follow the "
             "class names, see --head), auto (for a folder: the shipped weights of MODEL whose linear probe on your "
             "images is best), or a run folder / .safetensors file")


GROUP = "execution (auto: measured per model on this machine, remembered; see zoo list --fastpath)"


@dataclass(frozen=True)
class RuntimeRequest:
    """What the caller asks for; "auto" is measured per model on this machine and remembered (fastpath)."""
    device: str = opt("cpu", "cpu or cuda", group=GROUP)
    precision: str = opt("auto", "auto, fp32 or bf16", group=GROUP)
    compile: str = opt("auto", "torch.compile: auto, on or off", group=GROUP)
    channels_last: bool | None = None  # None: the fast path's choice (always on for CUDA)
    reprobe: bool = opt(False, "measure the fast path again instead of using the remembered decision", group=GROUP)

    def validate(self) -> RuntimeRequest:
        if self.device not in ("cpu", "cuda"):
            raise ZooError(f"unknown device {self.device!r}; choose cpu or cuda")
        if self.device == "cuda" and not _cuda():
            raise ZooError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ZooError(f"unknown precision {self.precision!r}; choose auto, fp32 or bf16")
        if str(self.compile) not in ("auto", "on", "off"):
            raise ZooError(f"unknown compile setting {self.compile!r}; choose auto, on or off")
        return self


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@dataclass(frozen=True)
class TrainRequest:
    model: str | None = None
    dataset: str | object | None = None  # a built-in name, a folder or CSV path, or a DatasetSpec
    recipe: str | object | None = opt(None, RECIPE_HELP)  # a name, or a TrainConfig
    config: str | os.PathLike | None = opt(None, "replay a run: its config.json (or a TOML file of that shape); "
                                                 "flags override it", metavar="FILE")
    sets: list[str] | None = opt(None, "override any recipe field, e.g. --set lr=0.1 --set augment=crop,flip "
                                       "(repeatable)", flag="--set", action="append", metavar="FIELD=VALUE")
    epochs: int | None = opt(None, "override the recipe's epochs (>= 1)", type=at_least(1))
    batch_size: int | None = opt(None, "override the recipe's batch size (global, all processes; >= 1)",
                                 type=at_least(1))
    lr: float | None = opt(None, "override the recipe's peak learning rate", type=float)
    seed: int | None = opt(None, "override the recipe's seed (the recipes' default: 0)", type=int)
    out: str | os.PathLike | None = opt(None, "run folder (default runs/MODEL.DATASET.RECIPE; with --matrix, the "
                                              "parent)")
    resume: bool = opt(False, "continue the run in --out from its last checkpoint (model, dataset, recipe from its "
                              "config)")
    init: str | None = opt(None, INIT_HELP, metavar="WEIGHTS")
    head: str = opt("map", "with --init: the classifier's rows by class name (map: classes without a match start "
                           "fresh), in order (keep), or all fresh", choices=("map", "keep", "fresh"))
    freeze_backbone: bool = opt(False, "with --init: train the classifier alone (linear probing); the rest keeps "
                                       "its weights")
    tensorboard: bool = opt(False, "also write the metrics as TensorBoard scalars in OUT/tensorboard (pip install "
                                   "'zoo-classifiers[tensorboard]')")
    save_every: float = opt(10.0, "also checkpoint mid-epoch every MIN minutes (default 10; 0 = only at epoch ends)",
                            type=non_negative("minutes", "10, 0.5; 0 turns it off"), metavar="MIN")
    overrides: dict = field(default_factory=dict)  # any recipe field, from Python (the command line's --set)
    runtime: RuntimeRequest = field(default_factory=RuntimeRequest)
    folder: FolderOptions = field(default_factory=FolderOptions)
    data: DataOptions = field(default_factory=DataOptions)

    def changes(self) -> dict:
        """The recipe fields this request sets over its recipe (None: the recipe's own)."""
        from zoo.train.recipes import parse_overrides

        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "seed": self.seed,
                "freeze_backbone": self.freeze_backbone or None, **parse_overrides(self.sets or []),
                **self.overrides}
