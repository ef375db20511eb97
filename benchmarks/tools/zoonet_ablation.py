"""ZooNet's methods, each turned off in turn: top-1 (the recipe's test-time augmentation) and training wall time
of `zoo train zoonet DATASET --recipe speedrun` with one change, on this machine, one run after another.

    python benchmarks/tools/zoonet_ablation.py --data-dir DIR [--dataset cifar10] [--only NAME ...] [--out runs/abl]

Each variant is a run folder under --out (resumable: an interrupted variant continues, a finished one is read
back), so the whole table can be built a variant at a time. Test-time augmentation needs no training: it is
measured on the full recipe's weights. Prints one markdown row per variant.

Reported in docs/models.md, "Ablations" under ZooNet.
"""

import argparse
import functools
import json
from pathlib import Path

VARIANTS = {  # name: (architecture options, recipe fields)
    "full": ({}, {}),
    "no whitening (first layer trained)": ({"whiten": False}, {}),
    "no dirac init": ({"dirac": False}, {}),
    "BatchNorm biases at 1x lr": ({}, {"bias_lr": 1.0}),
    "no label smoothing": ({}, {"label_smoothing": 0.0}),
    "no Lookahead": ({}, {"lookahead": 0}),
    "random flips (not alternating)": ({}, {"augment": ("translate", "flip")}),
    "no translation": ({}, {"augment": ("altflip",)}),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--out", default="runs/zoonet-ablation")
    args = ap.parse_args()

    import zoo.models.registry as registry
    from zoo.data import DataOptions, get_dataset_spec, make_loader
    from zoo.models import create_model, with_tta
    from zoo.models.zoonet import zoonet
    from zoo.train import RuntimeRequest, get_recipe, train
    from zoo.train.loop import evaluate

    data = DataOptions(args.data_dir, verify=False)
    spec = get_dataset_spec(args.dataset)
    print("| change | top-1 % | training wall (min) |\n|---|---|---|")
    for name, (options, fields) in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        registry._MODELS["zoonet"] = registry.ModelEntry("zoonet", functools.partial(zoonet, **options))
        out = Path(args.out) / name.split(" (")[0].replace(" ", "-")
        cfg = get_recipe("speedrun", spec, "zoonet", **fields)
        if not (out / "summary.json").is_file():
            train("zoonet", args.dataset, cfg, RuntimeRequest(precision="auto"), out=out, data=data,
                  resume=(out / "last.json").is_file(), progress=False)
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        print(f"| {name} | {rows[-1]['test_acc']:.2f} | {sum(r['wall_s'] for r in rows) / 60:.1f} |", flush=True)
        if name == "full":
            from zoo.core.sources import from_path
            model = create_model("zoonet", args.dataset)
            model.load_state_dict(from_path(out).state)
            loader = make_loader(args.dataset, "test", 1000, data=data)
            for tta in ("", "flip"):
                _, correct, n = evaluate(with_tta(model, tta), loader)
                print(f"| test-time augmentation {tta or 'none'} (not flip-shift) | {100 * correct / n:.2f} | "
                      f"(same weights) |", flush=True)


if __name__ == "__main__":
    main()
