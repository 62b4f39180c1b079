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

from .pm_evm import Anvil, TicketChecks, compile_contracts
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
def evm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TicketChecks]:
    """TicketChecks deployed on a fresh anvil, with the fake chain's round recorded."""
    built = compile_contracts(tmp_path_factory.mktemp("solc"))
    anvil = Anvil.start()
    try:
        contract = TicketChecks.deploy(anvil, built["TicketChecks"][1])
        contract.set_round(ROUND, ROUND_BLOCK_HASH)
        yield contract
    finally:
        anvil.stop()
