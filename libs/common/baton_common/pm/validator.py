"""Validating a payment: go-livepeer's ProcessPayment and ReceiveTicket, in their order.

Spec/livepeer-wire.md section 3.5. Validation changes no balance: it returns
the EV to credit and the winning tickets, and the caller persists the winners
before crediting (``processor.PaymentProcessor`` does exactly that). The only
state it writes is the nonce record, which is what makes a replayed ticket worth
nothing, on this replica or any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from .encoding import ZERO_ADDRESS, checksum_address
from .errors import (
    FatalTicketError,
    InvalidExpectedPrice,
    InvalidRecipientRand,
    InvalidTicketRecipient,
    InvalidTicketSender,
    InvalidTicketSignature,
    MissingExpirationParams,
    MissingSender,
    NonceAlreadySeen,
    PaymentError,
    RecipientInactive,
    SenderInfoUnavailable,
    SenderUnlocking,
    TicketError,
    TicketParamsExpired,
    TooManyNonces,
)
from .payment import Payment
from .ports import ChainData, NonceStore, NonceVerdict
from .recipient_rand import recipient_rand, recipient_rand_hash
from .signature import verify_personal
from .ticket import ExpirationParams, SignedTicket, TicketParams, is_winning, nonce_hasher

__all__ = ["PaymentValidator", "Validation"]


@dataclass(frozen=True, slots=True)
class Validation:
    """What one payment is worth.

    ``price`` is the session price to fix for (sender, manifest) if none is fixed
    yet: 0 for a payment without ticket params. ``ev`` is the exact wei to credit
    for the ``credited`` tickets. ``winners`` must be persisted before crediting.
    ``error`` is the first ticket error (fatal or not): the tickets from it on
    were not credited, and the gateway must get its text.
    """

    sender: bytes
    price: Fraction
    ev: Fraction = Fraction(0)
    received: int = 0
    credited: int = 0
    winners: tuple[SignedTicket, ...] = field(default=())
    error: PaymentError | None = None


class PaymentValidator:
    """Checks payments addressed to ``recipient`` (this orchestrator's ETH address)."""

    def __init__(self, recipient: bytes, secret: bytes, chain: ChainData, nonces: NonceStore) -> None:
        self._recipient = recipient
        self._secret = secret
        self._chain = chain
        self._nonces = nonces

    async def validate(self, payment: Payment) -> Validation:
        """Validate ``payment``; raises PaymentError for the checks that precede the session price."""
        params = payment.params
        if params is None:
            # No ticket params means a zero price: the session's price is fixed at 0.
            return Validation(sender=payment.sender or ZERO_ADDRESS, price=Fraction(0))
        if not payment.sender:
            raise MissingSender()
        round_ = await self._chain.last_initialized_round()
        if not await self._chain.is_active_orchestrator(params.recipient, round_):
            raise RecipientInactive(checksum_address(params.recipient), round_)
        if payment.expected_price is None:
            raise InvalidExpectedPrice("expected price is nil")
        price = payment.expected_price.fraction()
        if payment.expiration_params is None:
            raise MissingExpirationParams()
        if not payment.tickets:
            return Validation(sender=payment.sender, price=price)
        try:
            rand = await self._check_batch(payment, params, payment.expiration_params, price, round_)
        except FatalTicketError as error:
            return Validation(sender=payment.sender, price=price, received=len(payment.tickets), error=error)
        return await self._receive(payment, params, price, rand)

    async def _check_batch(
        self,
        payment: Payment,
        params: TicketParams,
        expiration_params: ExpirationParams,
        price: Fraction,
        round_: int,
    ) -> int:
        """The fatal checks (sender unlocking, recipient, zero sender, rand): the same for every ticket."""
        sender = payment.sender
        try:
            info = await self._chain.sender_info(sender)
        except Exception as exc:  # the chain port failed: go-livepeer aborts the payment
            raise SenderInfoUnavailable(checksum_address(sender), str(exc) or type(exc).__name__) from exc
        if info.withdraw_round != 0 and info.withdraw_round <= round_ + 1:
            raise SenderUnlocking(checksum_address(sender))
        if params.recipient != self._recipient:
            raise InvalidTicketRecipient()
        if sender == ZERO_ADDRESS:
            raise InvalidTicketSender()
        rand = recipient_rand(
            self._secret,
            seed=params.seed,
            sender=sender,
            face_value=params.face_value,
            win_prob=params.win_prob,
            expiration_block=params.expiration_block,
            price=price,
            expiration_params=expiration_params,
        )
        if recipient_rand_hash(rand) != params.recipient_rand_hash:
            raise InvalidRecipientRand()
        return rand

    async def _receive(self, payment: Payment, params: TicketParams, price: Fraction, rand: int) -> Validation:
        """Per ticket: signature, win, nonce, expiry; credit until the first error."""
        sender = payment.sender
        tickets = payment.tickets
        hasher = nonce_hasher(payment.ticket(tickets[0]))
        signed = [verify_personal(sender, hasher(t.sender_nonce), t.sig) for t in tickets]
        # Every well-signed ticket reaches the nonce check, even after an earlier error.
        nonces = [t.sender_nonce for t, ok in zip(tickets, signed, strict=False) if ok]
        key = params.recipient_rand_hash.hex()
        verdicts = iter(await self._nonces.add(key, nonces, params.expiration_block) if nonces else ())
        expired = params.expiration_block <= await self._chain.last_seen_l1_block()
        winners: list[SignedTicket] = []
        first_error: PaymentError | None = None
        credited = 0
        for entry, valid in zip(tickets, signed, strict=False):
            error: TicketError | None = None
            if not valid:
                error = InvalidTicketSignature()
            else:
                if is_winning(entry.sig, rand, params.win_prob):
                    # Queued even if the nonce or expiry check fails below, as go-livepeer
                    # does: the store keys winners by ticket hash, so a replay adds nothing.
                    winners.append(
                        SignedTicket(payment.ticket(entry), entry.sig, rand, params.expiration_block, params.seed)
                    )
                verdict = next(verdicts)
                if verdict is NonceVerdict.SEEN:
                    error = NonceAlreadySeen(checksum_address(sender), entry.sender_nonce)
                elif verdict is NonceVerdict.FULL:
                    error = TooManyNonces(checksum_address(sender), entry.sender_nonce)
                elif expired:
                    error = TicketParamsExpired()
            if first_error is None:
                if error is None:
                    credited += 1
                else:
                    first_error = error
        return Validation(
            sender=sender,
            price=price,
            ev=params.ev() * credited,
            received=len(tickets),
            credited=credited,
            winners=tuple(winners),
            error=first_error,
        )
