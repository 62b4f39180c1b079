"""What a quote covers: the (capability, model) pairs whose prices made it, or the base price.

A gateway's GetOrchestrator names the capabilities it wants; the quoted price is
the sum of those pairs' prices, or the transcoding base price when it names
none (spec/livepeer-wire.md section 4). The seed of every TicketParams carries
a digest of the scope it was quoted for, and the recipientRand HMAC covers the
seed, so a payment proves which job its price was quoted for. At payment the
caller says what the money is for (``Scope.of(capability, model)`` for the AI
manifest ``"<capability>_<model>"``, ``Scope.base()`` for a transcoding
session) and the validator refuses params quoted for anything else: a cheap
quote for one model cannot fix the price of another.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import sha256

import msgspec

__all__ = ["SCOPE_DIGEST_BITS", "Scope"]

SCOPE_DIGEST_BITS = 96
"""Bits of the scope digest a seed carries: a second preimage costs 2**96 hashes."""

_DOMAIN = b"baton/quote-scope/v1"
_MAX_CAPABILITY = 2**32 - 1


class Scope(msgspec.Struct, frozen=True, gc=False):
    """The (capability id, model id) pairs a quote priced, sorted and unique; empty for the base price."""

    pairs: tuple[tuple[int, str], ...] = ()

    @classmethod
    def base(cls) -> Scope:
        """The base (transcoding) price: the request named no priced capability."""
        return cls(())

    @classmethod
    def of(cls, capability: int, model_id: str) -> Scope:
        """One AI (capability, model) pair: what one AI job or live stream pays for."""
        return cls.from_pairs([(capability, model_id)])

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, str]]) -> Scope:
        """The scope of a quote over ``pairs`` (in any order, repeats ignored)."""
        clean = set()
        for capability, model_id in pairs:
            if not isinstance(capability, int) or not 0 <= capability <= _MAX_CAPABILITY:
                raise ValueError(f"capability id must be an unsigned 32-bit integer, got {capability!r}")
            if not isinstance(model_id, str):
                raise ValueError(f"model id must be a string, got {model_id!r}")
            clean.add((capability, model_id))
        return cls(tuple(sorted(clean)))

    def digest(self) -> int:
        """A 96-bit digest that no other scope shares: length-prefixed fields under a domain tag."""
        h = sha256(_DOMAIN)
        h.update(len(self.pairs).to_bytes(4, "big"))
        for capability, model_id in self.pairs:
            model = model_id.encode("utf-8", "surrogatepass")
            h.update(capability.to_bytes(4, "big"))
            h.update(len(model).to_bytes(4, "big"))
            h.update(model)
        return int.from_bytes(h.digest()[: SCOPE_DIGEST_BITS // 8], "big")

    def describe(self) -> str:
        """For error texts: ``base price`` or ``33_model-a, 27_model-b``."""
        if not self.pairs:
            return "the base price"
        return ", ".join(f"{capability}_{model}" for capability, model in self.pairs)
