"""Per-client limits: what counts as one client, and the cold sender lookups one client may cost."""

from __future__ import annotations

import asyncio

import pytest

from baton_common.schemas.chain import SenderInfo, SenderLookup
from baton_negotiator.clients import CLIENT, client_key, grpc_peer_host
from baton_negotiator.payments import ColdSenderLookups, TooManyNewSenders


@pytest.mark.parametrize(("host", "key"), [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),  # the same /64: one client
    ("[2001:db8:1:3::1]", "2001:db8:1:3::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("::ffff:198.51.100.2", "198.51.100.2"),  # an IPv4 client on a dual-stack listener
    ("2002:c633:6402:1::1", "198.51.100.2"),  # 6to4: the IPv4 host owns the whole /48, one client
    ("2002:c633:6402:ffff::1", "198.51.100.2"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),  # Teredo: the client's own IPv4 address
    ("64:ff9b::cb00:7107", "203.0.113.7"),  # NAT64
    ("unix:/tmp/s", "unix:/tmp/s"),
])
def test_a_client_is_an_ipv4_address_or_an_ipv6_64(host: str, key: str) -> None:
    assert client_key(host) == key


@pytest.mark.parametrize(("peer", "host"), [
    ("ipv4:127.0.0.1:50432", "127.0.0.1"),
    ("ipv6:[::1]:50432", "::1"),
    ("ipv6:%5B2001:db8::5%5D:443", "2001:db8::5"),
    ("unix:/run/grpc.sock", "unix:/run/grpc.sock"),
])
def test_grpc_peers_name_their_host(peer: str, host: str) -> None:
    assert grpc_peer_host(peer) == host


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _ask(lookups: ColdSenderLookups, client: str, sender: str) -> str:
    token = CLIENT.set(client)
    try:
        await asyncio.ensure_future(lookups(SenderLookup(sender=sender)))  # a task, as KvChainData runs it
        return "asked"
    except TooManyNewSenders as exc:
        return exc.message
    finally:
        CLIENT.reset(token)


async def test_one_clients_flood_of_fresh_keys_leaves_the_rest_of_the_bucket_to_others() -> None:
    asked: list[str] = []

    async def lookup(request: SenderLookup) -> SenderInfo:
        asked.append(request.sender)
        return SenderInfo(sender=request.sender, deposit=10**18, reserve=10**18, read_at=0)

    clock = Clock()
    lookups = ColdSenderLookups(lookup, rate=10, per_client=3, clock=clock)
    flood = [await _ask(lookups, "2001:db8:1:2::/64", f"0x{i:040x}") for i in range(8)]
    assert flood == ["asked"] * 3 + ["too many new senders, retry later"] * 5
    # Another client still gets its lookups at once, up to its own share and what the bucket holds.
    assert [await _ask(lookups, "198.51.100.2", f"0x{100 + i:040x}") for i in range(4)] == (
        ["asked"] * 3 + ["too many new senders, retry later"])
    assert len(asked) == 6
    clock.now += 1.0  # a second later each share has refilled by its rate (3 a second)
    assert await _ask(lookups, "2001:db8:1:2::/64", "0x" + "ab" * 20) == "asked"


async def test_many_clients_together_still_cost_at_most_the_global_rate() -> None:
    async def lookup(request: SenderLookup) -> SenderInfo:
        return SenderInfo(sender=request.sender, deposit=1, reserve=1, read_at=0)

    lookups = ColdSenderLookups(lookup, rate=5, per_client=2, clock=Clock())
    answers = [await _ask(lookups, f"192.0.2.{i}", f"0x{i:040x}") for i in range(10)]
    assert answers.count("asked") == 5


async def test_a_share_larger_than_the_bucket_is_the_bucket() -> None:
    async def lookup(request: SenderLookup) -> SenderInfo:
        return SenderInfo(sender=request.sender, deposit=1, reserve=1, read_at=0)

    lookups = ColdSenderLookups(lookup, rate=2, per_client=50, clock=Clock())
    assert [await _ask(lookups, "192.0.2.1", f"0x{i:040x}") for i in range(3)].count("asked") == 2
