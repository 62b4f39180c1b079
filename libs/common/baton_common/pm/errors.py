"""Every error the payment core raises, each with a machine-readable ``code``.

Messages that gateways see reuse go-livepeer's texts (spec/livepeer-wire.md
section 3), because gateways match on some of them (``TicketParams expired``,
``invalid ticket senderNonce``, ``insufficient sender reserve``). Baton's own code
matches on the class or ``code``, never on the text.

Ticket errors come in two kinds, as in go-livepeer's ``ReceiveTicket``:
``FatalTicketError`` aborts the whole payment; ``TicketError`` (non-fatal) stops
crediting the tickets after it, while the payment is still processed.
"""

from __future__ import annotations

from baton_common.errors import ConfigError, ServiceError

__all__ = [
    "BalanceError",
    "FatalTicketError",
    "InsufficientBalance",
    "InsufficientSenderReserve",
    "InvalidExpectedPrice",
    "InvalidLength",
    "InvalidRecipientRand",
    "InvalidSignature",
    "InvalidTicketRecipient",
    "InvalidTicketSender",
    "InvalidTicketSignature",
    "JournaledTicketError",
    "MalformedPayment",
    "MissingExpirationParams",
    "MissingField",
    "MissingSender",
    "NegativeNumber",
    "NoRoundBlockHash",
    "NonceAlreadySeen",
    "NonceRecordMismatch",
    "NonceStateChanged",
    "NumberTooLarge",
    "ParamsNotForThisJob",
    "PaymentError",
    "QuoteError",
    "RecipientInactive",
    "RedemptionDeferred",
    "SenderInfoUnavailable",
    "SenderUnlocking",
    "StoreContention",
    "StoreValueTooLarge",
    "TicketError",
    "TicketParamsExpired",
    "TicketSecretError",
    "TooManyNonces",
    "UndecodablePayment",
    "ZeroAddress",
]


class PaymentError(ServiceError):
    """A payment was refused; nothing after the error was credited."""

    code = "payment"
    status_code = 400
    fatal = True


# --- malformed input (the wire layer) -------------------------------------------------


class MalformedPayment(PaymentError):
    """The payment does not decode into a well-formed ticket batch; ``field`` names the culprit."""

    code = "malformed_payment"
    status_code = 402

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"malformed payment: {field} {reason}")
        self.field = field
        self.reason = reason


class UndecodablePayment(MalformedPayment):
    code = "undecodable_payment"


class InvalidLength(MalformedPayment):
    code = "invalid_length"


class NumberTooLarge(MalformedPayment):
    code = "number_too_large"


class NegativeNumber(MalformedPayment):
    code = "negative_number"


class ZeroAddress(MalformedPayment):
    code = "zero_address"


class MissingField(MalformedPayment):
    """A field the message cannot do without is absent (or all zero, which proto3 cannot tell apart)."""

    code = "missing_field"


# --- payment-level checks, before any ticket ------------------------------------------


class MissingSender(PaymentError):
    """go-livepeer's text is ``Could not find Sender for payment: %v`` of the whole Payment.

    Go prints the struct's internals there, which have no stable form; Baton keeps
    the fixed prefix and follows it with what identifies the payment.
    """

    code = "missing_sender"

    def __init__(self, payment: str = "") -> None:
        super().__init__(f"Could not find Sender for payment: {payment}")


class RecipientInactive(PaymentError):
    code = "recipient_inactive"

    def __init__(self, recipient_hex: str, round_: int) -> None:
        super().__init__(
            f"orchestrator {recipient_hex} is inactive in round {round_}, cannot process payments"
        )


class InvalidExpectedPrice(PaymentError):
    code = "invalid_expected_price"

    def __init__(self, reason: str) -> None:
        super().__init__(f'invalid expected price sent with payment err="{reason}"')
        self.reason = reason


class MissingExpirationParams(PaymentError):
    code = "missing_expiration_params"

    def __init__(self) -> None:
        super().__init__("invalid payment: missing expiration params")


# --- per-ticket errors ----------------------------------------------------------------


class FatalTicketError(PaymentError):
    """A ticket check that fails for the whole batch (go-livepeer's FatalReceiveErr)."""

    code = "fatal_ticket"


class SenderInfoUnavailable(FatalTicketError):
    """The chain port could not say whether the sender is unlocking.

    A ProcessPayment failure like any other: 400 with the text (spec section 2),
    as go-livepeer answers when its sender lookup fails. The gateway may retry.
    """

    code = "sender_info_unavailable"

    def __init__(self, sender_hex: str, reason: str) -> None:
        super().__init__(f"could not get sender info for {sender_hex}: {reason}")


class SenderUnlocking(FatalTicketError):
    code = "sender_unlocking"

    def __init__(self, sender_hex: str) -> None:
        super().__init__(f"deposit and reserve for sender {sender_hex} is set to unlock soon")


class InvalidTicketRecipient(FatalTicketError):
    code = "invalid_ticket_recipient"

    def __init__(self) -> None:
        super().__init__("invalid ticket recipient")


class InvalidTicketSender(FatalTicketError):
    code = "invalid_ticket_sender"

    def __init__(self) -> None:
        super().__init__("invalid ticket sender")


class InvalidRecipientRand(FatalTicketError):
    code = "invalid_recipient_rand"

    def __init__(self) -> None:
        super().__init__("invalid recipientRand for ticket recipientRandHash")


class ParamsNotForThisJob(FatalTicketError):
    """Authentic params, quoted for other capabilities than the payment is for (see ``scope.Scope``)."""

    code = "params_not_for_this_job"

    def __init__(self, paying: str) -> None:
        super().__init__(f"invalid ticket params: they were not quoted for {paying}")


class NonceRecordMismatch(FatalTicketError):
    """The nonce record under this recipientRandHash belongs to params with another expiration block."""

    code = "nonce_record_mismatch"

    def __init__(self) -> None:
        super().__init__("invalid ticket params: expiration block does not match the recipientRandHash's")


class TicketError(PaymentError):
    """A non-fatal ticket error: this ticket and the ones after it are not credited."""

    code = "ticket"
    fatal = False


class InvalidTicketSignature(TicketError):
    code = "invalid_ticket_signature"

    def __init__(self) -> None:
        super().__init__("invalid ticket signature")


class NonceAlreadySeen(TicketError):
    code = "nonce_already_seen"

    def __init__(self, sender_hex: str, nonce: int) -> None:
        super().__init__(f"invalid ticket senderNonce: already seen sender={sender_hex} nonce={nonce}")
        self.nonce = nonce


class TooManyNonces(TicketError):
    code = "too_many_nonces"

    def __init__(self, sender_hex: str, nonce: int) -> None:
        super().__init__(f"invalid ticket senderNonce: too many values sender={sender_hex} nonce={nonce}")
        self.nonce = nonce


class TicketParamsExpired(TicketError):
    code = "ticket_params_expired"

    def __init__(self) -> None:
        super().__init__("TicketParams expired")


class NonceStateChanged(TicketParamsExpired):
    """The nonce state was reset or cleaned under these params: they prove nothing any more.

    Gateways see ``TicketParams expired`` and fetch fresh params.
    """

    code = "nonce_state_changed"


class JournaledTicketError(TicketError):
    """A retried payment whose journaled credit carried a ticket error: the same text again."""

    code = "journaled_ticket_error"


# --- outside payment validation -------------------------------------------------------


class InvalidSignature(ServiceError):
    """A signature that fails the 65-byte, V in {27,28}, low-S rules or does not recover."""

    code = "invalid_signature"
    status_code = 400


class QuoteError(ServiceError):
    """Ticket parameters cannot be quoted for this sender."""

    code = "quote"
    status_code = 503


class InsufficientSenderReserve(QuoteError):
    code = "insufficient_sender_reserve"

    def __init__(self) -> None:
        super().__init__("insufficient sender reserve")


class NoRoundBlockHash(QuoteError):
    """Neither the last initialized round nor the one before has an L1 block hash.

    Tickets carry the creation round's block hash and TicketBroker only redeems
    them against the stored one, so params quoted now could never be redeemed.
    """

    code = "no_round_block_hash"

    def __init__(self, round_: int) -> None:
        super().__init__(f"no L1 block hash for round {round_} or {round_ - 1}; cannot quote redeemable tickets")
        self.round = round_


class BalanceError(ServiceError):
    code = "balance"
    status_code = 400


class InsufficientBalance(BalanceError):
    code = "insufficient_balance"

    def __init__(self) -> None:
        super().__init__("Insufficient balance")


class StoreContention(ServiceError):
    """A shared store could not be written before the deadline (conflicts or timeouts); retry.

    Raised only before anything is spent, or after a spend whose credit is
    journaled: a retry of the same payment completes that credit exactly once.
    """

    code = "store_contention"
    status_code = 503


class StoreValueTooLarge(ServiceError):
    """A store value would pass the buckets' max value size: refused before it is sent."""

    code = "store_value_too_large"
    status_code = 500


class RedemptionDeferred(ServiceError):
    """A winning ticket is not to be redeemed now; it stays queued for a later block."""

    code = "redemption_deferred"
    status_code = 409


class TicketSecretError(ConfigError):
    """The recipientRand secret file is missing, unreadable or too short."""

    code = "ticket_secret"
