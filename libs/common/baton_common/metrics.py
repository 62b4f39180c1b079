"""Metric names every service shares: go-livepeer's exact series, and the request outcomes.

go-livepeer exports through OpenCensus, which writes a counter under its view's
name as is: ``livepeer_winning_tickets_recv``, not ``..._total``. The public
livepeer-monitoring dashboards query those names (``sum(livepeer_tickets_recv)``,
``sum(livepeer_value_redeemed / 1e9)``, ``sum(livepeer_winning_tickets_recv)``).
prometheus-client's ``Counter`` always appends ``_total``, so a go-livepeer
counter is a :class:`LivepeerCounter`, exported untyped under its exact name
(the text format only allows a counter's own name to end in ``_total``).
go-livepeer gauges, including those whose own name ends in ``_total``
(``livepeer_current_sessions_total``), and histograms (``_bucket``, ``_sum``,
``_count``) come out right from prometheus-client's ``Gauge`` and ``Histogram``.
Baton's own counters keep prometheus-client's ``_total``.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Sequence

from prometheus_client.core import REGISTRY, CollectorRegistry, Metric
from prometheus_client.registry import Collector

__all__ = ["REQUEST_LABELS", "REQUESTS_METRIC", "LivepeerCounter", "Outcome", "outcome_for"]

REQUESTS_METRIC = "baton_requests"
"""The negotiator's SLO counter: a prometheus-client Counter, so the series is ``baton_requests_total``."""
REQUEST_LABELS = ("endpoint", "outcome")
"""``endpoint``: the gRPC method or HTTP path as go-livepeer names it (``GetOrchestrator``, ``/segment``, ``/llm``)."""


class Outcome(enum.StrEnum):
    """How one gateway request ended, for ``baton_requests_total{endpoint, outcome}``.

    The SLO's errors are ``capacity`` and ``failed``: what the orchestrator owes.
    ``client_error`` and ``payment_error`` are the gateway's own doing.
    """

    OK = "ok"
    CLIENT_ERROR = "client_error"
    """Bad input, bad signature, bad or expired auth token (400, 403)."""
    CAPACITY = "capacity"
    """Refused for capacity: OrchestratorBusy, OrchestratorCapped, 503 insufficient capacity."""
    PAYMENT_ERROR = "payment_error"
    """The payment was refused: unparseable (402), a ticket error, insufficient balance."""
    FAILED = "failed"
    """Accepted and paid, then failed on our side (500s, a worker error, a deadline passed)."""


def outcome_for(status: int, *, payment: bool = False, capacity: bool = False) -> Outcome:
    """The outcome of a request answered with HTTP ``status``.

    ``payment`` / ``capacity`` say what the negotiator's error class was: go-livepeer
    answers most payment errors with 400, and some capacity refusals with 200
    plus an error body (TranscodeResult.error), so the status alone cannot tell.
    """
    if capacity or status == 503:
        return Outcome.CAPACITY
    if payment or status == 402:
        return Outcome.PAYMENT_ERROR
    if status < 400:
        return Outcome.OK
    return Outcome.CLIENT_ERROR if status < 500 else Outcome.FAILED


class LivepeerCounter(Collector):
    """A counter exported under go-livepeer's exact series name, without ``_total``."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        if not name.startswith("livepeer_"):
            raise ValueError(f"{name!r}: only go-livepeer's livepeer_* series need this; use a Counter")
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str, **by_name: str) -> _Child:
        if by_name:
            values = tuple(by_name[n] for n in self.labelnames)
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        return _Child(self, tuple(str(v) for v in values))

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def _add(self, key: tuple[str, ...], amount: float) -> None:
        if amount < 0:
            raise ValueError(f"{self.name} only goes up; got {amount}")
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def describe(self) -> Iterable[Metric]:
        return [Metric(self.name, self.documentation, "unknown")]

    def collect(self) -> Iterable[Metric]:
        metric = Metric(self.name, self.documentation, "unknown")
        with self._lock:
            items = list(self._values.items())
        for key, value in items:
            metric.add_sample(self.name, dict(zip(self.labelnames, key, strict=True)), value)
        yield metric


class _Child:
    def __init__(self, parent: LivepeerCounter, key: tuple[str, ...]) -> None:
        self._parent, self._key = parent, key

    def inc(self, amount: float = 1.0) -> None:
        self._parent._add(self._key, amount)
