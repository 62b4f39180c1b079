"""Composition root of the monitor service: health of the whole stack, seen from inside and outside.

Every ``poll_interval`` seconds it reads the heartbeats, the worker adverts,
the price table and chain data from NATS and samples every GPU through NVML;
every ``probe_interval`` seconds it calls GetOrchestrator on the negotiator's
public address as a gateway does. It exports all of it as metrics on its own
port (7940), logs each service that goes down or comes back, and serves the
operator status page at ``GET /`` (JSON at ``/api/overview``, the heartbeat
summary at ``/status``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from litestar import get
from prometheus_client.parser import text_string_to_metric_families

from baton_common.config import SERVICES, ConfigError
from baton_common.health import ServiceStatus, is_fresh, summarize
from baton_common.pm.signature import address_of
from baton_common.runtime import ServiceBase, ServiceContext, run_service
from baton_common.schemas import Check

from . import http, metrics
from .bus import BusView
from .config import MonitorSettings
from .domain import (
    PROBE_STATES,
    GpuSample,
    Overview,
    ProbeResult,
    evaluate_probe,
    models_warm,
    transitions,
    winners_view,
)
from .grpc import ReserveRefused, probe_orchestrator
from .nvml import Nvml

__all__ = ["Monitor", "main"]

log = logging.getLogger("baton.monitor")

WINNERS_INTERVAL = 15.0
"""Seconds between two reads of baton-pm-winners (it only grows: read it less often)."""
REWARD_INTERVAL = 30.0
"""Seconds between two reads of the chain service's last reward round."""


class Monitor(ServiceBase[MonitorSettings]):
    name = "monitor"

    def __init__(self, settings: MonitorSettings, nvml: Nvml | None = None) -> None:
        super().__init__(settings)
        self.status: dict[str, ServiceStatus] = {}
        self.overview = Overview(probe_target=settings.probe_address)
        self._instance = ""
        self._up: dict[str, bool] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._nvml = nvml or Nvml()
        self._xids: dict[str, int] = {}
        self._first_seen: dict[str, float] = {}
        self._warm = settings.warm_models
        self._key = b""
        self._cert: bytes | None = None
        self._view: BusView | None = None

    def routes(self) -> list:
        @get("/status", sync_to_thread=False)
        def status() -> dict[str, ServiceStatus]:
            """Every expected service, up or down, with its instances' last heartbeats."""
            return self.status

        return [status, *http.routes(lambda: self.overview, lambda: self._instance)]

    def checks(self) -> dict[str, Check]:
        """GPU telemetry and the probe, as details (never required: the monitor reports, it does not serve)."""
        gpus = len(self.overview.gpus)
        out = {"gpus": Check(ok=True, detail=f"{gpus} GPU(s) through NVML" if not self.overview.nvml_error
                             else f"no GPU telemetry: {self.overview.nvml_error}"[:200])}
        probe = self.overview.probe
        if probe is not None:
            out["probe"] = Check(ok=probe.state != "failed",
                                 detail=f"{probe.state}, {probe.duration * 1000:.0f} ms {probe.error}"[:200])
        return out

    async def start(self, ctx: ServiceContext) -> None:
        self._instance = ctx.instance
        unknown = set(self.settings.expected_services) - set(SERVICES)
        if unknown:
            log.warning("expecting services Baton does not have", extra={"services": sorted(unknown)})
        self._key, self._cert = _probe_key(self.settings), _probe_cert(self.settings)
        self._view = await BusView.bind(ctx.bus)
        if await asyncio.to_thread(self._nvml.open):
            log.info("GPU telemetry through NVML", extra={"gpus": len(self._nvml.sample())})
        else:
            self.overview.nvml_error = self._nvml.error
            log.info("no GPU telemetry: NVML is not available", extra={"reason": self._nvml.error})
        metrics.NVML_AVAILABLE.set(0 if self.overview.nvml_error else 1)
        await self.poll()
        await self.poll_winners()
        self._tasks = [
            asyncio.create_task(self._every(self.settings.poll_interval, self.poll, "cannot read the stack")),
            asyncio.create_task(self._every(WINNERS_INTERVAL, self.poll_winners, "cannot read the winners")),
            asyncio.create_task(self._every(REWARD_INTERVAL, self.poll_reward_round, "cannot read the reward round",
                                            first=self.settings.poll_interval)),
        ]
        if self.settings.probe_address:
            self._tasks.append(asyncio.create_task(
                self._every(self.settings.probe_interval, self.run_probe, "probe crashed", first=0.0)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self._nvml.close)

    async def _every(self, interval: float, step: Callable[[], Awaitable[None]], what: str,
                     first: float | None = None) -> None:
        await asyncio.sleep(interval if first is None else first)
        while True:
            try:
                await step()
            except Exception as exc:
                log.warning(what, extra={"error": repr(exc)})
            await asyncio.sleep(interval)

    # ---- the bus and the GPUs ----

    async def poll(self) -> None:
        assert self._view is not None
        now = time.time()
        self.status = summarize(await self._view.heartbeats(), self.settings.expected_services, now)
        for name, up in transitions(self._up, self.status):
            if up:
                log.info("service up", extra={"svc": name})
            else:
                log.error("service down", extra={"svc": name})
            self._up[name] = up
        metrics.SERVICE_INSTANCES.clear()
        for name, st in self.status.items():
            metrics.SERVICE_UP.labels(name).set(1 if st.up else 0)
            for hb in (h for h in st.instances if is_fresh(h, now)):
                metrics.SERVICE_INSTANCES.labels(name, hb.state).inc()
        models = models_warm(await self._view.adverts(), self._warm, now)
        for m in models:
            metrics.MODEL_WARM.labels(m.pipeline, m.model_id).set(1 if m.warm else 0)
        table = await self._view.price_table()
        round_state, senders = await self._view.chain()
        for gauge in (metrics.SENDER_DEPOSIT, metrics.SENDER_RESERVE, metrics.SENDER_RESERVE_CLAIMED):
            gauge.clear()
        for s in senders:
            metrics.SENDER_DEPOSIT.labels(s.sender).set(s.deposit)
            metrics.SENDER_RESERVE.labels(s.sender).set(s.reserve)
            metrics.SENDER_RESERVE_CLAIMED.labels(s.sender).set(s.reserve_claimed)
        gpus = await asyncio.to_thread(self._nvml.sample)
        self._export_gpus(gpus)
        ov = self.overview
        ov.services, ov.models, ov.table, ov.gpus = self.status, models, table, gpus
        ov.round = round_state.round if round_state else None
        ov.updated = now

    def _export_gpus(self, gpus: list[GpuSample]) -> None:
        metrics.GPUS.set(len(gpus))
        for g in gpus:
            labels = (str(g.index), g.name, g.uuid)
            for gauge, value in ((metrics.GPU_TEMPERATURE, g.temperature_c), (metrics.GPU_MEMORY_USED, g.memory_used),
                                 (metrics.GPU_MEMORY_TOTAL, g.memory_total), (metrics.GPU_UTILIZATION, g.utilization),
                                 (metrics.GPU_POWER, g.power_w), (metrics.GPU_ENCODER, g.encoder),
                                 (metrics.GPU_DECODER, g.decoder), (metrics.GPU_LAST_XID, g.last_xid)):
                if value is not None:
                    gauge.labels(*labels).set(value)
            counter = metrics.GPU_XID_ERRORS.labels(*labels)
            counter.inc(max(0, g.xid_errors - self._xids.get(g.uuid, 0)))
            self._xids[g.uuid] = g.xid_errors

    async def poll_winners(self) -> None:
        assert self._view is not None
        view = winners_view(await self._view.winners(), self._first_seen, time.time())
        self._first_seen = view.first_seen
        for state, n in view.count.items():
            metrics.WINNERS.labels(state).set(n)
            metrics.WINNERS_VALUE.labels(state).set(view.value[state])
        metrics.REDEMPTIONS_PENDING.set(view.count["pending"])
        metrics.REDEMPTIONS_OLDEST.set(view.oldest_pending)
        self.overview.winners = view

    async def poll_reward_round(self) -> None:
        """The chain service's ``baton_chain_last_reward_round``, read from its /metrics (its heartbeat names it)."""
        chain = self.status.get("chain")
        urls = [h.http for h in (chain.instances if chain else []) if h.http and is_fresh(h, time.time())]
        async with httpx.AsyncClient(timeout=2.0) as client:
            for url in urls:
                try:
                    text = (await client.get(f"{url.rstrip('/')}/metrics")).text
                except httpx.HTTPError:
                    continue
                for family in text_string_to_metric_families(text):
                    if family.name == "baton_chain_last_reward_round" and family.samples:
                        self.overview.last_reward_round = int(family.samples[0].value)
                        return

    # ---- the outside-in probe ----

    async def run_probe(self) -> ProbeResult:
        s = self.settings
        target = s.probe_address
        started, at = time.perf_counter(), time.time()
        try:
            answer = await probe_orchestrator(target, self._key, cert=self._cert, tls_name=s.probe_tls_name,
                                              timeout=s.probe_timeout)
        except ReserveRefused as exc:
            result = ProbeResult(target=target, state="reserve_refused", at=at,
                                 duration=time.perf_counter() - started, error=str(exc))
        except Exception as exc:  # connection, TLS, deadline, gRPC error: what a gateway would see as offline
            result = ProbeResult(target=target, state="failed", at=at, duration=time.perf_counter() - started,
                                 error=f"{type(exc).__name__}: {exc}"[:300])
        else:
            advertised = answer.advertised()
            gateway = "0x" + address_of(self._key).hex()
            state, models = evaluate_probe(advertised, self._warm, self.overview.table, gateway, onchain=s.onchain)
            result = ProbeResult(target=target, state=state, at=at, duration=answer.duration, models=models,
                                 address=advertised.address, transcoder=advertised.transcoder,
                                 base_price=advertised.base_price)
        self._export_probe(result)
        if (self.overview.probe is None or self.overview.probe.state != result.state) and result.state != "ok":
            log.error("probe %s", result.state, extra={"target": target, "error": result.error})
        self.overview.probe = result
        return result

    def _export_probe(self, r: ProbeResult) -> None:
        metrics.PROBE_SUCCESS.labels(r.target).set(0 if r.state == "failed" else 1)
        metrics.PROBE_DURATION.labels(r.target).set(r.duration)
        for state in PROBE_STATES:
            metrics.PROBE_STATE.labels(r.target, state).set(1 if state == r.state else 0)
        metrics.PROBE_RUNS.labels(r.target, r.state).inc()
        for m in r.models:
            metrics.PROBE_MODEL_WARM.labels(m.pipeline, m.model_id).set(1 if m.warm else 0)
            metrics.PROBE_PRICE_MISMATCH.labels(m.pipeline, m.model_id).set(1 if m.price_mismatch else 0)


def _probe_key(settings: MonitorSettings) -> bytes:
    if not settings.probe_key_file:
        return secrets.token_bytes(32)
    try:
        text = Path(settings.probe_key_file).read_text().strip().removeprefix("0x")
        key = bytes.fromhex(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"BATON_MONITOR_PROBE_KEY_FILE: cannot read a hex private key from "
                          f"{settings.probe_key_file}: {type(exc).__name__}") from None
    if len(key) != 32:
        raise ConfigError(f"BATON_MONITOR_PROBE_KEY_FILE: {settings.probe_key_file} holds {len(key)} bytes, not 32")
    return key


def _probe_cert(settings: MonitorSettings) -> bytes | None:
    if not settings.probe_cert:
        return None
    try:
        pem = Path(settings.probe_cert).read_bytes()
    except OSError as exc:
        raise ConfigError(f"BATON_MONITOR_PROBE_CERT: cannot read {settings.probe_cert}: {exc.strerror}") from None
    if b"BEGIN CERTIFICATE" not in pem:
        raise ConfigError(f"BATON_MONITOR_PROBE_CERT: {settings.probe_cert} is not a PEM certificate")
    return pem


def main() -> None:
    run_service("monitor", MonitorSettings, Monitor)


if __name__ == "__main__":
    main()
