"""Tickets: tight packing, hash, aux data, EV and the win check."""

from __future__ import annotations

from fractions import Fraction

from eth_abi.packed import encode_packed
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from baton_common.pm import MAX_WIN_PROB, ExpirationParams, Ticket, is_winning, ticket_ev
from baton_common.pm.ticket import nonce_hasher

uint256 = st.integers(0, 2**256 - 1)
address = st.binary(min_size=20, max_size=20)
hash32 = st.binary(min_size=32, max_size=32)

tickets = st.builds(
    Ticket,
    recipient=address,
    sender=address,
    face_value=uint256,
    win_prob=uint256,
    sender_nonce=st.integers(0, 2**32 - 1),
    recipient_rand_hash=hash32,
    creation_round=st.integers(0, 2**63 - 1),
    creation_round_block_hash=hash32,
)


@given(tickets)
def test_hash_is_keccak_of_solidity_encode_packed(ticket: Ticket) -> None:
    aux = ticket.aux_data()
    expected = keccak(
        encode_packed(
            ["address", "address", "uint256", "uint256", "uint256", "bytes32", "bytes"],
            [
                ticket.recipient,
                ticket.sender,
                ticket.face_value,
                ticket.win_prob,
                ticket.sender_nonce,
                ticket.recipient_rand_hash,
                aux,
            ],
        )
    )
    assert ticket.hash() == expected
    assert len(ticket.packed()) == (232 if aux else 168)


@given(tickets, st.lists(st.integers(0, 2**32 - 1), max_size=5))
def test_batch_hashing_matches_one_by_one(ticket: Ticket, nonces: list[int]) -> None:
    hasher = nonce_hasher(ticket)
    fields = {f: getattr(ticket, f) for f in ticket.__struct_fields__}
    for nonce in nonces:
        assert hasher(nonce) == Ticket(**(fields | {"sender_nonce": nonce})).hash()


def test_aux_data_is_round_then_block_hash_or_nothing() -> None:
    assert ExpirationParams(0, bytes(32)).aux_data() == b""
    aux = ExpirationParams(7, b"\xab" * 32).aux_data()
    assert aux == (7).to_bytes(32, "big") + b"\xab" * 32
    # A zero round with a non-zero hash (or the reverse) still carries aux data.
    assert len(ExpirationParams(0, b"\x01" * 32).aux_data()) == 64
    assert len(ExpirationParams(1, bytes(32)).aux_data()) == 64


@given(uint256, uint256)
def test_ev_is_an_exact_fraction(face_value: int, win_prob: int) -> None:
    ev = ticket_ev(face_value, win_prob)
    assert isinstance(ev, Fraction)
    assert ev * MAX_WIN_PROB == face_value * win_prob


def test_ev_edges() -> None:
    assert ticket_ev(10**18, MAX_WIN_PROB) == 10**18
    assert ticket_ev(10**18, 0) == 0
    assert ticket_ev(1000, MAX_WIN_PROB // 2) == Fraction(1000 * (MAX_WIN_PROB // 2), MAX_WIN_PROB)


@given(st.binary(min_size=65, max_size=65), uint256, uint256)
def test_win_check_compares_keccak_of_sig_and_rand(sig: bytes, rand: int, win_prob: int) -> None:
    draw = int.from_bytes(keccak(sig + rand.to_bytes(32, "big")), "big")
    assert is_winning(sig, rand, win_prob) == (draw < win_prob)
    assert not is_winning(sig, rand, 0)
    assert not is_winning(sig, rand, draw)
    assert is_winning(sig, rand, draw + 1)
