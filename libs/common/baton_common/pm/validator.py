"""Validating a payment: go-livepeer's ProcessPayment and ReceiveTicket, in their order.

Spec/livepeer-wire.md section 3.5. Validation changes no balance. It returns
the EV to credit and the winning tickets. The caller persists the winners first
and credits after (``processor.PaymentProcessor`` does exactly that).

It runs in two steps so that nothing is spent before the winners are safe:

1. ``check`` reads every piece of chain data and runs every check that needs no
   shared state (payment checks, the seed's layout, generation and scope, the
   fatal batch checks, signatures, the win check, expiry). It writes nothing, so
   a failure there, or in persisting the winners it returns, leaves the tickets
   unspent and the payment can be retried.
2. ``commit`` records the nonces and, in the same write, the credit they owe
   (a journal entry, ``nonces.CreditEntry``), and returns that credit for the
   caller to apply to the balance exactly once. A retry of a payment whose
   nonces were spent but whose credit may not have landed finds its journal
   entry and gets the same credit again, which the balance applies only once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from fractions import Fraction

from .encoding import ZERO_ADDRESS, checksum_address
from .errors import (
    FatalTicketError,
    InvalidExpectedPrice,
    InvalidRecipientRand,
    InvalidTicketRecipient,
    InvalidTicketSender,
    InvalidTicketSignature,
    JournaledTicketError,
    MissingExpirationParams,
    MissingSender,
    NonceAlreadySeen,
    NonceRecordMismatch,
    NonceStateChanged,
    ParamsNotForThisJob,
    PaymentError,
    RecipientInactive,
    SenderInfoUnavailable,
    SenderUnlocking,
    TicketError,
    TicketParamsExpired,
    TooManyNonces,
)
from .nonces import MAX_SENDER_NONCES, CreditEntry, NonceRecord, NonceVerdict, credit_id_for, record_nonces
from .outcomes import CheckedPayment, Commit, Validation
from .payment import Payment
from .ports import ChainData, NonceStore
from .recipient_rand import SEED_LAYOUT, RandKeys, read_seed, recipient_rand, recipient_rand_hash
from .scope import Scope
from .signature import verify_personal
from .ticket import ExpirationParams, SignedTicket, TicketParams, is_winning, nonce_hasher

__all__ = ["MAX_PARAMS_AGE", "CheckedPayment", "Commit", "PaymentValidator", "Validation"]

MAX_PARAMS_AGE = 3600.0
"""Seconds after their quote (the time in their seed) that params are refused as expired.

Params normally expire after 40 L1 blocks (8 minutes); this bound holds when the
last seen L1 block stalls, so that no ticket is accepted once its nonce record
may have been dropped by a store's wall-clock backstop (``pm_nats.NONCE_BUCKET_TTL``,
24 h), whatever the chain view says.
"""


class PaymentValidator:
    """Checks payments addressed to ``recipient`` (this orchestrator's ETH address).

    ``clock`` is compared with the issue time in each params' seed (see
    ``MAX_PARAMS_AGE``); replicas' clocks need only agree to well within it.
    """

    def __init__(
        self,
        recipient: bytes,
        secret: bytes,
        chain: ChainData,
        nonces: NonceStore,
        *,
        clock: Callable[[], float] = time.time,
        max_params_age: float = MAX_PARAMS_AGE,
        max_nonces: int = MAX_SENDER_NONCES,
    ) -> None:
        self._recipient = recipient
        self._keys = RandKeys(secret)
        self._chain = chain
        self._nonces = nonces
        self._clock = clock
        self._max_params_age = max_params_age
        self._max_nonces = max_nonces

    async def check(self, payment: Payment, scope: Scope) -> CheckedPayment:
        """Every check that writes nothing; raises PaymentError for the payment-level ones.

        ``scope`` is what the payment pays for (``Scope.of(capability, model)``
        for an AI manifest, ``Scope.base()`` for a transcoding session): params
        quoted for anything else are refused (``ParamsNotForThisJob``).

        Chain reads that fail (other than the sender lookup, which is a fatal
        ticket error as in go-livepeer) propagate as they are: nothing was written.
        """
        params = payment.params
        if params is None:
            # go-livepeer fixes a zero session price here. Baton fixes none: a payment
            # without ticket params proves nothing, and a zero price fixed by anyone
            # would make that manifest's later quotes free.
            return CheckedPayment(sender=payment.sender or ZERO_ADDRESS)
        if not payment.sender:
            raise MissingSender(
                f"recipient={checksum_address(params.recipient)} tickets={len(payment.tickets)}"
            )
        round_ = await self._chain.last_initialized_round()
        if not await self._chain.is_active_orchestrator(params.recipient, round_):
            raise RecipientInactive(checksum_address(params.recipient), round_)
        if payment.expected_price is None:
            raise InvalidExpectedPrice("expected price is nil")
        price = payment.expected_price.fraction()
        if price == 0 and params.face_value > 0:
            # Baton quotes a zero price only with zero face value and win probability.
            raise InvalidExpectedPrice("price is 0 for tickets with a face value")
        if payment.expiration_params is None:
            raise MissingExpirationParams()
        tickets = payment.tickets
        if not tickets:
            return CheckedPayment(sender=payment.sender)
        try:
            rand, generation = await self._check_batch(
                payment, params, payment.expiration_params, price, round_, scope
            )
        except (FatalTicketError, TicketParamsExpired) as error:
            return CheckedPayment(sender=payment.sender, received=len(tickets), error=error)
        last_seen_block = await self._chain.last_seen_l1_block()

        hasher = nonce_hasher(payment.ticket(tickets[0]))
        well_signed = tuple(verify_personal(payment.sender, hasher(t.sender_nonce), t.sig) for t in tickets)
        # Every well-signed winner is reported, even one whose nonce or expiry check
        # fails below, as go-livepeer queues them: the store keeps one copy per hash.
        winners = tuple(
            SignedTicket(payment.ticket(t), t.sig, rand, params.expiration_block, params.seed)
            for t, ok in zip(tickets, well_signed, strict=True)
            if ok and is_winning(t.sig, rand, params.win_prob)
        )
        return CheckedPayment(
            sender=payment.sender,
            price=price,
            received=len(tickets),
            winners=winners,
            nonce_key=params.recipient_rand_hash.hex(),
            expiration_block=params.expiration_block,
            ticket_ev=params.ev(),
            nonces=tuple(t.sender_nonce for t in tickets),
            sigs=tuple(t.sig for t in tickets),
            well_signed=well_signed,
            expired=params.expiration_block <= last_seen_block or self._too_old(params.seed),
            generation=generation,
        )

    async def commit(self, checked: CheckedPayment, balance: str) -> Commit:
        """Spend the nonces of the well-signed tickets and journal the credit they owe, in one write.

        Call it only once ``checked.winners`` are persisted. ``balance`` is the
        balance key (``balances.balance_key``) the credit goes to. Per ticket, in
        go-livepeer's order: signature, nonce, expiry; credit until the first
        error. A payment whose nonces this very payment already spent (its ack was
        lost, or the credit after it failed) gets its journaled credit back.
        ``Commit.owed`` lists the record's other entries whose credit may not have
        reached its balance yet: apply them too (``PaymentProcessor`` does).
        """
        if checked.error is not None or not checked.nonces:
            return Commit(
                Validation(
                    sender=checked.sender,
                    price=checked.price,
                    received=checked.received,
                    winners=checked.winners,
                    error=checked.error,
                )
            )
        credit_id = credit_id_for(checked.nonce_key, list(zip(checked.nonces, checked.sigs, strict=True)))
        recorded = [n for n, ok in zip(checked.nonces, checked.well_signed, strict=True) if ok]
        decided: list[Commit] = []

        def spend(record: NonceRecord) -> NonceRecord | None:
            decided.clear()
            if record.expiration_block != checked.expiration_block:
                raise NonceRecordMismatch()
            owed = tuple(c for k, c in record.credits.items() if k != credit_id)
            journaled = record.journaled(credit_id)
            if journaled is not None:
                decided.append(self._retried(checked, journaled, balance, owed))
                return None
            verdicts = record_nonces(record, recorded, self._max_nonces)
            validation = self._count(checked, iter(verdicts))
            decided.append(Commit(validation, None, owed))
            if NonceVerdict.ACCEPTED not in verdicts:
                return None  # nothing spent: nothing to write or credit
            credit = CreditEntry(
                id=credit_id,
                balance=balance,
                amount_num=validation.ev.numerator,
                amount_den=validation.ev.denominator,
                price_num=None if validation.price is None else validation.price.numerator,
                price_den=None if validation.price is None else validation.price.denominator,
                received=validation.received,
                credited=validation.credited,
                error=None if validation.error is None else validation.error.message,
                nonce_key=checked.nonce_key,
                at=self._clock(),
            )
            if not record.generation:
                record.generation = checked.generation.hex()
            record.credits[credit_id] = credit
            decided[0] = Commit(validation, credit, owed)
            return record

        try:
            await self._nonces.update(checked.nonce_key, checked.expiration_block, checked.generation, spend)
        except NonceStateChanged as error:
            return Commit(
                Validation(
                    sender=checked.sender,
                    price=None,
                    received=checked.received,
                    winners=checked.winners,
                    error=error,
                )
            )
        return decided[0]

    async def settled(self, checked: CheckedPayment, credit_ids: Collection[str]) -> None:
        """Remove journal entries whose credit reached its balance: the record no longer owes them."""
        ids = set(credit_ids)

        def drop(record: NonceRecord) -> NonceRecord | None:
            if not ids & record.credits.keys():
                return None
            record.credits = {k: c for k, c in record.credits.items() if k not in ids}
            return record

        await self._nonces.update(checked.nonce_key, checked.expiration_block, checked.generation, drop)

    def _count(self, checked: CheckedPayment, verdicts) -> Validation:
        """The Validation of ``checked`` given the nonce store's verdicts for its well-signed tickets."""
        first_error: PaymentError | None = None
        credited = 0
        for nonce, ok in zip(checked.nonces, checked.well_signed, strict=True):
            error: TicketError | None = None
            if not ok:
                error = InvalidTicketSignature()
            else:
                verdict = next(verdicts)
                if verdict is NonceVerdict.SEEN:
                    error = NonceAlreadySeen(checksum_address(checked.sender), nonce)
                elif verdict is NonceVerdict.FULL:
                    error = TooManyNonces(checksum_address(checked.sender), nonce)
                elif checked.expired:
                    error = TicketParamsExpired()
            if first_error is None:
                if error is None:
                    credited += 1
                else:
                    first_error = error
        return Validation(
            sender=checked.sender,
            price=checked.price,
            ev=checked.ticket_ev * credited,
            received=checked.received,
            credited=credited,
            winners=checked.winners,
            error=first_error,
            verified=any(checked.well_signed),
        )

    def _retried(
        self, checked: CheckedPayment, journaled: CreditEntry, balance: str, owed: tuple[CreditEntry, ...]
    ) -> Commit:
        """A payment met its own journal entry: hand its credit back, for the balance to apply once."""
        if journaled.balance != balance:
            # The same tickets offered for another balance: complete the credit where it
            # was owed, and answer this payment as the replay it is.
            return Commit(self._count(checked, iter([NonceVerdict.SEEN] * len(checked.nonces))), None, (*owed, journaled))
        price = None
        if journaled.price_num is not None and journaled.price_den is not None:
            price = Fraction(journaled.price_num, journaled.price_den)
        validation = Validation(
            sender=checked.sender,
            price=price,
            ev=Fraction(journaled.amount_num, journaled.amount_den),
            received=journaled.received,
            credited=journaled.credited,
            winners=checked.winners,
            error=None if journaled.error is None else JournaledTicketError(journaled.error),
            retried=True,
            verified=any(checked.well_signed),
        )
        return Commit(validation, journaled, owed)

    def _too_old(self, seed: int) -> bool:
        """Whether the params were quoted more than ``max_params_age`` from now (either way)."""
        return abs(self._clock() - read_seed(seed).issued_at) > self._max_params_age

    async def _check_batch(
        self,
        payment: Payment,
        params: TicketParams,
        expiration_params: ExpirationParams,
        price: Fraction,
        round_: int,
        scope: Scope,
    ) -> tuple[int, bytes]:
        """The fatal checks (sender unlocking, recipient, zero sender, seed, rand, scope), once per batch.

        Returns the rand and the generation it was made under. Params from
        another seed layout or nonce generation raise ``TicketParamsExpired``
        before the rand is checked: they may be honest params this orchestrator
        quoted before an upgrade or a reset, and gateways answer that error by
        fetching fresh params, where a rand error would make them drop us.
        """
        sender = payment.sender
        try:
            info = await self._chain.sender_info(sender)
        except Exception as exc:  # the chain port failed: go-livepeer aborts the payment
            # Only the class name reaches the gateway: the chain port's text may name an RPC URL and its key.
            raise SenderInfoUnavailable(checksum_address(sender), type(exc).__name__) from exc
        if info.withdraw_round != 0 and info.withdraw_round <= round_ + 1:
            raise SenderUnlocking(checksum_address(sender))
        if params.recipient != self._recipient:
            raise InvalidTicketRecipient()
        if sender == ZERO_ADDRESS:
            raise InvalidTicketSender()
        seed = read_seed(params.seed)
        generation = await self._nonces.generation()
        if seed.layout != SEED_LAYOUT or seed.generation_tag != self._keys.tag(generation):
            raise TicketParamsExpired()
        rand = recipient_rand(
            self._keys(generation),
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
        if seed.scope_digest != scope.digest():
            raise ParamsNotForThisJob(scope.describe())
        return rand, generation
