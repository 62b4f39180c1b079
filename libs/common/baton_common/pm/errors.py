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
    "MalformedPayment",
    "MissingExpirationParams",
    "MissingSender",
    "NegativeNumber",
    "NonceAlreadySeen",
    "NumberTooLarge",
    "PaymentError",
    "QuoteError",
    "RecipientInactive",
    "RedemptionDeferred",
    "SenderInfoUnavailable",
    "SenderUnlocking",
    "StoreContention",
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


# --- payment-level checks, before any ticket ------------------------------------------


class MissingSender(PaymentError):
    code = "missing_sender"

    def __init__(self) -> None:
        super().__init__("Could not find Sender for payment")


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
    code = "sender_info_unavailable"
    status_code = 503

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


class BalanceError(ServiceError):
    code = "balance"
    status_code = 400


class InsufficientBalance(BalanceError):
    code = "insufficient_balance"

    def __init__(self) -> None:
        super().__init__("Insufficient balance")


class StoreContention(ServiceError):
    """A shared store kept changing under a compare-and-set; the caller may retry."""

    code = "store_contention"
    status_code = 503


class RedemptionDeferred(ServiceError):
    """A winning ticket is not to be redeemed now; it stays queued for a later block."""

    code = "redemption_deferred"
    status_code = 409


class TicketSecretError(ConfigError):
    """The recipientRand secret file is missing, unreadable or too short."""

    code = "ticket_secret"
