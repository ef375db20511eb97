"""Names a package loads on first use (PEP 562): `zoo`, `zoo.data` and `zoo.export` import their heavy modules
(torch, onnx) only when one of their names is asked for."""

from __future__ import annotations

import importlib


def lazy_names(namespace: dict, where: dict[str, str]):
    """(__getattr__, __dir__) for a package whose globals are `namespace`: `where` maps a name to its module."""
    def __getattr__(name: str):
        if name in where:
            value = getattr(importlib.import_module(where[name]), name)
            namespace[name] = value  # later lookups skip __getattr__
            return value
        raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted([*namespace, *where])

    return __getattr__, __dir__
