"""One of `zoo serve --workers N`'s processes: uvicorn starts N of them (`zoo.serve.worker:app`, a factory), each
building the same service from the options its parent checked (ZOO_SERVE_SPEC, JSON), with its own model,
batcher and counters. The parent built the service once first, so an error is one line there and the export is
in zoo's cache before any worker starts."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace

from zoo.data.options import DataOptions
from zoo.serve.limits import Limits

SPEC = "ZOO_SERVE_SPEC"


def spec_of(source: str, dataset: str | None, runtime: str, threads: int | None, limits: Limits,
            data: DataOptions | None) -> str:
    """What a worker needs to build the service, as the environment carries it (a data root path as text)."""
    return json.dumps({"source": source, "dataset": dataset, "runtime": runtime, "threads": threads,
                       "limits": asdict(limits),
                       "data": None if data is None else asdict(replace(data, download=False))}, default=str)


def app():
    """The ASGI application of this worker (uvicorn calls it once per process)."""
    return build(os.environ[SPEC])


def build(spec: str):
    """The ASGI application a spec (spec_of) describes: a worker's, or a Ray Serve replica's
    (zoo.serve.rayserve)."""
    from zoo.serve import service

    spec = json.loads(spec)
    data = DataOptions(**spec["data"]) if spec["data"] else None
    svc = service(spec["source"], spec["dataset"], runtime=spec["runtime"], threads=spec["threads"],
                  limits=Limits(**spec["limits"]), data=data, log=lambda line: None)
    return svc.app
