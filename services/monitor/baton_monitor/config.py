"""Settings of the monitor service (environment `BATON_MONITOR_<NAME>`)."""

from __future__ import annotations

import re
from typing import Annotated

from baton_common.aimodels import AIModel, parse_ai_models
from baton_common.config import SERVICES, CommonSettings, setting

__all__ = ["MonitorSettings"]

_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[\w.-]+):(\d{1,5})$")


class MonitorSettings(CommonSettings, frozen=True, kw_only=True):
    http_port: Annotated[
        int, setting("Port of the health, metrics and status page HTTP server.", ge=0, le=65535)
    ] = 7940
    expected_services: Annotated[
        tuple[str, ...], setting("Services that must have a live instance (comma-separated).")
    ] = SERVICES
    poll_interval: Annotated[float, setting("Seconds between two reads of the buckets and the GPUs.", gt=0)] = 2.0
    probe_address: Annotated[
        str,
        setting("The negotiator's public address (host:port, go-livepeer's -serviceAddr) that the outside-in "
                "probe calls GetOrchestrator on, over TLS as a gateway does; empty turns the probe off."),
    ] = ""
    probe_cert: Annotated[
        str,
        setting("PEM file of the negotiator's self-signed certificate, pinned by the probe. Empty: the probe "
                "takes the certificate the server presents, as go-livepeer gateways do (no verification)."),
    ] = ""
    probe_tls_name: Annotated[
        str, setting("Name the pinned certificate is checked against (the negotiator's certificate has `localhost`).")
    ] = "localhost"
    probe_key_file: Annotated[
        str,
        setting("File with the probe's ETH private key (hex), the sender it signs its requests as. On-chain it "
                "needs a small deposit, or the orchestrator quotes it no ticket params (state reserve_refused). "
                "Empty: a new random key at every start.", secret=True),
    ] = ""
    probe_interval: Annotated[float, setting("Seconds between two probes.", gt=0)] = 10.0
    probe_timeout: Annotated[
        float, setting("Seconds the probe waits for GetOrchestrator; slower than 0.5 s already fails gateways.", gt=0)
    ] = 3.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.probe_address and not _HOST_PORT.match(self.probe_address):
            raise ValueError(f"BATON_MONITOR_PROBE_ADDRESS: {self.probe_address!r} is not host:port")
        _ = self.warm_models  # a bad -aiModels stops the service at start

    @property
    def warm_models(self) -> list[AIModel]:
        """The -aiModels entries marked warm: what the probe and the bus check must be warm."""
        return [m for m in parse_ai_models(self.ai_models) if m.warm]

    @property
    def onchain(self) -> bool:
        return self.network != "offchain"
