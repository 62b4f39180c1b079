"""The transaction sender and the RPC pool against a real anvil: nonces, replacement, the gas cap, failover."""

from __future__ import annotations

import asyncio

import pytest
from eth_account import Account
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError

from baton_chain.errors import (
    GasPriceAboveCap,
    InsufficientFunds,
    NotLeaseHolder,
    RpcNodeError,
    RpcUnavailable,
    TxNotMined,
)
from baton_chain.eth import RpcPool
from baton_chain.tx import TxSender

from .livepeer import free_port


@pytest.fixture(autouse=True)
async def close_pools(monkeypatch):
    """Close every pool a test opened (aiohttp sessions)."""
    pools: list[RpcPool] = []
    init = RpcPool.__init__

    def tracking(self, *args, **kwargs):
        init(self, *args, **kwargs)
        pools.append(self)

    monkeypatch.setattr(RpcPool, "__init__", tracking)
    yield
    for pool in pools:
        await pool.close()


class Held:
    def __init__(self, held: bool = True) -> None:
        self.value = held

    def held(self) -> bool:
        return self.value


@pytest.fixture
def funded(node):
    acct = Account.create()
    w3 = Web3(Web3.HTTPProvider(node.url))
    w3.provider.make_request("anvil_setBalance", [acct.address, hex(10**21)])
    return acct, w3


async def test_concurrent_sends_never_collide(node, funded) -> None:
    acct, w3 = funded
    sender = TxSender(RpcPool([node.url]), acct, Held(), poll=0.02)
    to = Account.create().address
    receipts = await asyncio.gather(*(sender.send(to, b"", what=f"t{i}") for i in range(12)))
    assert all(r["status"] == 1 for r in receipts)
    nonces = sorted(w3.eth.get_transaction(r["transactionHash"])["nonce"] for r in receipts)
    assert nonces == list(range(12))
    # Another sender on the same key (a stale one) recovers from "nonce too low".
    other = TxSender(RpcPool([node.url]), acct, Held(), poll=0.02)
    other._nonce = 3
    receipt = await other.send(to, b"", what="stale")
    assert w3.eth.get_transaction(receipt["transactionHash"])["nonce"] == 12


async def test_a_stuck_transaction_is_replaced_within_the_cap(node, funded) -> None:
    acct, w3 = funded
    w3.provider.make_request("evm_setAutomine", [False])
    sender = TxSender(RpcPool([node.url]), acct, Held(), tx_timeout=0.5, max_replacements=2, poll=0.05)
    sent: list[bytes] = []

    async def on_sent(tx: bytes) -> None:
        sent.append(tx)

    task = asyncio.create_task(sender.send(Account.create().address, b"", what="stuck", on_sent=on_sent))
    while len(sent) < 2:
        await asyncio.sleep(0.05)
    w3.provider.make_request("evm_mine", [])
    receipt = await task
    w3.provider.make_request("evm_setAutomine", [True])
    assert receipt["status"] == 1
    assert bytes(receipt["transactionHash"]) == sent[-1] != sent[0]
    assert w3.eth.get_transaction(sent[-1])["nonce"] == 0
    with pytest.raises(TransactionNotFound):  # the node dropped the one it replaced
        w3.eth.get_transaction(sent[0])
    assert w3.eth.get_transaction_count(acct.address) == 1


async def test_the_gas_cap_stops_a_send(node, funded) -> None:
    acct, w3 = funded
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    sender = TxSender(RpcPool([node.url]), acct, Held(), max_gas_price=base - 1, poll=0.02)
    with pytest.raises(GasPriceAboveCap, match="above -maxGasPrice"):
        await sender.send(Account.create().address, b"", what="capped")
    assert w3.eth.get_transaction_count(acct.address) == 0
    capped = TxSender(RpcPool([node.url]), acct, Held(), max_gas_price=base * 3, poll=0.02)
    receipt = await capped.send(Account.create().address, b"", what="capped")
    assert w3.eth.get_transaction(receipt["transactionHash"])["maxFeePerGas"] <= base * 3


async def test_no_lease_no_send(node, funded) -> None:
    acct, w3 = funded
    with pytest.raises(NotLeaseHolder):
        await TxSender(RpcPool([node.url]), acct, Held(False)).send(acct.address, b"", what="x")
    assert w3.eth.get_transaction_count(acct.address) == 0


async def test_rpc_pool_fails_over_and_reports_each_url_without_its_path(node) -> None:
    dead = f"http://127.0.0.1:{free_port()}/secret-api-key"
    switched: list[int] = []
    pool = RpcPool([dead, node.url], timeout=2, on_failover=switched.append)
    assert await pool.run(lambda w3: w3.eth.chain_id) == 31337
    assert switched == [1] and pool.healthy == [False, True]
    detail = await pool.check()
    assert "down" in detail and "secret-api-key" not in detail
    with pytest.raises(RpcUnavailable) as none:
        await RpcPool([dead], timeout=2).run(lambda w3: w3.eth.chain_id)
    assert "secret-api-key" not in str(none.value)


async def test_the_journal_hears_of_each_transaction_before_the_node_does(node, funded) -> None:
    acct, w3 = funded
    w3.provider.make_request("evm_setAutomine", [False])
    sender = TxSender(RpcPool([node.url]), acct, Held(), tx_timeout=0.5, max_replacements=1, poll=0.05)
    journaled: list[tuple[int, bytes, bool]] = []

    async def journal(nonce: int, tx_hash: bytes) -> None:
        try:
            w3.eth.get_transaction(tx_hash)
            known = True
        except TransactionNotFound:
            known = False
        journaled.append((nonce, tx_hash, known))

    task = asyncio.create_task(sender.send(Account.create().address, b"", what="journaled", journal=journal))
    while len(journaled) < 2:  # the first, then its replacement
        await asyncio.sleep(0.05)
    w3.provider.make_request("evm_mine", [])
    receipt = await task
    w3.provider.make_request("evm_setAutomine", [True])
    assert [(n, known) for n, _, known in journaled][:2] == [(0, False), (0, False)]
    assert all(not known for _, _, known in journaled)
    mined = bytes(receipt["transactionHash"])
    assert mined in [h for _, h, _ in journaled]  # whichever landed, the journal had it first
    assert await sender.receipt(mined) is not None and await sender.receipt(b"\1" * 32) is None


@pytest.mark.parametrize("message", [
    "{'code': -32005, 'message': 'daily request count exceeded, request rate limited'}",
    "header not found",
    "missing trie node 4f2a... (path )",
    "{'code': -32603, 'message': 'internal error'}",
    "query returned more than 10000 results",
])
async def test_a_nodes_own_json_rpc_error_fails_over_to_the_backup(message) -> None:
    pool = RpcPool(["http://primary.invalid", "http://backup.invalid"])
    tried: list[int] = []

    async def op(w3):
        tried.append(pool.nodes.index(w3))
        if pool.nodes.index(w3) == 0:
            raise Web3RPCError(message)
        return 42

    assert await pool.run(op) == 42
    assert tried == [0, 1] and pool.current == 1 and pool.healthy == [False, True]
    with pytest.raises(RpcNodeError, match="every Ethereum node returned an error"):  # a ChainError, handled
        await RpcPool(["http://only.invalid"]).run(lambda w3: (_ for _ in ()).throw(Web3RPCError(message)))


async def test_a_refused_nonce_is_the_nodes_answer_not_a_failover() -> None:
    pool = RpcPool(["http://primary.invalid", "http://backup.invalid"])
    tried: list[int] = []

    async def op(w3):
        tried.append(pool.nodes.index(w3))
        raise Web3RPCError("{'code': -32000, 'message': 'nonce too low'}")

    with pytest.raises(Web3RPCError):
        await pool.run(op)
    assert tried == [0]


async def test_a_key_without_eth_for_gas_says_so(node) -> None:
    poor = Account.create()
    sender = TxSender(RpcPool([node.url]), poor, Held(), poll=0.02, gas_limit=21_000)
    with pytest.raises(InsufficientFunds, match="cannot pay for gas"):
        await sender.send(Account.create().address, b"", what="poor")


async def test_already_known_means_our_transaction_was_accepted(funded) -> None:
    acct, _ = funded

    class Pool:
        async def run(self, op):
            raise Web3RPCError("{'code': -32000, 'message': 'already known'}")

    sender = TxSender(Pool(), acct, Held())
    tx = {"chainId": 31337, "nonce": 0, "to": acct.address, "data": b"", "gas": 21_000, "value": 0, "gasPrice": 1}
    assert await sender._sign_and_send(tx) == bytes(acct.sign_transaction(tx).hash)


async def test_a_transaction_given_up_on_is_taken_over_by_the_next_send(node, funded) -> None:
    acct, w3 = funded
    w3.provider.make_request("evm_setAutomine", [False])
    sender = TxSender(RpcPool([node.url]), acct, Held(), tx_timeout=0.3, max_replacements=0, poll=0.05)
    with pytest.raises(TxNotMined, match="no receipt for nonce 0"):
        await sender.send(Account.create().address, b"", what="stuck")
    to = Account.create().address
    task = asyncio.create_task(sender.send(to, b"", what="next"))
    await asyncio.sleep(0.2)
    w3.provider.make_request("evm_mine", [])
    receipt = await task
    w3.provider.make_request("evm_setAutomine", [True])
    mined = w3.eth.get_transaction(receipt["transactionHash"])
    assert (mined["nonce"], mined["to"]) == (0, to)  # the next one took nonce 0 over instead of queueing behind it
    assert w3.eth.get_transaction_count(acct.address) == 1
    assert w3.eth.get_transaction_count(acct.address, "pending") == 1  # nothing left stuck in the pool
    receipt = await sender.send(to, b"", what="after")
    assert w3.eth.get_transaction(receipt["transactionHash"])["nonce"] == 1


async def test_a_transaction_left_stuck_before_a_restart_is_taken_over_after_it(node, funded) -> None:
    """A process that gave up on a transaction and died: its successor must not queue behind it forever."""
    acct, w3 = funded
    w3.provider.make_request("evm_setAutomine", [False])
    before = TxSender(RpcPool([node.url]), acct, Held(), tx_timeout=0.3, max_replacements=0, poll=0.05)
    with pytest.raises(TxNotMined):
        await before.send(Account.create().address, b"", what="stuck")
    after = TxSender(RpcPool([node.url]), acct, Held(), tx_timeout=0.3, max_replacements=0, poll=0.05)
    to = Account.create().address
    task = asyncio.create_task(after.send(to, b"", what="after the restart"))
    await asyncio.sleep(0.6)  # its wait for the one in flight times out
    w3.provider.make_request("evm_mine", [])
    receipt = await task
    w3.provider.make_request("evm_setAutomine", [True])
    mined = w3.eth.get_transaction(receipt["transactionHash"])
    assert (mined["nonce"], mined["to"]) == (0, to)
    assert w3.eth.get_transaction_count(acct.address, "pending") == 1  # nothing left stuck in the pool
