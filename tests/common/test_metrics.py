"""go-livepeer's series names as dashboards query them, and the request outcomes."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from baton_common.metrics import LivepeerCounter, Outcome, outcome_for


def series(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if not line.startswith("#")]


def test_a_livepeer_counter_keeps_go_livepeers_exact_name() -> None:
    registry = CollectorRegistry()
    tickets = LivepeerCounter("livepeer_winning_tickets_recv", "Winning tickets received", ["node_id", "node_type"],
                              registry=registry)
    tickets.labels("o1", "orch").inc()
    tickets.labels(node_id="o1", node_type="orch").inc(2)
    Gauge("livepeer_current_sessions_total", "Open sessions", registry=registry).set(3)
    assert series(registry) == [
        'livepeer_winning_tickets_recv{node_id="o1",node_type="orch"} 3.0',
        "livepeer_current_sessions_total 3.0",
    ]


def test_prometheus_clients_own_counter_would_break_the_dashboards() -> None:
    """Why LivepeerCounter exists: the stock Counter renames the series."""
    registry = CollectorRegistry()
    Counter("livepeer_winning_tickets_recv", "Winning tickets received", registry=registry).inc()
    assert "livepeer_winning_tickets_recv_total 1.0" in series(registry)
    assert not any(s.startswith("livepeer_winning_tickets_recv ") for s in series(registry))


def test_a_livepeer_counter_only_goes_up_and_only_once_per_name() -> None:
    registry = CollectorRegistry()
    c = LivepeerCounter("livepeer_value_redeemed", "Value redeemed", registry=registry)
    with pytest.raises(ValueError):
        c.inc(-1)
    with pytest.raises(ValueError):
        LivepeerCounter("livepeer_value_redeemed", "again", registry=registry)
    with pytest.raises(ValueError):
        LivepeerCounter("baton_x", "not go-livepeer's", registry=registry)


@pytest.mark.parametrize(
    ("status", "flags", "outcome"),
    [
        (200, {}, Outcome.OK),
        (400, {}, Outcome.CLIENT_ERROR),
        (403, {}, Outcome.CLIENT_ERROR),
        (402, {}, Outcome.PAYMENT_ERROR),
        (400, {"payment": True}, Outcome.PAYMENT_ERROR),
        (503, {}, Outcome.CAPACITY),
        (200, {"capacity": True}, Outcome.CAPACITY),
        (500, {}, Outcome.FAILED),
    ],
)
def test_request_outcomes(status: int, flags: dict[str, bool], outcome: Outcome) -> None:
    assert outcome_for(status, **flags) is outcome
    assert {o.value for o in Outcome} == {"ok", "client_error", "capacity", "payment_error", "failed"}
