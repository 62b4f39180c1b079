"""A gateway, as the tests play it: builds and signs payments like go-livepeer's sender.

It writes the protobuf messages itself and signs with eth-account, so the
tests check Baton's decoding and recovery against an independent implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from baton_common.proto import lp_rpc_pb2


def mbe(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def ticket_hash(
    params: lp_rpc_pb2.TicketParams,
    sender: bytes,
    nonce: int,
    expiration: lp_rpc_pb2.TicketExpirationParams,
) -> bytes:
    """The ticket hash, packed independently of baton_common.pm.ticket."""
    if expiration.creation_round == 0 and expiration.creation_round_block_hash in (b"", bytes(32)):
        aux = b""
    else:
        aux = expiration.creation_round.to_bytes(32, "big") + expiration.creation_round_block_hash.rjust(32, b"\0")
    packed = (
        params.recipient.rjust(20, b"\0")
        + sender
        + int.from_bytes(params.face_value, "big").to_bytes(32, "big")
        + int.from_bytes(params.win_prob, "big").to_bytes(32, "big")
        + nonce.to_bytes(32, "big")
        + params.recipient_rand_hash
        + aux
    )
    return keccak(packed)


@dataclass
class Gateway:
    key: bytes
    nonces: dict[bytes, int] = field(default_factory=dict)

    @classmethod
    def random(cls) -> Gateway:
        return cls(Account.create().key)

    @property
    def address(self) -> bytes:
        return bytes.fromhex(Account.from_key(self.key).address[2:])

    def sign(self, digest: bytes) -> bytes:
        return bytes(Account.sign_message(encode_defunct(primitive=digest), self.key).signature)

    def pay(
        self,
        params: lp_rpc_pb2.TicketParams,
        count: int = 1,
        *,
        price: tuple[int, int] = (1, 1),
        nonces: list[int] | None = None,
    ) -> lp_rpc_pb2.Payment:
        """A payment of ``count`` tickets against ``params`` (nonces continue per rand hash)."""
        expiration = params.expiration_params
        if nonces is None:
            start = self.nonces.get(params.recipient_rand_hash, 0)
            nonces = list(range(start + 1, start + 1 + count))
            self.nonces[params.recipient_rand_hash] = start + count
        payment = lp_rpc_pb2.Payment(sender=self.address)
        payment.ticket_params.CopyFrom(params)
        payment.expiration_params.CopyFrom(expiration)
        payment.expected_price.pricePerUnit, payment.expected_price.pixelsPerUnit = price
        for nonce in nonces:
            sig = self.sign(ticket_hash(params, self.address, nonce, expiration))
            payment.ticket_sender_params.add(sender_nonce=nonce, sig=sig)
        return payment
