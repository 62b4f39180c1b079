"""Settings of the negotiator service (environment `BATON_NEGOTIATOR_<NAME>`)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from baton_common.config import CommonSettings, setting
from baton_common.pm import DEFAULT_TICKET_EV

__all__ = ["OFFCHAIN_SERVICE_ADDR", "NegotiatorSettings"]

OFFCHAIN_SERVICE_ADDR = "127.0.0.1:8935"
"""go-livepeer's offchain default for -serviceAddr."""
_PRICE = re.compile(r"^(\d+(\.\d+)?)([A-z][A-z0-9]*)?$")


class NegotiatorSettings(CommonSettings, frozen=True, kw_only=True):
    http_port: Annotated[int, setting("Port of the health and metrics HTTP server.", ge=0, le=65535)] = 7935
    ticket_secret_file: Annotated[
        str,
        setting(
            "File holding the recipientRand secret (at least 32 bytes, hex or raw), the same for every "
            "negotiator replica; required unless network is offchain. Not go-livepeer's -orchSecret.",
            secret=True,
        ),
    ] = ""
    service_addr: Annotated[
        str,
        setting("host:port where gateways reach the gRPC listener (GetOrchestrator, Ping); go-livepeer's "
                "-serviceAddr. Empty: 127.0.0.1:8935 offchain; required on-chain.", flag="serviceAddr"),
    ] = ""
    job_port: Annotated[
        int,
        setting("Port of the HTTPS job endpoints (/segment, the AI endpoints, /payment, /stream) on the "
                "service_addr host; gateways learn it from OrchestratorInfo.transcoder. 0 picks a free port.",
                ge=0, le=65535),
    ] = 8936
    listen_host: Annotated[
        str, setting("Address both public listeners bind; empty means the host of service_addr.")
    ] = ""
    state_dir: Annotated[
        str,
        setting("Folder for the self-signed TLS certificate (cert.pem, key.pem, made on first start) and, "
                "offchain, the auth-token key; a volume in compose."),
    ] = ".baton/negotiator"
    auth_key_file: Annotated[
        str,
        setting("Offchain auth-token HMAC key file (64 hex characters, created if absent); every replica must "
                "read the same one. Empty: <state_dir>/auth-token.key. On-chain the key is derived from the "
                "ticket secret."),
    ] = ""
    eth_orch_addr: Annotated[
        str, setting("The orchestrator's ETH address (tickets are paid to it); empty: the keystore's.",
                     flag="ethOrchAddr")
    ] = ""
    eth_keystore_path: Annotated[
        str, setting("go-livepeer keystore JSON file (or a folder holding one) of the ETH key that signs Ping "
                     "answers and TranscodeData; required on-chain.", flag="ethKeystorePath")
    ] = ""
    eth_password: Annotated[
        str, setting("Password of the keystore, or a file holding it.", flag="ethPassword", secret=True)
    ] = ""
    price_source: Annotated[
        Literal["fixed", "table"],
        setting("`table`: quote from the pricing service's table (baton-pricing KV); `fixed`: from "
                "price_per_unit / pixels_per_unit here (until the pricing service runs)."),
    ] = "fixed"
    price_per_unit: Annotated[
        str, setting("Fixed prices: wei per pixels_per_unit units (go-livepeer's -pricePerUnit; `wei` or `eth` "
                     "suffix; other currencies need the pricing service).", flag="pricePerUnit")
    ] = "0"
    pixels_per_unit: Annotated[
        int, setting("Fixed prices: units the price_per_unit is for (-pixelsPerUnit).", flag="pixelsPerUnit", ge=1)
    ] = 1
    segment_fetch_private: Annotated[
        bool, setting("Let /segment fetch an application/vnd+livepeer.uri URL that resolves to a loopback, private, "
                      "link-local, multicast or otherwise non-public address (broadcasters on a private network). "
                      "Off: such a URL is refused with 400.")
    ] = False
    auto_adjust_price: Annotated[
        bool, setting("Fixed prices: scale quotes by the ticket overhead (-autoAdjustPrice).", flag="autoAdjustPrice")
    ] = True
    ticket_ev: Annotated[int, setting("Expected value of one ticket in wei (-ticketEV).", flag="ticketEV", ge=1)] = (
        DEFAULT_TICKET_EV
    )
    max_face_value: Annotated[
        int, setting("Cap on the ticket face value in wei, 0 = none (-maxFaceValue).", flag="maxFaceValue", ge=0)
    ] = 0
    min_gas_price: Annotated[
        int, setting("Floor under the suggested gas price in wei (-minGasPrice).", flag="minGasPrice", ge=0)
    ] = 0
    max_sessions: Annotated[
        str, setting("Transcode sessions at once (-maxSessions): a number, or `auto` for the sum of the transcode "
                     "workers' capacity.", flag="maxSessions")
    ] = "10"
    job_timeout: Annotated[
        float, setting("Seconds a job may take, retry included, unless job_timeouts names its pipeline.", gt=0)
    ] = 300.0
    job_timeouts: Annotated[
        dict[str, float],
        setting('Per-pipeline job timeouts in seconds, JSON: {"llm": 120, "transcode": 30}.'),
    ] = {}
    auth_webhook_url: Annotated[
        str,
        setting("go-livepeer's -authWebhookUrl: each GetOrchestrator POSTs {\"id\": \"<gateway address>\"} here and "
                "is refused unless it answers 200; a priceInfo {pricePerUnit, pixelsPerUnit} in the answer is that "
                "gateway's base price (without capabilities) for 30 minutes. Empty: none.", flag="authWebhookUrl"),
    ] = ""
    auth_webhook_cache_ttl: Annotated[
        float,
        setting("Seconds a 200 answer of the auth webhook stands for that gateway address before it is asked again "
                "(go-livepeer asks on every GetOrchestrator); 0 = ask every time.", ge=0),
    ] = 10.0
    ticketless_spend: Annotated[
        Literal["sender", "verified-session"],
        setting("Who may spend an AI balance with a payment that carries no tickets. 'sender' (go-livepeer's "
                "rule): any request whose Livepeer-Segment signature recovers to the payment's sender; stock "
                "gateways send such payments under each fresh auth token while they hold credit. "
                "'verified-session': only under an auth token that already brought a ticket whose signature "
                "recovered to that sender; closes the replay of a gateway's batch AI header (identical for every "
                "orchestrator it uses) by another orchestrator, but a stock gateway's first ticketless job "
                "after a GetOrchestrator refresh is refused with 400 Insufficient balance."),
    ] = "sender"
    max_body_bytes_in_flight: Annotated[
        int,
        setting("Request body bytes all job requests together may hold in memory (a /segment body may be "
                "300,000,000); past it a request is refused with 503 insufficient capacity before its body is "
                "read. Credentials are checked before any body is read.", ge=1_000_000),
    ] = 600_000_000
    max_body_bytes_per_client: Annotated[
        int,
        setting("Request body bytes (fetched segments included) the requests of one client (an IPv4 address or an "
                "IPv6 /64) may hold in "
                "memory together; past it that client's request is refused with 503 insufficient capacity, so one "
                "client cannot take all of max_body_bytes_in_flight. Bytes count as they arrive.", ge=1_000_000),
    ] = 320_000_000
    body_read_timeout: Annotated[
        float,
        setting("Seconds a request may take to send its whole body (and Hypercorn's read timeout on a connection "
                "that sends nothing): a slower or silent upload is refused with 408 and its bytes in flight are "
                "given back. 60 s carries a 300 MB /segment at 5 MB/s.", gt=0),
    ] = 60.0
    sender_lookups_per_second: Annotated[
        float,
        setting("On-chain: cold-path lookups of senders the chain data does not hold yet (one bus request to the "
                "chain service each), a token bucket of this many a second; past it a new sender's GetOrchestrator "
                "is refused with Unavailable (too many new senders, retry later). Unfunded answers are kept 60 s.",
                gt=0),
    ] = 20.0
    sender_lookups_per_client_per_second: Annotated[
        float,
        setting("On-chain: the share of sender_lookups_per_second one client (an IPv4 address, or an IPv6 /64) may "
                "use, a token bucket of its own: a flood of fresh keys from one client is refused once its share "
                "is spent, and the rest of the bucket stays for new gateways elsewhere. Below "
                "sender_lookups_per_second; 0: a quarter of it.", ge=0),
    ] = 0.0

    @property
    def lookups_per_client(self) -> float:
        """The per-client share of the cold sender lookups, a second."""
        return self.sender_lookups_per_client_per_second or self.sender_lookups_per_second / 4

    def __post_init__(self) -> None:
        super().__post_init__()
        onchain = self.network != "offchain"
        if self.sender_lookups_per_client_per_second >= self.sender_lookups_per_second:
            raise ValueError(
                f"BATON_NEGOTIATOR_SENDER_LOOKUPS_PER_CLIENT_PER_SECOND ({self.sender_lookups_per_client_per_second:g}) "
                f"must be below BATON_NEGOTIATOR_SENDER_LOOKUPS_PER_SECOND ({self.sender_lookups_per_second:g}): "
                "one client could otherwise spend the whole bucket (0 gives it a quarter)")
        if onchain and not self.service_addr:
            raise ValueError("BATON_NEGOTIATOR_SERVICE_ADDR (-serviceAddr) is required on-chain: "
                             "the host:port gateways reach this orchestrator at")
        if onchain and not self.eth_keystore_path:
            raise ValueError("BATON_NEGOTIATOR_ETH_KEYSTORE_PATH (-ethKeystorePath) is required on-chain")
        host, _, port = self.public_addr.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"BATON_NEGOTIATOR_SERVICE_ADDR (-serviceAddr) must be host:port, got {self.service_addr!r}")
        if not _PRICE.match(self.price_per_unit):
            raise ValueError(f"BATON_NEGOTIATOR_PRICE_PER_UNIT (-pricePerUnit) {self.price_per_unit!r} is not "
                             "a number with an optional currency (1000, 0.5eth)")
        currency = (_PRICE.match(self.price_per_unit).group(3) or "wei").lower()  # type: ignore[union-attr]
        if currency not in ("wei", "eth"):
            raise ValueError(f"BATON_NEGOTIATOR_PRICE_PER_UNIT (-pricePerUnit): currency {currency!r} needs the "
                             "pricing service (price_source = table); fixed prices take wei or eth")
        if self.max_sessions != "auto" and not (self.max_sessions.isdigit() and int(self.max_sessions) > 0):
            raise ValueError(f"BATON_NEGOTIATOR_MAX_SESSIONS (-maxSessions) must be a positive number or auto, "
                             f"got {self.max_sessions!r}")
        for name, seconds in self.job_timeouts.items():
            if seconds <= 0:
                raise ValueError(f"BATON_NEGOTIATOR_JOB_TIMEOUTS: {name} must be > 0 seconds, got {seconds}")
        if self.auth_webhook_url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", self.auth_webhook_url):
            raise ValueError(f"BATON_NEGOTIATOR_AUTH_WEBHOOK_URL (-authWebhookUrl) is not an http(s) URL: "
                             f"{self.auth_webhook_url!r}")
        if self.eth_orch_addr and not re.fullmatch(r"0x[0-9a-fA-F]{40}", self.eth_orch_addr):
            raise ValueError(f"BATON_NEGOTIATOR_ETH_ORCH_ADDR (-ethOrchAddr) is not a 0x address: {self.eth_orch_addr!r}")

    @property
    def onchain(self) -> bool:
        return self.network != "offchain"

    @property
    def public_addr(self) -> str:
        """host:port of the gRPC listener as gateways see it."""
        return self.service_addr or OFFCHAIN_SERVICE_ADDR

    @property
    def public_host(self) -> str:
        return self.public_addr.rpartition(":")[0].strip("[]")

    @property
    def bind_host(self) -> str:
        return self.listen_host or self.public_host

    def timeout_for(self, pipeline: str) -> float:
        return self.job_timeouts.get(pipeline, self.job_timeout)
