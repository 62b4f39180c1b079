"""The payment ports over NATS JetStream KV, shared by every negotiator replica.

Each store takes an already-bound nats-py ``KeyValue`` (bind them with the
declared bucket configurations, which are checked on bind). Writes are
compare-and-set (``create`` when the key is new, ``update(last=revision)``
otherwise). Within a process, writes to one key are serialized; across
processes a conflict is retried with jittered exponential backoff until a
deadline. A timeout is retried the same way: the next read shows whether the
write landed (``change`` is re-applied to what is there, and the payment
stores' changes recognise their own journal entries and credit ids), so a
write whose ack was lost is neither lost nor applied twice.

Buckets (see ``baton_common.schemas`` for the declarations):

- nonces: ``ttl=NONCE_BUCKET_TTL`` (24 h), a backstop only. Records are dropped by
  L1 block: the chain service calls ``KvNonceStore.cleanup(block)`` on each new
  block. The bucket also holds the state marker (``STATE_KEY``: the generation
  and the cleanup mark), so the generation is lost exactly when the records are.
  Cleanup rewrites the marker on every block; if it lapses (24 h with no
  cleanup), a new generation is made, which only voids params long expired.
- balances: ``ttl=BALANCE_IDLE_TTL`` (600 s), which is exactly the idle expiry,
  on the server's clock (``KvBalanceStore.expires_idle``).
- winning tickets: no ttl; one record per ticket hash, pending then settled, never deleted.

Keys are bounded (``MAX_KEY_LENGTH``) before anything is sent: a key too long
for the protocol line makes nats-server drop the whole connection.
"""
from .core import (
    MAX_KEY_LENGTH,
    MAX_MARK_JUMP,
    MAX_VALUE_BYTES,
    NONCE_BUCKET_TTL,
    STATE_KEY,
    STORE_DEADLINE,
)
from .nonces import KvNonceStore
from .stores import KvBalanceStore, KvWinningTickets

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_MARK_JUMP",
    "MAX_VALUE_BYTES",
    "NONCE_BUCKET_TTL",
    "STATE_KEY",
    "STORE_DEADLINE",
    "KvBalanceStore",
    "KvNonceStore",
    "KvWinningTickets",
]
