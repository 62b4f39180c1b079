"""Ethereum personal-sign signatures over 32-byte digests, through libsecp256k1.

Spec/livepeer-wire.md section 3.1: 65 bytes R || S || V with V in {27, 28}; a
high S (> n/2) is refused, as go-livepeer's verifier and OpenZeppelin's ECDSA do.
The digest recovered is keccak256("\\x19Ethereum Signed Message:\\n32" || m).
"""

from __future__ import annotations

import coincurve

from .encoding import keccak256
from .errors import InvalidSignature

__all__ = [
    "SECP256K1_N",
    "address_of",
    "personal_digest",
    "recover_personal",
    "sign_personal",
    "verify_personal",
]

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2
_PREFIX = b"\x19Ethereum Signed Message:\n32"

_from_signature = coincurve.PublicKey.from_signature_and_message


def personal_digest(message: bytes) -> bytes:
    """The digest a personal-sign signature over the 32-byte ``message`` signs."""
    if len(message) != 32:
        raise ValueError(f"personal-sign covers a 32-byte digest, got {len(message)} bytes")
    return keccak256(_PREFIX + message)


def _address_of_public(public: bytes) -> bytes:
    return keccak256(public[1:])[12:]


def address_of(private_key: bytes) -> bytes:
    """The 20-byte Ethereum address of a 32-byte secp256k1 private key."""
    public = coincurve.PrivateKey(private_key).public_key.format(compressed=False)
    return _address_of_public(public)


def recover_personal(message: bytes, sig: bytes) -> bytes:
    """The address that personal-signed the 32-byte ``message``; raises InvalidSignature."""
    if len(sig) != 65:
        raise InvalidSignature("invalid signature length")
    if int.from_bytes(sig[32:64], "big") > _HALF_N:
        raise InvalidSignature("signature s value too high")
    v = sig[64]
    if v != 27 and v != 28:
        raise InvalidSignature("signature v value must be 27 or 28")
    try:
        public = _from_signature(sig[:64] + bytes((v - 27,)), personal_digest(message), hasher=None)
    except Exception as exc:  # libsecp256k1 refuses r or s of 0 or >= n, or no point
        raise InvalidSignature("signature does not recover a public key") from exc
    return _address_of_public(public.format(compressed=False))


def verify_personal(address: bytes, message: bytes, sig: bytes) -> bool:
    """Whether ``sig`` is ``address``'s valid personal-sign signature over ``message``."""
    try:
        return recover_personal(message, sig) == address
    except InvalidSignature:
        return False


def sign_personal(private_key: bytes, message: bytes) -> bytes:
    """Personal-sign the 32-byte ``message``: 65 bytes, low S, V of 27 or 28."""
    sig = coincurve.PrivateKey(private_key).sign_recoverable(personal_digest(message), hasher=None)
    return sig[:64] + bytes((sig[64] + 27,))
