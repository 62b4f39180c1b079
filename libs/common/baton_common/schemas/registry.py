"""Every bucket, stream, object store and subject Baton declares, in one place.

``docs/architecture.md`` has one row for each (a test holds the two together),
and ``baton_common.streams.ensure_all`` creates or checks every store.
"""

from __future__ import annotations

from .audit import AUDIT
from .chain import CHAIN, CHAIN_LEASE, CHAIN_TXS, SENDER_LOOKUP
from .health import HEARTBEATS, SUPERVISION
from .jobs import BODIES, JOBS
from .models import MODEL_CONTROL
from .payments import BALANCES, NONCES, WINNERS
from .pricing import PRICES
from .storage import KvSpec, ObjectStoreSpec, Spec, StreamSpec, SubjectSpec
from .workers import WORKERS

__all__ = ["ALL", "BUCKETS", "OBJECT_STORES", "STREAMS", "SUBJECTS", "STORES"]

BUCKETS: tuple[KvSpec, ...] = (HEARTBEATS, SUPERVISION, WORKERS, CHAIN, PRICES, NONCES, BALANCES, WINNERS, CHAIN_LEASE,
                                CHAIN_TXS)
STREAMS: tuple[StreamSpec, ...] = (AUDIT,)
OBJECT_STORES: tuple[ObjectStoreSpec, ...] = (BODIES,)
SUBJECTS: tuple[SubjectSpec, ...] = (JOBS, SENDER_LOOKUP, MODEL_CONTROL)
STORES: tuple[KvSpec | StreamSpec | ObjectStoreSpec, ...] = (*BUCKETS, *STREAMS, *OBJECT_STORES)
ALL: tuple[Spec, ...] = (*STORES, *SUBJECTS)
