"""Byte-level helpers shared by the payment core: keccak256, integers, addresses."""

from __future__ import annotations

from Crypto.Hash import keccak as _keccak

__all__ = [
    "UINT256_MAX",
    "ZERO_ADDRESS",
    "ZERO_HASH",
    "checksum_address",
    "keccak256",
    "mbe",
    "uint256",
]

UINT256_MAX = 2**256 - 1
ZERO_ADDRESS = bytes(20)
ZERO_HASH = bytes(32)

_new_keccak = _keccak.new


def keccak256(data: bytes) -> bytes:
    """Ethereum's keccak-256 (not NIST SHA3-256)."""
    return _new_keccak(data=data, digest_bits=256).digest()


def mbe(value: int) -> bytes:
    """Minimal big-endian bytes of an unsigned integer; 0 is empty (Go's ``big.Int.Bytes``)."""
    if value < 0:
        raise ValueError(f"mbe needs an unsigned integer, got {value}")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def uint256(value: int) -> bytes:
    """32-byte big-endian word (Solidity's uint256 in ``abi.encodePacked``)."""
    return value.to_bytes(32, "big")


def checksum_address(address: bytes) -> str:
    """EIP-55 mixed-case hex of a 20-byte address, as Go's ``Address.Hex()`` prints it."""
    plain = address.hex()
    digest = keccak256(plain.encode()).hex()
    return "0x" + "".join(
        ch.upper() if ch.isalpha() and int(digest[i], 16) >= 8 else ch for i, ch in enumerate(plain)
    )
