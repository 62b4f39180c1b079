"""The payment core: go-livepeer-compatible probabilistic micropayment tickets.

A pure library (no I/O): it reaches the chain and shared state only through
the Protocols in ``ports``. The usual wiring in a negotiator::

    secret = load_ticket_secret(settings.ticket_secret_file)
    issuer = TicketParamsIssuer(ParamsPolicy(recipient=addr), secret, chain, nonce_store)
    validator = PaymentValidator(addr, secret, chain, nonce_store)
    processor = PaymentProcessor(validator, Balances(balance_store), winning_tickets)

    price_info = price_info_for(price)                         # OrchestratorInfo.price_info
    params = await issuer.quote(sender, price_info, scope)     # OrchestratorInfo.ticket_params
    await processor.process(decode_payment_header(hdr), manifest_id, Scope.of(cap, model_id))
    await nonce_store.cleanup(last_seen_l1_block - margin)     # the chain service, on each L1 block

See docs/payments.md.
"""

from .balances import BALANCE_IDLE_TTL, Balances, balance_key
from .encoding import UINT256_MAX, ZERO_ADDRESS, ZERO_HASH, checksum_address, keccak256, mbe
from .errors import *  # noqa: F403 (the error hierarchy is part of the API)
from .errors import __all__ as _errors
from .memory import MemoryBalanceStore, MemoryNonceStore, MemoryWinningTickets
from .nonces import (
    MAX_SENDER_NONCES,
    CreditEntry,
    NonceRecord,
    NonceVerdict,
    StateMarker,
    credit_id_for,
    may_forget,
)
from .params import (
    DEFAULT_TICKET_EV,
    INT64_MAX,
    PARAMS_EXPIRATION_BLOCKS,
    REDEEM_GAS,
    REDEEM_GAS_ARBITRUM,
    ParamsPolicy,
    TicketParamsIssuer,
    price_info_for,
    win_prob_for,
)
from .payment import Payment, PriceInfo, SenderParams
from .ports import (
    BalanceEntry,
    BalanceStore,
    ChainData,
    NonceStore,
    SenderInfo,
    WinningTickets,
)
from .processor import PaymentProcessor, require_durable
from .recipient_rand import (
    GENERATION_BYTES,
    SEED_LAYOUT,
    RandKeys,
    SeedFields,
    generation_tag,
    new_seed,
    rand_key,
    rand_message,
    read_seed,
    recipient_rand,
    recipient_rand_hash,
)
from .redemption import RedemptionGate, redeem_args
from .scope import Scope
from .secret import SECRET_SETTING, load_ticket_secret, parse_ticket_secret
from .signature import address_of, personal_digest, recover_personal, sign_personal, verify_personal
from .ticket import MAX_WIN_PROB, ExpirationParams, SignedTicket, Ticket, TicketParams, is_winning, ticket_ev
from .validator import MAX_PARAMS_AGE, CheckedPayment, Commit, PaymentValidator, Validation
from .winners import WinnerPending, WinnerRecord, WinnerRedeemed, WinnerRefused, WinnerSettled
from .wire import decode_payment, decode_payment_header, payment_from_pb, payment_to_pb, ticket_params_to_pb

__all__ = [
    *_errors,
    "BALANCE_IDLE_TTL",
    "DEFAULT_TICKET_EV",
    "GENERATION_BYTES",
    "INT64_MAX",
    "MAX_PARAMS_AGE",
    "MAX_SENDER_NONCES",
    "MAX_WIN_PROB",
    "PARAMS_EXPIRATION_BLOCKS",
    "REDEEM_GAS",
    "REDEEM_GAS_ARBITRUM",
    "SECRET_SETTING",
    "SEED_LAYOUT",
    "UINT256_MAX",
    "ZERO_ADDRESS",
    "ZERO_HASH",
    "BalanceEntry",
    "BalanceStore",
    "Balances",
    "ChainData",
    "CheckedPayment",
    "Commit",
    "CreditEntry",
    "ExpirationParams",
    "MemoryBalanceStore",
    "MemoryNonceStore",
    "MemoryWinningTickets",
    "NonceRecord",
    "NonceStore",
    "NonceVerdict",
    "ParamsPolicy",
    "Payment",
    "PaymentProcessor",
    "PaymentValidator",
    "PriceInfo",
    "RandKeys",
    "RedemptionGate",
    "Scope",
    "SeedFields",
    "SenderInfo",
    "SenderParams",
    "SignedTicket",
    "StateMarker",
    "Ticket",
    "TicketParams",
    "TicketParamsIssuer",
    "Validation",
    "WinnerPending",
    "WinnerRecord",
    "WinnerRedeemed",
    "WinnerRefused",
    "WinnerSettled",
    "WinningTickets",
    "address_of",
    "balance_key",
    "checksum_address",
    "credit_id_for",
    "decode_payment",
    "decode_payment_header",
    "generation_tag",
    "is_winning",
    "keccak256",
    "load_ticket_secret",
    "may_forget",
    "mbe",
    "new_seed",
    "parse_ticket_secret",
    "payment_from_pb",
    "payment_to_pb",
    "personal_digest",
    "price_info_for",
    "rand_key",
    "rand_message",
    "read_seed",
    "recipient_rand",
    "recipient_rand_hash",
    "recover_personal",
    "redeem_args",
    "require_durable",
    "sign_personal",
    "ticket_ev",
    "ticket_params_to_pb",
    "verify_personal",
    "win_prob_for",
]
