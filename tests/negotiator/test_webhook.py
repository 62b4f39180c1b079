"""go-livepeer's -authWebhookUrl: the webhook decides which gateways GetOrchestrator answers, and may set
one gateway's base price."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from eth_utils import to_checksum_address

from tests.helpers import free_port
from tests.negotiator.conftest import RunningNegotiator, start_negotiator
from tests.negotiator.gateway import TestGateway, ai_caps


class _Webhook(http.server.BaseHTTPRequestHandler):
    allowed: dict[str, dict] = {}
    asked: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.asked.append(body["id"])
        answer = self.allowed.get(body["id"])
        data = json.dumps(answer).encode() if answer is not None else b"not on the list"
        self.send_response(200 if answer is not None else 403)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def webhook() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/auth"
    server.shutdown()


@pytest.fixture(scope="module")
def guarded(module_nats: str, webhook: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNegotiator]:
    running = start_negotiator(module_nats, Path(tmp_path_factory.mktemp("webhook")),
                               BATON_NEGOTIATOR_AUTH_WEBHOOK_URL=webhook, BATON_NEGOTIATOR_PRICE_PER_UNIT="1000")
    yield running
    running.stop()


async def test_the_webhook_refuses_gateways_and_sets_one_s_base_price(guarded: RunningNegotiator) -> None:
    allowed, priced, stranger = (TestGateway("127.0.0.1", guarded.grpc_port) for _ in range(3))
    try:
        _Webhook.allowed = {to_checksum_address(allowed.address): {},
                            to_checksum_address(priced.address): {"priceInfo": {"pricePerUnit": 7, "pixelsPerUnit": 2}}}
        info = await asyncio.to_thread(allowed.get_orchestrator, signed=False)
        assert (info.price_info.pricePerUnit, info.price_info.pixelsPerUnit) == (1000, 1)
        info = await asyncio.to_thread(priced.get_orchestrator, signed=False)
        assert (info.price_info.pricePerUnit, info.price_info.pixelsPerUnit) == (7, 2)
        # With capabilities the quote is the capabilities' price, not the webhook's base price.
        info = await asyncio.to_thread(priced.get_orchestrator, signed=False, caps=ai_caps(27, "any-model"))
        assert (info.price_info.pricePerUnit, info.price_info.pixelsPerUnit) == (1000, 1)
        with pytest.raises(grpc.RpcError) as err:
            await asyncio.to_thread(stranger.get_orchestrator, signed=False)
        assert err.value.details() == "authentication failed: not on the list"
        assert _Webhook.asked[-1] == to_checksum_address(stranger.address)
    finally:
        for gw in (allowed, priced, stranger):
            gw.close()


async def test_a_200_answer_is_kept_a_while_and_a_refusal_is_not(guarded: RunningNegotiator) -> None:
    allowed, stranger = (TestGateway("127.0.0.1", guarded.grpc_port) for _ in range(2))
    try:
        _Webhook.allowed = {to_checksum_address(allowed.address): {}}
        asked = len(_Webhook.asked)
        for _ in range(5):  # one question for five GetOrchestrator within auth_webhook_cache_ttl (10 s)
            await asyncio.to_thread(allowed.get_orchestrator, signed=False)
        assert _Webhook.asked[asked:] == [to_checksum_address(allowed.address)]
        for _ in range(2):  # a refusal is not kept: asked each time
            with pytest.raises(grpc.RpcError):
                await asyncio.to_thread(stranger.get_orchestrator, signed=False)
        assert _Webhook.asked[asked + 1:] == [to_checksum_address(stranger.address)] * 2
    finally:
        for gw in (allowed, stranger):
            gw.close()


async def test_refresh_payment_asks_the_webhook_first(guarded: RunningNegotiator) -> None:
    """A sender the webhook refuses learns nothing (403 before any session is looked at); one it accepts gets
    go-livepeer's answer, 409 alike for "no session" and "unknown sender"."""
    allowed, stranger = (TestGateway("127.0.0.1", guarded.grpc_port) for _ in range(2))
    try:
        _Webhook.allowed = {to_checksum_address(allowed.address): {}}
        info = await asyncio.to_thread(allowed.get_orchestrator, signed=False)
        with allowed.http() as client:
            answers = [await asyncio.to_thread(client.post, f"{info.transcoder}/refresh-payment",
                                               json={"sender": to_checksum_address(gw.address), "manifest_id": "m"})
                       for gw in (stranger, allowed)]
        assert [(r.status_code, r.text) for r in answers] == [(403, "authentication failed: not on the list\n"),
                                                             (409, "session has no fixed price\n")]
        assert _Webhook.asked[-1] == to_checksum_address(stranger.address)
    finally:
        for gw in (allowed, stranger):
            gw.close()
