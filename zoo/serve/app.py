"""The HTTP service: a zoo model behind Starlette, its images batched (zoo.serve.batcher), its limits enforced
before any work, its counters in Prometheus' format, and a page to try it.

    POST /v1/predict   one image as the raw body, or several as multipart/form-data; ?top_k=5
    GET  /v1/model     classes, input, card, runtime       GET /healthz, /readyz, /metrics, /openapi.json, /

Every error is a 4xx/5xx with one line of JSON, {"error": "..."}, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from zoo.data.images import Problem, decode
from zoo.serve.batcher import Batcher, QueueFull
from zoo.serve.limits import Limits

PAGE = Path(__file__).with_name("page.html")
# A request whose images are this small together is decoded on the event loop: handing a CIFAR-sized PNG to a
# thread cost more than decoding it (resnet20 on OpenVINO, 64 clients: 1,710 / 1,621 req/s inline against 1,271 /
# 1,054 through the pool); larger ones go to the thread pool, so a photo never stalls the other requests.
INLINE_BYTES = 64 * 1024


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self):
        r = self.registry
        self.requests = Counter("zoo_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.latency = Histogram("zoo_request_seconds", "Time to answer /v1/predict", registry=r,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.batch = Histogram("zoo_batch_images", "Images per model call", registry=r,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.queue = Gauge("zoo_queue_images", "Images waiting for the model", registry=r)
        self.rejects = Counter("zoo_rejects", "Requests refused, by reason", ["reason"], registry=r)


def _error(status: int, message: str, metrics: Metrics, reason: str, headers: dict | None = None) -> JSONResponse:
    metrics.rejects.labels(reason).inc()
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Service:
    """The model, its batcher, limits and counters; `app` is the Starlette application."""

    def __init__(self, predictor, limits: Limits, describe: dict):
        self.predictor, self.limits, self.describe = predictor, limits.validate(), describe
        self.metrics, self.ready = Metrics(), False
        self.batcher = Batcher(self._run, limits.max_batch, limits.max_wait_ms / 1000, limits.max_queued,
                               on_batch=self.metrics.batch.observe)
        routes = [Route("/v1/predict", self.predict, methods=["POST"]), Route("/v1/model", self.model),
                  Route("/healthz", self.healthz), Route("/readyz", self.readyz), Route("/metrics", self.prometheus),
                  Route("/openapi.json", self.openapi), Route("/", self.page)]
        self.app = Starlette(routes=routes, lifespan=self._lifespan,
                             exception_handlers={HTTPException: self._http_error})

    async def _http_error(self, request: Request, exc: HTTPException) -> Response:
        """Starlette's own refusals (404, 405) as one line of JSON, like every other error."""
        return JSONResponse({"error": f"{exc.detail}: {request.method} {request.url.path}"},
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        return self.predictor.probabilities(pixels)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        self.batcher.start()
        shape = (1, self.predictor.spec.size, self.predictor.spec.size, self.predictor.spec.channels)
        await asyncio.get_running_loop().run_in_executor(None, self._run, np.zeros(shape, np.uint8))  # warm
        self.ready = True
        yield
        self.ready = False
        await self.batcher.stop()

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return self.limits.token is None or (scheme.lower() == "bearer" and token == self.limits.token)

    async def predict(self, request: Request) -> Response:
        t0 = time.perf_counter()
        response = await self._predict(request)
        self.metrics.requests.labels("/v1/predict", str(response.status_code)).inc()
        if response.status_code == 200:
            self.metrics.latency.observe(time.perf_counter() - t0)
        return response

    async def _predict(self, request: Request) -> Response:
        m = self.metrics
        if not self._authorized(request):
            return _error(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)", m, "auth")
        if self.batcher.queued >= self.limits.max_queued:  # refused before its body is read and decoded: past
            # saturation a 503 must cost less than an answer, or the answers dwindle as the refusals grow
            return _error(503, f"busy: {self.batcher.queued} images are queued (at most {self.limits.max_queued}); "
                               f"try again shortly", m, "queue", {"Retry-After": "1"})
        asked = request.query_params.get("top_k", "5")
        if not asked.isdigit() or int(asked) < 1:
            return _error(400, f"top_k must be a whole number >= 1, got {asked!r}", m, "input")
        top_k = min(int(asked), len(self.predictor.classes))
        files = await self._files(request)
        if isinstance(files, Response):
            return files
        return await self._answer(files, top_k)

    async def _files(self, request: Request) -> list[tuple[str, bytes]] | Response:
        """The request's images as (name, bytes), refused past the limits before they are read whole."""
        m, limit = self.metrics, int(self.limits.max_body_mb * 2**20)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _error(413, f"the body is {int(declared):,} bytes, over the limit of {limit:,} bytes", m, "size")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return _error(413, f"the body is over the limit of {limit:,} bytes", m, "size")
        if not body:
            return _error(400, "no image: send one as the body, or several as multipart/form-data", m, "input")
        kind = request.headers.get("content-type", "")
        if not kind.startswith("multipart/form-data"):
            return [("image", bytes(body))]
        return await self._parts(bytes(body), kind)

    async def _parts(self, body: bytes, kind: str) -> list[tuple[str, bytes]] | Response:
        from starlette.datastructures import Headers, UploadFile
        from starlette.formparsers import MultiPartException, MultiPartParser

        async def stream():
            yield body
        try:
            form = await MultiPartParser(Headers({"content-type": kind}), stream(),
                                         max_files=self.limits.max_images, max_fields=16).parse()
        except MultiPartException as e:
            if "Too many files" in e.message:
                return _error(413, f"over the limit of {self.limits.max_images} images a request", self.metrics,
                              "size")
            return _error(400, f"cannot read the multipart body ({e.message})", self.metrics, "input")
        files = [(v.filename or k, await v.read()) for k, v in form.multi_items() if isinstance(v, UploadFile)]
        if not files:
            return _error(400, "the multipart body holds no file", self.metrics, "input")
        return files

    async def _answer(self, files: list[tuple[str, bytes]], top_k: int) -> Response:
        m, p = self.metrics, self.predictor
        if len(files) > self.limits.max_images:
            return _error(413, f"{len(files)} images, over the limit of {self.limits.max_images} a request", m, "size")
        if sum(len(d) for _, d in files) <= INLINE_BYTES:  # on the event loop, beside the model's thread
            decoded = [decode(data, p.spec, name) for name, data in files]
        else:  # on the thread pool: a photo's decode would stall every other request
            loop = asyncio.get_running_loop()
            decoded = await asyncio.gather(*(loop.run_in_executor(None, decode, data, p.spec, name)
                                             for name, data in files))
        bad = [d for d in decoded if isinstance(d, Problem)]
        if bad:
            return _error(400, "; ".join(f"{b.path}: {b.reason}" for b in bad[:3]), m, "input")
        if len(files) > self.limits.max_queued:  # never fits, however long it waits: not a 503
            return _error(413, f"{len(files)} images, more than the queue holds ({self.limits.max_queued}); send "
                               f"fewer at a time", m, "size")
        pixels, inverted = p.oriented(list(decoded))
        m.queue.set(self.batcher.queued + len(pixels))
        try:
            probs = await asyncio.wait_for(self.batcher.submit(pixels), self.limits.timeout_s)
        except QueueFull as e:
            return _error(503, f"busy: {e}; try again shortly", m, "queue", {"Retry-After": "1"})
        except (asyncio.TimeoutError, TimeoutError):
            return _error(504, f"no answer within {self.limits.timeout_s:g} s", m, "timeout")
        except Exception as e:  # the runtime failed on the batch: said, never a traceback
            return _error(500, f"the model failed on this batch ({type(e).__name__}: {str(e)[:120]})", m, "model")
        finally:
            m.queue.set(self.batcher.queued)
        tops = p.top(probs, top_k)
        return JSONResponse({**self._ran(), "predictions": [
            {"file": name, "top": [{"class": c, "probability": round(q, 6)} for c, q in top], "inverted": flip}
            for (name, _), top, flip in zip(files, tops, inverted)]})

    def _ran(self) -> dict:
        return {"model": self.describe["model"], "runtime": self.predictor.runtime_label,
                "precision": self.predictor.precision, "polarity": self.predictor.polarity,
                "card": self.describe.get("card")}

    async def model(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)", self.metrics, "auth")
        spec = self.predictor.spec
        return JSONResponse({**self._ran(), "classes": self.predictor.classes, "limits": {
            "max_body_mb": self.limits.max_body_mb, "max_images": self.limits.max_images},
            "input": {"channels": spec.channels, "size": spec.size, "mean": list(spec.mean), "std": list(spec.std)}})

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        return JSONResponse({"ready": self.ready}, status_code=200 if self.ready else 503)

    async def prometheus(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, request: Request) -> Response:
        from zoo.serve.openapi import schema

        return JSONResponse(schema(self.describe["model"]))

    async def page(self, request: Request) -> Response:
        return HTMLResponse(PAGE.read_text())
