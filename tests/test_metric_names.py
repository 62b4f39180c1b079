"""Every service's metrics load side by side: no series is exported by two services under one name."""

from __future__ import annotations

import importlib
import pkgutil

from prometheus_client import REGISTRY

SERVICES = ("negotiator", "pricing", "chain", "inference", "transcode", "monitor")


def test_service_metric_modules_load_together_without_a_duplicate_series() -> None:
    loaded = []
    for service in SERVICES:
        package = importlib.import_module(f"baton_{service}")
        if any(m.name == "metrics" for m in pkgutil.iter_modules(package.__path__)):
            loaded.append(importlib.import_module(f"baton_{service}.metrics"))
    assert len(loaded) >= 4
    names = [metric.name for metric in REGISTRY.collect()]
    assert len(names) == len(set(names))
