"""Pure logic of the monitor: what the heartbeats, adverts, winners and the probe's answer mean.

No I/O here: the adapters (``bus.py``, ``grpc.py``, ``nvml.py``) hand in plain
values, and what comes out is exported as metrics and shown on the status page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from baton_common.aimodels import AIModel
from baton_common.capabilities import pipeline_by_capability
from baton_common.health import ServiceStatus
from baton_common.pm.winners import WinnerPending, WinnerRecord, WinnerRedeemed, WinnerRefused
from baton_common.schemas.pricing import PriceTable
from baton_common.schemas.workers import ADVERT_MAX_AGE, WorkerAdvert

__all__ = [
    "PROBE_STATES",
    "Advertised",
    "GpuSample",
    "ModelView",
    "Overview",
    "ProbeResult",
    "ProbeState",
    "WinnersView",
    "evaluate_probe",
    "models_warm",
    "transitions",
    "winners_view",
]

ProbeState = Literal["ok", "reserve_refused", "failed"]
PROBE_STATES: tuple[ProbeState, ...] = ("ok", "reserve_refused", "failed")


def transitions(before: Mapping[str, bool], now: Mapping[str, ServiceStatus]) -> list[tuple[str, bool]]:
    """Services whose up/down state differs from ``before`` (a new service counts as a change)."""
    return [(name, st.up) for name, st in sorted(now.items()) if before.get(name) != st.up]


# ---- GPUs ----

@dataclass(frozen=True)
class GpuSample:
    """One GPU as NVML reports it; ``None`` where this GPU does not report that value."""

    index: int
    name: str
    uuid: str
    temperature_c: float | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    utilization: float | None = None
    """0-1."""
    power_w: float | None = None
    encoder: float | None = None
    decoder: float | None = None
    xid_errors: int = 0
    """XID errors seen since the monitor started."""
    last_xid: int = 0


# ---- the probe ----

@dataclass(frozen=True)
class Advertised:
    """What one GetOrchestrator answer told the probe, reduced to what it checks."""

    warm: Mapping[tuple[int, str], bool]
    """(capability, model_id) -> warm, from capabilities.constraints.PerCapability."""
    prices: Mapping[tuple[int, str], Fraction]
    """(capability, model_id) -> wei per unit, from capabilities_prices."""
    base_price: Fraction | None
    """price_info, wei per pixel; None when absent."""
    has_ticket_params: bool
    address: str = ""
    transcoder: str = ""


@dataclass(frozen=True)
class ModelView:
    pipeline: str
    model_id: str
    warm: bool
    """Probe: advertised warm. Bus: some fresh worker advert holds it warm."""
    advertised_price: Fraction | None = None
    expected_price: Fraction | None = None
    """The price table's, as GetOrchestrator should quote it (floored to whole wei); None if unpriced."""

    @property
    def price_mismatch(self) -> bool:
        return (self.expected_price is not None and self.advertised_price is not None
                and self.advertised_price != self.expected_price)


@dataclass(frozen=True)
class ProbeResult:
    target: str
    state: ProbeState
    at: float
    duration: float
    """Seconds from the request to the answer (or the failure)."""
    error: str = ""
    models: tuple[ModelView, ...] = ()
    address: str = ""
    """The orchestrator's ETH address as it advertised it (0x hex), empty offchain."""
    transcoder: str = ""
    base_price: Fraction | None = None


def evaluate_probe(
    advertised: Advertised,
    warm_models: Sequence[AIModel],
    table: PriceTable | None,
    gateway: str,
    *,
    onchain: bool,
) -> tuple[ProbeState, tuple[ModelView, ...]]:
    """The probe's state and, per model the config marks warm, what gateways are told.

    On-chain a GetOrchestrator without ticket params means the probe key's
    deposit or reserve was refused: the node answered, so that is no outage.
    Capability prices are compared floored, as go-livepeer advertises them.
    """
    views = []
    for model in warm_models:
        key = (model.capability, model.model_id)
        expected = None
        if table is not None:
            price = table.capability_price(model.capability, model.model_id, gateway)
            expected = Fraction(math.floor(price)) if price is not None else None
        views.append(ModelView(
            pipeline=model.pipeline, model_id=model.model_id, warm=advertised.warm.get(key, False),
            advertised_price=advertised.prices.get(key), expected_price=expected,
        ))
    state: ProbeState = "reserve_refused" if onchain and not advertised.has_ticket_params else "ok"
    return state, tuple(views)


# ---- what the bus says ----

def models_warm(adverts: Iterable[WorkerAdvert], warm_models: Sequence[AIModel], now: float) -> tuple[ModelView, ...]:
    """Per model the config marks warm: whether some fresh worker advert holds it warm."""
    held = {
        (m.pipeline, m.model_id)
        for a in adverts if now - a.at <= ADVERT_MAX_AGE
        for m in a.models if m.warm
    }
    return tuple(ModelView(pipeline=m.pipeline, model_id=m.model_id, warm=(m.pipeline, m.model_id) in held)
                 for m in warm_models)


@dataclass(frozen=True)
class WinnersView:
    count: Mapping[str, int]
    """By state: pending, redeemed, refused."""
    value: Mapping[str, int]
    """Face value in wei, by state."""
    oldest_pending: float
    """Seconds since the monitor first saw the oldest pending winner; 0 when none is pending."""
    first_seen: dict[str, float] = field(default_factory=dict)
    """Pending ticket key -> when first seen (carried to the next look)."""

    @property
    def earned_wei(self) -> int:
        return self.value.get("redeemed", 0)


def _state(record: WinnerRecord) -> str:
    match record:
        case WinnerPending():
            return "pending"
        case WinnerRedeemed():
            return "redeemed"
        case WinnerRefused():
            return "refused"
    raise TypeError(record)  # pragma: no cover


def winners_view(records: Mapping[str, WinnerRecord], first_seen: Mapping[str, float], now: float) -> WinnersView:
    """Counts and face values by state, and the age of the oldest pending winner.

    A WinnerPending has no time of its own, so its age runs from the first
    time the monitor saw it (``first_seen`` from the previous look).
    """
    count = {"pending": 0, "redeemed": 0, "refused": 0}
    value = dict.fromkeys(count, 0)
    seen: dict[str, float] = {}
    for key, record in records.items():
        state = _state(record)
        count[state] += 1
        value[state] += record.ticket.ticket.face_value
        if state == "pending":
            seen[key] = first_seen.get(key, now)
    oldest = max((now - t for t in seen.values()), default=0.0)
    return WinnersView(count=count, value=value, oldest_pending=oldest, first_seen=seen)


@dataclass
class Overview:
    """Everything the status page and ``/api/overview`` show: the monitor's latest look at the stack."""

    services: dict[str, ServiceStatus] = field(default_factory=dict)
    gpus: list[GpuSample] = field(default_factory=list)
    nvml_error: str = ""
    """Why there is no GPU telemetry (empty when NVML answered)."""
    models: tuple[ModelView, ...] = ()
    """The bus's view: per warm-configured model, held warm by a fresh worker?"""
    probe: ProbeResult | None = None
    """None while the probe is off (no BATON_MONITOR_PROBE_ADDRESS) or has not run yet."""
    probe_target: str = ""
    table: PriceTable | None = None
    winners: WinnersView | None = None
    round: int | None = None
    last_reward_round: int | None = None
    """From the chain service's ``baton_chain_last_reward_round``; None until it exports it."""
    updated: float = 0.0


def pipeline_name(capability: int) -> str:
    p = pipeline_by_capability(capability)
    return p.name if p else f"capability {capability}"
