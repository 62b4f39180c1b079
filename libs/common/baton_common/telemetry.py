"""Logs, traces and the metrics every service shares.

- Logs: one JSON object per line on stderr (or plain text for humans), with the
  service, the instance and, inside a span, the trace id.
- Traces: OpenTelemetry; a no-op unless an OTLP endpoint is configured. The
  W3C trace context travels in NATS headers (see :mod:`baton_common.bus`).
- Metrics: prometheus-client's default registry, served at ``/metrics``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from opentelemetry import trace
from prometheus_client import Counter, Gauge

__all__ = [
    "HEARTBEAT_ERRORS",
    "NATS_CONNECTED",
    "NATS_RECONNECTS",
    "RUNTIME_INFO",
    "RUNTIME_READY",
    "JsonFormatter",
    "setup_logging",
    "setup_tracing",
]

# The metrics of the service runtime, labelled by service. A service's own
# metrics live in its metrics.py.
RUNTIME_INFO = Gauge("baton_runtime_info", "Always 1: which service, version and instance this is.",
                     ["service", "version", "instance"])
RUNTIME_READY = Gauge("baton_runtime_ready", "1 when the service is ready to serve (/readyz is 200).", ["service"])
NATS_CONNECTED = Gauge("baton_runtime_nats_connected", "1 while connected to NATS.", ["service"])
NATS_RECONNECTS = Counter("baton_runtime_nats_reconnects", "Reconnections to NATS.", ["service"])
HEARTBEAT_ERRORS = Counter("baton_runtime_heartbeat_errors", "Heartbeats that could not be written.", ["service"])

_STD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra=`` fields are kept as keys."""

    def __init__(self, static: dict[str, Any]) -> None:
        super().__init__()
        self.static = static

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **self.static,
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            out["trace_id"] = f"{ctx.trace_id:032x}"
            out["span_id"] = f"{ctx.span_id:016x}"
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(service: str, instance: str, level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter({"service": service, "instance": instance}))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("nats", "hypercorn.error", "hypercorn.access", "httpx", "web3"):  # web3 logs request URLs
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def setup_tracing(service: str, instance: str, version: str, endpoint: str) -> None:
    """Install an OTLP/HTTP exporter when ``endpoint`` is set; otherwise tracing stays a no-op."""
    if not endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": f"baton-{service}", "service.instance.id": instance, "service.version": version}
        )
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
