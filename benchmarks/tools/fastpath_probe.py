"""What the fast-path probe costs a run: `zoo train`'s own call (zoo.train.fastpath.choose) for a model, batch and
run length, in an empty cache, so it measures as on a machine's first run. Prints the decision, every candidate's
images/s and the probe's seconds.

    python benchmarks/tools/fastpath_probe.py zoonet cifar10 --batch 1024 --images 500000   # the speedrun's
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("dataset")
    ap.add_argument("--batch", type=int, default=1024, help="the run's batch (default: 1024)")
    ap.add_argument("--images", type=int, default=500_000, help="the run's training images, epochs x split")
    args = ap.parse_args()
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp()  # nothing remembered: the first run on a machine

    from zoo.core.memory import keep_freed_memory
    from zoo.train.fastpath import choose

    keep_freed_memory()  # as zoo train runs
    t0 = time.perf_counter()
    best = choose(args.model, args.dataset, "cpu", args.batch, args.images, reprobe=True, log=print)
    print(f"{args.model}.{args.dataset} batch {args.batch}: {best.label} in {time.perf_counter() - t0:.1f} s "
          f"(probe batch {best.batch}); candidates (img/s): {best.candidates}")


if __name__ == "__main__":
    main()
