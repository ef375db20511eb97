"""`zoo serve`: a zoo model behind an HTTP endpoint, with dynamic batching, limits, metrics and a page.

    from zoo.serve import Limits, service
    svc = service("resnet20", "cifar10")            # or a run folder, an .onnx / .ort / .xml file
    uvicorn.run(svc.app, host="127.0.0.1", port=8000)

It runs what `zoo predict` runs: the exported file (made once from shipped weights or a run folder), on the
runtime and precision `zoo bench --runtime all` found fastest for many images on this machine (its throughput
choice), else onnxruntime. Needs the `serve` extra: pip install 'zoo-classifiers[serve]'.
"""

from __future__ import annotations

import signal

from zoo.core.errors import ZooError
from zoo.predict.options import DEFAULTS
from zoo.serve.limits import Limits, Listen

MANY = 1 << 20  # the predictor's "images" hint: a server takes the throughput choice


def _needs() -> None:
    missing = []
    for module in ("starlette", "uvicorn", "prometheus_client", "python_multipart"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ZooError(f"zoo serve needs {', '.join(missing)}: pip install 'zoo-classifiers[serve]'")


def service(source: str, dataset: str | None = None, *, runtime: str = DEFAULTS.runtime,
            threads: int | None = DEFAULTS.threads, limits=None, data=None, log=print):
    """The Service (zoo.serve.app) of a source as zoo predict takes it; its `.app` is the ASGI application."""
    _needs()
    from zoo.predict.predictor import Predictor
    from zoo.serve.app import Service

    limits = (limits or Limits()).validate()
    predictor = Predictor(source, dataset, threads=threads, batch=limits.max_batch, runtime=runtime, data=data,
                          images=MANY, log=log)
    meta = predictor.meta
    card = {"weights": meta.get("weights"), "weights_sha256": meta.get("weights_sha256"),
            "top1": meta.get("train_top1"), "export_revision": meta.get("export_revision")}
    return Service(predictor, limits, {"model": f"{meta.get('model')}.{meta.get('dataset')}", "card": card})


def run(svc, host: str, port: int, log=print) -> None:
    """Serve until SIGTERM or Ctrl-C: then stop accepting, finish what is in flight, and return."""
    import uvicorn

    config = uvicorn.Config(svc.app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30,
                            lifespan="on")
    server = uvicorn.Server(config)
    log(f"zoo: serving {svc.describe['model']} ({svc.predictor.runtime_label} {svc.predictor.precision}) on "
        f"http://{host if ':' not in host else f'[{host}]'}:{port}/ (the page), POST /v1/predict, GET /metrics")
    # uvicorn stops on SIGTERM (no new connections, in-flight requests finished) and then raises the signal again
    # with the handler it found: a handler that does nothing makes that a clean exit, status 0
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not server.started:
        raise ZooError(f"could not listen on {host}:{port} (in use, or not this machine's address); choose "
                       f"another --port or --host")


def run_workers(spec: str, host: str, port: int, workers: int, log=print) -> None:
    """Serve with `workers` processes (zoo.serve.worker), each building the service from `spec`
    (zoo.serve.worker.spec_of), until SIGTERM or Ctrl-C; uvicorn's supervisor stops them."""
    import os

    import uvicorn

    from zoo.serve.worker import SPEC

    os.environ[SPEC] = spec
    log(f"zoo: serving on http://{host if ':' not in host else f'[{host}]'}:{port}/ with {workers} processes, "
        f"POST /v1/predict, GET /metrics (each process counts its own)")
    try:
        uvicorn.run("zoo.serve.worker:app", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", timeout_graceful_shutdown=30)
    except SystemExit:  # uvicorn could not bind the address
        raise ZooError(f"could not listen on {host}:{port} (in use, or not this machine's address); choose "
                       f"another --port or --host") from None


__all__ = ["Limits", "Listen", "Service", "run", "run_workers", "service"]


def __getattr__(name: str):
    if name == "Service":
        from zoo.serve import app

        return getattr(app, name)
    raise AttributeError(name)
