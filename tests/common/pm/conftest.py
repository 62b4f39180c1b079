"""Fixtures for the payment core tests: a fake chain, the pm objects, a gateway, a real EVM."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import pytest

from baton_common.pm import (
    Balances,
    MemoryBalanceStore,
    MemoryNonceStore,
    MemoryWinningTickets,
    ParamsPolicy,
    PaymentProcessor,
    PaymentValidator,
    TicketParamsIssuer,
    address_of,
)

from .pm_evm import Anvil, LivepeerBroker
from .pm_fakes import ORCH_KEY, ROUND, ROUND_BLOCK_HASH, FakeChain
from .pm_gateway import Gateway

SECRET = bytes(range(32))
TICKET_EV = 1_000_000_000_000


@pytest.fixture
def orch() -> bytes:
    return address_of(ORCH_KEY)


@pytest.fixture
def chain(orch: bytes) -> FakeChain:
    return FakeChain(active={orch})


@pytest.fixture
def policy(orch: bytes) -> ParamsPolicy:
    return ParamsPolicy(recipient=orch, ticket_ev=TICKET_EV)


@pytest.fixture
def nonces() -> MemoryNonceStore:
    return MemoryNonceStore()


@pytest.fixture
def issuer(policy: ParamsPolicy, chain: FakeChain, nonces: MemoryNonceStore) -> TicketParamsIssuer:
    return TicketParamsIssuer(policy, SECRET, chain, nonces)


@pytest.fixture
def validator(orch: bytes, chain: FakeChain, nonces: MemoryNonceStore) -> PaymentValidator:
    return PaymentValidator(orch, SECRET, chain, nonces)


@pytest.fixture
def balances() -> Balances:
    return Balances(MemoryBalanceStore())


@pytest.fixture
def winners() -> MemoryWinningTickets:
    return MemoryWinningTickets()


@pytest.fixture
def processor(validator: PaymentValidator, balances: Balances, winners: MemoryWinningTickets) -> PaymentProcessor:
    return PaymentProcessor(validator, balances, winners)


@pytest.fixture
def gateway() -> Gateway:
    return Gateway.random()


PRICE = Fraction(1, 1)


@pytest.fixture(scope="session")
def evm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivepeerBroker]:
    """Livepeer's real TicketBroker on a fresh anvil.

    The fake chain's round is current and initialized, and the orchestrator registered.
    """
    from tests.chain.livepeer import compile_stand_in

    anvil = Anvil.start()
    try:
        broker = LivepeerBroker.deploy(anvil, compile_stand_in(tmp_path_factory.mktemp("solc")))
        broker.set_round(ROUND - 1, bytes(31) + b"\x01")
        broker.register(address_of(ORCH_KEY))  # active from ROUND on, as a paid orchestrator is
        broker.set_round(ROUND, ROUND_BLOCK_HASH)
        yield broker
    finally:
        anvil.stop()
