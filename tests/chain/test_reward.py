"""Reward on Livepeer's real BondingManager: exactly once in every round the orchestrator is active.

50 rounds are mined. The chain service initializes each round (-initializeRound)
and calls rewardWithHint. Along the way the orchestrator is pushed out of the
active set by a rival with more stake and comes back; the service is killed
with SIGKILL at random moments and restarted; and anvil is stopped (SIGTERM,
which saves its state) for an outage of several seconds, after which the
chain has moved on several rounds that nobody initialized. The chain's own
record is the judge: one Reward event in each initialized round where the
orchestrator was active, none elsewhere, and no failed transaction of ours.
"""

from __future__ import annotations

import random
import time

import pytest
from web3 import Web3

from .conftest import STAKE, wait_for
from .livepeer import AnvilNode, free_port, new_account

ROUNDS = 50


@pytest.fixture
def num_active() -> int:
    return 1  # one active slot, so a rival with more stake pushes the orchestrator out


@pytest.mark.timeout(600)
def test_reward_once_per_active_round_across_kills_and_an_outage(livepeer, node, chain_process, orchestrator):
    lp = livepeer
    me = orchestrator.address
    lp.register_orchestrator(me, STAKE)
    registered = lp.w3.eth.get_transaction_count(me)  # approve, bond, transcoder
    rival, _ = new_account()
    service = chain_process(BATON_CHAIN_INITIALIZE_ROUND="true")
    service.start()
    rng = random.Random(12)
    kill_rounds = set(rng.sample(range(5, ROUNDS), 4))
    outage_round = 30
    start_round = lp.round()
    expected: dict[int, bool] = {}
    first_block = lp.block()

    for step in range(ROUNDS):
        if step == 12:  # a rival with more stake takes the only active slot from the next round
            lp.register_orchestrator(rival, 2 * STAKE)
        if step == 20:  # the rival resigns; a delegator's bond brings us back from the next round
            lp.unbond_all(rival)
            delegator, _ = new_account()
            lp.delegate(delegator, me, STAKE // 10)
        round_ = lp.round() + 1
        if step == outage_round:
            node.stop()
            # Meanwhile the chain moves on three rounds that nobody initializes: the same state,
            # mined on another port the service does not know, saved again on SIGTERM.
            round_ += 3
            elsewhere = AnvilNode(free_port(), node.state)
            elsewhere.start()
            offline = Web3(Web3.HTTPProvider(elsewhere.url))
            offline.provider.make_request("anvil_mine", [hex(round_ * 100 - offline.eth.block_number)])
            elsewhere.stop()
            time.sleep(2)  # the service keeps polling a dead node
            node.start()  # at the first block of round_
        lp.mine_to_round(round_)
        if round_ - start_round in kill_rounds or step == outage_round + 1:
            time.sleep(rng.uniform(0, 0.8))
            service.kill9()
            service.start()
        wait_for(lp.RoundsManager.functions.currentRoundInitialized().call, 60, f"round {round_} initialized")
        active = lp.BondingManager.functions.isActiveTranscoder(me).call()
        expected[round_] = active
        if active:
            wait_for(lambda r=round_: lp.BondingManager.functions.getTranscoder(me).call()[0] == r, 60,
                     f"reward in round {round_}")
        else:
            time.sleep(0.6)  # three polls of the service: time enough to call reward wrongly

    time.sleep(1)
    rewards = lp.reward_events(me, first_block)
    per_round: dict[int, int] = {}
    for event in rewards:
        per_round[event["round"]] = per_round.get(event["round"], 0) + 1
    active_rounds = sorted(r for r, a in expected.items() if a)
    inactive_rounds = sorted(r for r, a in expected.items() if not a)
    assert len(active_rounds) >= 35 and len(inactive_rounds) >= 5, expected
    assert {r: per_round.get(r, 0) for r in active_rounds} == dict.fromkeys(active_rounds, 1)
    assert not set(per_round) - set(active_rounds), f"reward in rounds not active: {set(per_round) - set(active_rounds)}"
    # every transaction the orchestrator sent succeeded: the rewards plus the rounds it initialized
    sent = lp.w3.eth.get_transaction_count(me) - registered
    inits = [log for log in lp.RoundsManager.events.NewRound().get_logs(from_block=first_block)
             if lp.w3.eth.get_transaction(log["transactionHash"])["from"] == me]
    assert sent == len(rewards) + len(inits)
    assert service.starts >= 5  # the first, four kills (one may fall on the outage round) and the outage
    assert service.metric("baton_chain_last_reward_round") == max(active_rounds)
