"""On-chain, GetOrchestrator from throwaway keys (any key can sign one): they cost the chain service at most
``sender_lookups_per_second`` cold lookups, an unfunded one is asked once a minute, and none of them takes a
metrics label of its own."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator

import grpc
import nats
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address

from baton_common.proto import lp_rpc_pb2
from baton_common.schemas import decode, encode
from baton_common.schemas.chain import SenderLookup
from tests.negotiator.conftest import RunningNegotiator
from tests.negotiator.fake_chain import FakeChain
from tests.negotiator.gateway import TestGateway
from tests.negotiator.test_paid import ORCH, call, start_onchain

RATE = 5


class UntrackedChain(FakeChain):
    """Answers a lookup without keeping the sender in the chain KV (as a chain service that tracks no unfunded
    sender would): every question about it is a cold lookup unless the negotiator keeps the answer."""

    async def _lookup(self, msg: nats.aio.msg.Msg) -> None:
        request = decode(msg.data, SenderLookup)
        self.lookups.append(request.sender)
        await msg.respond(encode(self.sender(request.sender)))


@pytest.fixture(scope="module")
async def chain(module_nc: nats.NATS) -> AsyncIterator[FakeChain]:
    fake = await UntrackedChain(module_nc, ORCH.address, deposit=0, reserve=0).start()  # every sender unfunded
    yield fake
    await fake.stop()


@pytest.fixture(scope="module")
def onchain(module_nats: str, chain: FakeChain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNegotiator]:
    running = start_onchain(module_nats, tmp_path_factory.mktemp("abuse-onchain"),
                            BATON_NEGOTIATOR_SENDER_LOOKUPS_PER_SECOND=str(RATE))
    yield running
    running.stop()


@pytest.fixture
def gw(onchain: RunningNegotiator) -> Iterator[TestGateway]:
    gateway = TestGateway("127.0.0.1", onchain.grpc_port)
    yield gateway
    gateway.close()


def _throwaway(gw: TestGateway, keys: list, caps: lp_rpc_pb2.Capabilities | None = None) -> list[str]:  # noqa: ANN001
    """GetOrchestrator once per key: '' when answered, else the refusal's details."""
    stub = gw.channel.unary_unary("/net.Orchestrator/GetOrchestrator",
                                  request_serializer=lp_rpc_pb2.OrchestratorRequest.SerializeToString,
                                  response_deserializer=lp_rpc_pb2.OrchestratorInfo.FromString)
    out = []
    for acct in keys:
        addr = bytes.fromhex(acct.address[2:])
        sig = bytes(Account.sign_message(encode_defunct(primitive=keccak(to_checksum_address(addr).encode())),
                                         acct.key).signature)
        try:
            stub(lp_rpc_pb2.OrchestratorRequest(address=addr, sig=sig, capabilities=caps), timeout=10)
            out.append("")
        except grpc.RpcError as exc:
            out.append(f"{exc.code().name}: {exc.details()}")
    return out


async def test_fresh_keys_cost_at_most_the_cold_lookup_rate(gw: TestGateway, chain: FakeChain) -> None:
    keys = [Account.create() for _ in range(40)]
    before = len(chain.lookups)
    started = time.monotonic()
    answers = await call(_throwaway, gw, keys)
    took = time.monotonic() - started
    looked_up = len(chain.lookups) - before
    assert looked_up <= RATE + RATE * took + 1, (looked_up, took)
    unfunded = "FAILED_PRECONDITION: insufficient sender reserve"
    refused = [a for a in answers if a != unfunded]
    assert refused and all(a.startswith("UNAVAILABLE: ") and a.endswith("too many new senders, retry later")
                           for a in refused), set(refused)
    # An unfunded sender asked about again within the minute costs no new lookup.
    looked = [k for k, a in zip(keys, answers, strict=True) if a == unfunded]
    assert looked
    before = len(chain.lookups)
    assert await call(_throwaway, gw, looked[:1] * 5) == [unfunded] * 5
    assert len(chain.lookups) == before


@pytest.fixture(scope="module")
def dual_stack(module_nats: str, chain: FakeChain,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNegotiator]:
    """Listening on [::] (IPv4 clients arrive as ::ffff:a.b.c.d): 127.0.0.1 and ::1 are two clients."""
    running = start_onchain(module_nats, tmp_path_factory.mktemp("abuse-dual"), BATON_NEGOTIATOR_LISTEN_HOST="::",
                            BATON_NEGOTIATOR_SENDER_LOOKUPS_PER_SECOND="10",
                            BATON_NEGOTIATOR_SENDER_LOOKUPS_PER_CLIENT_PER_SECOND="2")
    yield running
    running.stop()


async def test_one_clients_flood_of_fresh_keys_does_not_lock_out_a_new_gateway_elsewhere(
        dual_stack: RunningNegotiator) -> None:
    unfunded = "FAILED_PRECONDITION: insufficient sender reserve"
    flooder, other = TestGateway("127.0.0.1", dual_stack.grpc_port), TestGateway("::1", dual_stack.grpc_port)
    try:
        flood = await call(_throwaway, flooder, [Account.create() for _ in range(12)])
        assert flood.count(unfunded) <= 3, flood  # its share: 2 at once, 2 a second
        assert flood[-1].endswith("too many new senders, retry later"), flood
        # The other client's new sender is looked up (unfunded here), not refused for the flood.
        assert await call(_throwaway, other, [Account.create()]) == [unfunded]
    finally:
        flooder.close()
        other.close()


async def test_a_throwaway_key_s_refusal_is_labelled_unknown(gw: TestGateway, onchain: RunningNegotiator) -> None:
    caps = lp_rpc_pb2.Capabilities()
    caps.constraints.PerCapability[35].models["no-such-live-model"].warm = True  # refused: OrchestratorCapped
    keys = [Account.create() for _ in range(3)]
    answers = await call(_throwaway, gw, keys, caps)
    assert all(a.endswith("OrchestratorCapped") for a in answers), answers
    text = urllib.request.urlopen(f"http://127.0.0.1:{onchain.health_port}/metrics", timeout=5).read().decode()
    capped = [line for line in text.splitlines()
              if line.startswith("baton_negotiator_refusals_total{") and 'reason="capped"' in line]
    assert any('sender="unknown"' in line for line in capped), capped
    assert not any(k.address.lower() in text.lower() for k in keys)


async def test_refresh_payment_answers_unknown_senders_and_missing_sessions_alike(gw: TestGateway,
                                                                                 chain: FakeChain) -> None:
    chain.deposit = chain.reserve = 10**19  # gw's sender is funded and known; it has no session on "m"
    await asyncio.sleep(1)  # the cold-lookup bucket refills after the floods above
    try:
        info = await call(gw.get_orchestrator)
    finally:
        chain.deposit = chain.reserve = 0
    with gw.http() as client:
        answers = [await call(client.post, f"{info.transcoder}/refresh-payment",
                              json={"sender": sender, "manifest_id": "m"})
                   for sender in (to_checksum_address(gw.address), Account.create().address)]
    assert [(r.status_code, r.text, r.headers["content-type"]) for r in answers] == [
        (409, "session has no fixed price\n", "text/plain; charset=utf-8")] * 2
