"""Every metric of the chain service.

go-livepeer's series keep their names (counters without ``_total``, through
``LivepeerCounter``); gas prices are in gwei as go-livepeer records them.
Baton's own are ``baton_chain_*``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from baton_common.metrics import LivepeerCounter

__all__ = [
    "BAD_WINNER_RECORDS",
    "ETH_BALANCE",
    "ETH_USD",
    "ETH_USD_UPDATED",
    "LAST_REWARD_ROUND",
    "LEASE_HELD",
    "MAX_GAS_PRICE",
    "PENDING_FACE_VALUE",
    "PENDING_REDEMPTIONS",
    "PRICE_FEED_ERRORS",
    "REDEMPTION_ERRORS",
    "REWARD_ALERT",
    "REWARD_ERRORS",
    "ROUNDS_MISSED",
    "RPC_FAILOVERS",
    "SENDER_REFRESHES",
    "SUGGESTED_GAS_PRICE",
    "TICKETS_SETTLED",
    "VALUE_REDEEMED",
    "WINNING_TICKETS_RECV",
]

VALUE_REDEEMED = LivepeerCounter("livepeer_value_redeemed", "Winning ticket face value redeemed, in wei",
                                 ["sender"])
REDEMPTION_ERRORS = LivepeerCounter("livepeer_ticket_redemption_errors", "Failed ticket redemption attempts",
                                    ["sender"])
REWARD_ERRORS = LivepeerCounter("livepeer_reward_call_errors", "Failed reward calls")
WINNING_TICKETS_RECV = Counter(
    "baton_chain_winning_tickets_seen",
    "Winning tickets this chain instance found pending (a restart counts the still-pending ones again; "
    "the negotiator counts winners received as livepeer_winning_tickets_recv)",
    ["sender"],
)
SUGGESTED_GAS_PRICE = Gauge("livepeer_suggested_gas_price", "The node's suggested gas price, in gwei")
MAX_GAS_PRICE = Gauge("livepeer_max_gas_price", "-maxGasPrice, in gwei (0 = no cap)")

LAST_REWARD_ROUND = Gauge("baton_chain_last_reward_round", "The orchestrator's last reward round on chain")
ROUNDS_MISSED = Counter("baton_chain_rounds_missed", "Rounds that ended active and without this orchestrator's reward")
REWARD_ALERT = Gauge("baton_chain_reward_failed",
                     "1 while reward has failed reward_attempts times in the current round (it is still retried), else 0")
PENDING_REDEMPTIONS = Gauge("baton_chain_pending_redemptions", "Winning tickets waiting for redemption")
BAD_WINNER_RECORDS = Gauge("baton_chain_bad_winner_records",
                           "Records in the winners bucket that do not decode, skipped by redemption (keys logged)")
PENDING_FACE_VALUE = Gauge("baton_chain_pending_face_value_wei", "Face value of the winning tickets waiting, in wei")
TICKETS_SETTLED = Counter("baton_chain_tickets_settled", "Winning tickets settled, by result", ["result"])
ETH_BALANCE = Gauge("baton_chain_eth_balance_wei", "ETH balance of the orchestrator's key, in wei")
LEASE_HELD = Gauge("baton_chain_sender_lease_held", "1 while this instance holds the sender lease")
RPC_FAILOVERS = Counter("baton_chain_rpc_failovers", "Switches to another Ethereum JSON-RPC URL")
ETH_USD = Gauge("baton_chain_eth_usd", "The price feed's last good ETH/USD rate (0: none read yet)")
ETH_USD_UPDATED = Gauge("baton_chain_eth_usd_updated_at_seconds",
                        "The price feed's own update time of that rate (Unix seconds)")
PRICE_FEED_ERRORS = Counter("baton_chain_price_feed_errors",
                            "Price feed reads that failed (revert, RPC error, bad answer); eth-usd kept its last value")
SENDER_REFRESHES = Counter("baton_chain_sender_event_refreshes",
                           "Sender funds re-read because a TicketBroker event moved them")
