"""The payment buckets: declarations only. Their values and stores are the pm core's.

``baton_common.pm`` defines the values and ``baton_common.pm_nats`` the stores;
this module names the buckets and fixes their configuration, from the
constants those modules own, so every replica binds the same ones.

Winning tickets stay one KV entry per ticket hash, and one store: the value is
``pm.WinnerRecord``, a tagged union of ``WinnerPending`` (the ticket, written
by the negotiator with ``create``), ``WinnerRedeemed`` (with the tx hash) and
``WinnerRefused`` (with the reason). The chain's redeemer settles an entry by
compare-and-set ``update`` and never deletes it: NATS KV lets ``create``
succeed on a deleted key, so keeping the settled record is what makes a
replayed ticket's ``create`` fail.
"""

from __future__ import annotations

from ..pm.balances import BALANCE_IDLE_TTL
from ..pm_nats import MAX_VALUE_BYTES, NONCE_BUCKET_TTL
from .storage import KvSpec

__all__ = ["BALANCES", "BALANCES_BUCKET", "NONCES", "NONCES_BUCKET", "WINNERS", "WINNERS_BUCKET"]

NONCES_BUCKET = "baton-pm-nonces"
BALANCES_BUCKET = "baton-pm-balances"
WINNERS_BUCKET = "baton-pm-winners"

NONCES = KvSpec(
    bucket=NONCES_BUCKET,
    key="<recipientRandHash hex>",
    ttl=NONCE_BUCKET_TTL,
    history=1,
    max_value_size=MAX_VALUE_BYTES,
    writer="negotiator (add); chain (cleanup by L1 block)",
    readers=("negotiator",),
    schema="baton_common.pm.NonceRecord",
    purpose="sender nonces seen per recipientRand; records go by block, the TTL is a backstop",
)

BALANCES = KvSpec(
    bucket=BALANCES_BUCKET,
    key="<sender hex>.<manifest hash>",
    ttl=BALANCE_IDLE_TTL,
    history=1,
    max_value_size=MAX_VALUE_BYTES,
    writer="negotiator",
    readers=("negotiator", "monitor"),
    schema="baton_common.pm.BalanceEntry",
    purpose="credit per (sender, manifest) and the session's fixed price; idle ones expire",
)

WINNERS = KvSpec(
    bucket=WINNERS_BUCKET,
    key="<ticket hash hex>",
    ttl=None,
    history=1,
    max_value_size=MAX_VALUE_BYTES,
    writer="negotiator (create WinnerPending); chain redeemer (CAS update to WinnerRedeemed | WinnerRefused)",
    readers=("chain", "monitor"),
    schema="baton_common.pm.WinnerRecord",
    purpose="one entry per winning ticket, pending then settled, never deleted, so a replay's create fails",
)
