"""The chain service's rules, without I/O: when to reward, the pool hints, what a redemption failure means."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "NON_RETRYABLE",
    "RefusalCode",
    "Transcoder",
    "classify_revert",
    "pool_hints",
    "reward_amount",
    "should_reward",
]

ZERO = "0x" + "00" * 20


@dataclass(frozen=True)
class Transcoder:
    """The fields of BondingManager.getTranscoder the service needs."""

    last_reward_round: int
    last_active_stake_update_round: int
    activation_round: int
    deactivation_round: int

    @classmethod
    def of(cls, raw: tuple) -> Transcoder:
        return cls(last_reward_round=raw[0], last_active_stake_update_round=raw[3],
                   activation_round=raw[4], deactivation_round=raw[5])

    def active_in(self, round_: int) -> bool:
        return self.activation_round <= round_ < self.deactivation_round and self.activation_round > 0


def should_reward(transcoder: Transcoder, active: bool, last_initialized_round: int, current_round: int) -> bool:
    """go-livepeer's rule (spec 5): LastRewardRound < lastInitializedRound and Active; only in an initialized round."""
    return active and last_initialized_round == current_round and transcoder.last_reward_round < current_round


def reward_amount(mintable: int, active_stake: int, total_active_stake: int) -> int:
    """The reward this orchestrator will mint: its share of the round's mintable tokens."""
    if total_active_stake == 0:
        return 0
    return mintable * active_stake // total_active_stake


def pool_hints(me: str, new_stake: int, pool: list[tuple[str, int]], max_size: int) -> tuple[str, str]:
    """(prev, next) for rewardWithHint: the pool re-sorted by stake, descending, with ``me`` at ``new_stake``.

    ``pool`` is the transcoder pool in its on-chain order (highest stake first).
    If the pool is full and ``me`` is not in it, the tail drops out, as go-livepeer
    simulates. Zero addresses where there is no neighbour.
    """
    me_l = me.lower()
    others = [(a, s) for a, s in pool if a.lower() != me_l]
    if len(others) == len(pool) and max_size and len(pool) >= max_size:
        others = others[:-1]
    # insert after every transcoder with stake >= new_stake (ties keep the existing order first)
    at = 0
    while at < len(others) and others[at][1] >= new_stake:
        at += 1
    prev = others[at - 1][0] if at > 0 else ZERO
    nxt = others[at][0] if at < len(others) else ZERO
    return prev, nxt


class RefusalCode:
    """``WinnerRefused.code`` values the redeemer writes."""

    USED = "ticket_used"
    EXPIRED = "ticket_expired"
    UNDERFUNDED = "sender_underfunded"
    NO_BLOCK_HASH = "no_round_block_hash"
    REVERTED = "reverted"
    INVALID = "invalid_ticket"


NON_RETRYABLE: dict[str, str] = {
    "ticket is used": RefusalCode.USED,
    "ticket is expired": RefusalCode.EXPIRED,
    "ticket creationRound does not have a block hash": RefusalCode.NO_BLOCK_HASH,
    "creationRoundBlockHash invalid": RefusalCode.INVALID,
    "ECDSA: invalid signature": RefusalCode.INVALID,
    "recipientRand does not match recipientRandHash": RefusalCode.INVALID,
    "invalid signature over ticket hash": RefusalCode.INVALID,
    "ticket did not win": RefusalCode.INVALID,
    "ticket recipient is null address": RefusalCode.INVALID,
    "ticket sender is null address": RefusalCode.INVALID,
    "sender is unlocked": RefusalCode.UNDERFUNDED,
    "sender deposit and reserve are zero": RefusalCode.UNDERFUNDED,
    "auxData: must be 64 bytes": RefusalCode.INVALID,
}
"""TicketBroker's revert reasons after which a ticket can never redeem (matched inside the reason)."""


def classify_revert(reason: str) -> str | None:
    """The refusal code for a revert reason TicketBroker gives for good, or None (retry later)."""
    for text, code in NON_RETRYABLE.items():
        if text in reason:
            return code
    return None
