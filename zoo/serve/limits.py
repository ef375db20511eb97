"""What one request may ask of `zoo serve`, and where it listens: plain records, importable without the serve
extra (`zoo serve --help` builds its options from these fields)."""

from __future__ import annotations

from dataclasses import dataclass

from zoo.core.errors import ZooError
from zoo.core.options import at_least, non_negative, opt

WAIT_HELP = ("how long a batch waits for more requests after its first (default 0: a batch takes the requests that "
             "came while the previous one ran)")


@dataclass(frozen=True)
class Limits:
    """What one request may ask, and how long and how many the server holds. The defaults suit a small
    classifier on a CPU: images are a few KB each."""
    max_body_mb: float = opt(8.0, "a request's body", type=non_negative("megabytes", "8"))
    max_images: int = opt(64, "images in one request", type=at_least(1))
    max_batch: int = opt(32, "images run through the model together", type=at_least(1))
    # max_wait_ms 0: one client is not slowed, many are batched: see docs/measurements.md, zoo serve
    max_wait_ms: float = opt(0.0, WAIT_HELP, type=non_negative("milliseconds", "5"))
    max_queued: int = opt(256, "images that may wait for the model; beyond, 503 with Retry-After", flag="--queue",
                          type=at_least(1))
    timeout_s: float = opt(30.0, "a request's wait for its answer; beyond, 504", flag="--timeout",
                           type=non_negative("seconds", "30"))
    token: str | None = None  # when set, every /v1 call needs "Authorization: Bearer TOKEN" (ZOO_SERVE_TOKEN)

    def validate(self) -> Limits:
        for name in ("max_body_mb", "max_images", "max_batch", "max_queued", "timeout_s"):
            if not getattr(self, name) > 0:
                raise ZooError(f"{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        if not self.max_wait_ms >= 0:
            raise ZooError(f"max-wait-ms must be >= 0, got {self.max_wait_ms}")
        return self


@dataclass(frozen=True)
class Listen:
    host: str = opt("127.0.0.1", "address to listen on (default: this machine only)")
    port: int = opt(8000, "port (default 8000)", type=at_least(1))
    workers: int = opt(1, "server processes, each with the model, its batcher and its counters; the system spreads "
                          "connections over them (threads per process: the cores shared out, unless --threads)",
                       type=at_least(1))

    def threads_each(self, threads: int | None) -> int | None:
        """Intra-op threads per process: as asked, else (several workers) the cores shared out among them."""
        import os

        return threads or (max(1, (os.cpu_count() or 1) // self.workers) if self.workers > 1 else None)

    def loopback(self) -> bool:
        import ipaddress

        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"
