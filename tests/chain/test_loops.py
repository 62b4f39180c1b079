"""The reward and redemption loops against fakes of Ethereum (ports of the loops): failures that must not
forfeit a round or starve other tickets."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY

import baton_chain.reward as reward_mod
from baton_chain.errors import GasPriceAboveCap
from baton_chain.reward import RewardService

from .fakes import Lease

ME = "0x" + "11" * 20


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class RewardEth:
    addresses = {"BondingManager": "0x" + "44" * 20, "RoundsManager": "0x" + "55" * 20}

    async def block(self):
        class B:
            number = 100
        return B()

    async def call(self, fn, *args, **kw):
        return {
            "RoundsManager.currentRound": 7,
            "RoundsManager.currentRoundInitialized": True,
            "RoundsManager.lastInitializedRound": 7,
            "BondingManager.getTranscoder": (6, 0, 0, 6, 1, 2**255, 0, 0, 0, 0),
            "BondingManager.isActiveTranscoder": True,
        }[fn]


class SpikySender:
    address = ME
    tx_timeout = 300.0

    def __init__(self) -> None:
        self.lease = Lease()
        self.calls: list[float] = []
        self.gas_spike = True
        self.succeeded: float | None = None

    async def wait_in_flight(self, timeout):
        return True

    async def send(self, *a, **kw):
        if self.succeeded is not None:
            raise AssertionError("reward called again after it succeeded")
        self.calls.append(reward_mod.time.monotonic())
        if self.gas_spike:
            raise GasPriceAboveCap("base fee above -maxGasPrice")
        self.succeeded = self.calls[-1]
        return {"transactionHash": b"\x01" * 32}


async def test_reward_keeps_trying_through_a_long_fee_spike_and_alerts(monkeypatch, caplog) -> None:
    now = [0.0]
    monkeypatch.setattr(reward_mod.time, "monotonic", lambda: now[0])
    sender = SpikySender()
    svc = RewardService(RewardEth(), sender, reward=True, initialize_round=False, attempts=5, backoff=5.0)

    async def hints(transcoder):
        return ("0x" + "00" * 20, "0x" + "00" * 20)
    svc.hints = hints
    errors_before = metric("livepeer_reward_call_errors")
    caplog.set_level(logging.ERROR, "baton.chain.reward")
    for _ in range(12 * 60):  # an hour of 5 s polls in the same round; fees above the cap for 40 minutes
        await svc.check()
        now[0] += 5.0
        if now[0] == 600:
            assert metric("baton_chain_reward_failed") == 1  # the operator sees it while it is still failing
            assert any("reward failing" in r.getMessage() for r in caplog.records)
        if now[0] > 40 * 60:
            sender.gas_spike = False
        if sender.succeeded is not None:
            break
    assert sender.succeeded is not None, f"{len(sender.calls)} tries, none after the spike"
    assert 40 * 60 < sender.succeeded <= 40 * 60 + 305  # tried again within the backoff cap after fees came down
    gaps = [b - a for a, b in zip(sender.calls, sender.calls[1:])]
    assert max(gaps) <= 305
    assert metric("livepeer_reward_call_errors") - errors_before == len(sender.calls) - 1
    assert metric("baton_chain_reward_failed") == 0  # cleared by the success
