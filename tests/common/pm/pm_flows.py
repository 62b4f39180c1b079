"""Payment flows several test modules share: quoting, paying and processing."""

from __future__ import annotations

from baton_common.pm import (
    ParamsPolicy,
    Payment,
    PaymentProcessor,
    PaymentValidator,
    Scope,
    TicketParamsIssuer,
    Validation,
    balance_key,
    decode_payment,
    ticket_params_to_pb,
)
from baton_common.proto import lp_rpc_pb2

from .conftest import PRICE, SECRET, TICKET_EV
from .pm_gateway import Gateway


def issuer_with_face_value(orch: bytes, chain, nonces, multiple: int, **kwargs) -> TicketParamsIssuer:
    """Face value = multiple x EV, so a ticket wins with probability ~1/multiple."""
    chain.gas = 1  # redemption is cheap enough for any face value >= EV
    policy = ParamsPolicy(recipient=orch, ticket_ev=TICKET_EV, max_face_value=multiple * TICKET_EV)
    return TicketParamsIssuer(policy, SECRET, chain, nonces, **kwargs)


async def winning_payment(orch: bytes, chain, nonces, gateway: Gateway, count: int = 1) -> lp_rpc_pb2.Payment:
    issuer = issuer_with_face_value(orch, chain, nonces, 1)  # winProb = 2**256-1
    params = ticket_params_to_pb(await issuer.quote(gateway.address, PRICE))
    return gateway.pay(params, count)


async def process(processor: PaymentProcessor, payment: lp_rpc_pb2.Payment, manifest: str = "manifest"):
    return await processor.process(decode_payment(payment.SerializeToString()), manifest, Scope.base())


async def validate(validator: PaymentValidator, payment: Payment, scope: Scope | None = None) -> Validation:
    """``check`` then ``commit``, for tests that keep no winners (the processor stores them in between)."""
    checked = await validator.check(payment, scope or Scope.base())
    key = balance_key(checked.sender, "manifest") if len(checked.sender) == 20 else ""
    return (await validator.commit(checked, key)).validation
