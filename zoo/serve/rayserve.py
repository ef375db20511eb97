"""`zoo serve` past one machine, on Ray Serve (an existing engine, not a home-made one): the same application
(routes, batcher, limits, counters, page) as a Ray Serve deployment whose replicas Ray places on a cluster's
machines, each replica with its own model, batcher and counters, Ray's proxy spreading requests over them.

    import ray
    from ray import serve
    from zoo.serve.rayserve import deployment

    ray.init(address="auto")                                   # a running cluster (ray start --head, KubeRay)
    serve.run(deployment("resnet20", "cifar10", replicas=4))   # http://HEAD:8000/, the same API and page

Or with Ray's own command line, which passes its key=value arguments to `app`:

    serve run zoo.serve.rayserve:app source=resnet20 dataset=cifar10 replicas=4

Needs the `ray` extra: pip install 'zoo-classifiers[serve,ray]' on every machine of the cluster. Each replica
builds the service from what the driver checked (zoo.serve.worker.spec_of): shipped weights are in the package
on every machine; a run folder or an .onnx file must be at the same path on each of them.
"""

from __future__ import annotations

import argparse
import os

from zoo.core.errors import ZooError
from zoo.core.options import at_least, cli_fields
from zoo.predict.options import DEFAULTS
from zoo.serve.limits import Limits
from zoo.serve.worker import build, spec_of


def _ray_serve():
    try:
        from ray import serve
    except ImportError:
        raise ZooError("zoo's Ray Serve deployment needs Ray Serve: pip install 'zoo-classifiers[serve,ray]'") \
            from None
    return serve


def deployment(source: str, dataset: str | None = None, *, runtime: str = DEFAULTS.runtime,
               threads: int | None = None, limits: Limits | None = None, replicas: int = 1, cpus: float = 1.0,
               name: str = "zoo"):
    """The Ray Serve application of a source as zoo predict takes it: `replicas` copies of zoo serve's
    application, each reserving `cpus` of a machine's cores (and running `threads` intra-op threads, default
    the cores it reserved). Checked here first, as `zoo serve` checks before it starts workers: a wrong source
    or limit is one line in the driver, not a replica that fails on a remote machine."""
    from zoo.serve import service

    serve = _ray_serve()
    if not (isinstance(replicas, int) and replicas >= 1) or not cpus > 0:
        raise ZooError(f"replicas must be a whole number >= 1 and cpus > 0, got {replicas} and {cpus}")
    limits = (limits or Limits()).validate()
    threads = threads or max(1, int(cpus))
    service(source, dataset, runtime=runtime, threads=threads, limits=limits, log=lambda line: None)
    spec = spec_of(source, dataset, runtime, threads, limits, None)

    def build_app():  # runs on each replica (a function: Ray takes a functools.partial for the ASGI app itself);
        return build(spec)  # Ray's ingress then runs the app's lifespan: loaded and warmed before any request

    @serve.deployment(name=name, num_replicas=replicas, ray_actor_options={"num_cpus": cpus},
                      graceful_shutdown_timeout_s=limits.timeout_s)
    @serve.ingress(build_app)
    class ZooServe:
        pass

    return ZooServe.bind()


def app(args: dict):
    """The application builder for Ray's command line and config files (`serve run zoo.serve.rayserve:app
    source=resnet20 dataset=cifar10 replicas=4`, or import_path and args in a Serve config): every argument as
    text, the limits by their field names (max_batch=64, max_wait_ms=2, ...), parsed and checked as `zoo serve`'s
    options are."""
    args, limits = {k: str(v) for k, v in args.items()}, {}
    if "source" not in args:
        raise ZooError("give the model as source= (shipped weights: source=resnet20 dataset=cifar10)")
    mine = {"source": str, "dataset": str, "runtime": str, "replicas": at_least(1), "cpus": float,
            "threads": at_least(1)}
    fields = {f.name: f.metadata["type"] for f in cli_fields(Limits)}
    for key, text in list(args.items()):
        parse = mine.get(key) or fields.get(key)
        if parse is None:
            raise ZooError(f"unknown argument {key!r}; give {', '.join(mine)} or a limit ({', '.join(fields)})")
        try:
            (args if key in mine else limits)[key] = parse(text)
        except (argparse.ArgumentTypeError, ValueError) as e:
            raise ZooError(f"{key}={text}: {e}") from None
    limits = Limits(**limits, token=os.environ.get("ZOO_SERVE_TOKEN") or None)  # as zoo serve takes it
    return deployment(args["source"], args.get("dataset"), runtime=args.get("runtime", DEFAULTS.runtime),
                      threads=args.get("threads"), limits=limits, replicas=args.get("replicas", 1),
                      cpus=args.get("cpus", 1.0))
