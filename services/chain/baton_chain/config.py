"""Settings of the chain service (environment `BATON_CHAIN_<NAME>`)."""

from __future__ import annotations

import os
from typing import Annotated
from urllib.parse import urlsplit

from baton_common.config import CommonSettings, setting

__all__ = ["CHAIN_IDS", "CONTROLLERS", "PRICE_FEEDS", "ChainSettings"]

CONTROLLERS = {
    "arbitrum-one-mainnet": "0xD8E8328501E9645d16Cf49539efC04f734606ee4",
    "mainnet": "0xf96d54e490317c557a967abfa5d6e33006be69b3",
    "arbitrum-one-rinkeby": "0x9ceC649179e2C7Ab91688271bcD09fb707b3E574",
    "rinkeby": "0x9a9827455911a858E55f07911904fACC0D66027E",
}
"""go-livepeer's Controller address per -network (starter.go); any other network needs -ethController."""
CHAIN_IDS = {"arbitrum-one-mainnet": 42161, "mainnet": 1, "arbitrum-one-rinkeby": 421611, "rinkeby": 4}
"""The chain id each of go-livepeer's -network values must find at -ethUrl."""
PRICE_FEEDS = {"arbitrum-one-mainnet": "0x639Fe6ab55C921f74e7fac1ee960C0B6293ba612"}
"""go-livepeer's default -priceFeedAddr (Chainlink ETH/USD on Arbitrum One)."""


def _address(value: str) -> bool:
    return len(value) == 42 and value.startswith("0x") and all(c in "0123456789abcdefABCDEF" for c in value[2:])


class ChainSettings(CommonSettings, frozen=True, kw_only=True):
    http_port: Annotated[int, setting("Port of the health and metrics HTTP server.", ge=0, le=65535)] = 7937
    eth_url: Annotated[
        str, setting("Ethereum JSON-RPC URL, http:// or https:// (go-livepeer's -ethUrl); required unless network "
                     "is offchain. Several, comma-separated, fail over in order. Secret (API keys in the path): "
                     "logs show only each URL's host.", flag="ethUrl", secret=True)
    ] = ""
    eth_controller: Annotated[
        str, setting("Livepeer Controller address (-ethController); empty: go-livepeer's default for -network.",
                     flag="ethController")
    ] = ""
    eth_keystore_path: Annotated[
        str, setting("Encrypted JSON keystore file, or a folder holding it (-ethKeystorePath).",
                     flag="ethKeystorePath")
    ] = ""
    eth_password: Annotated[
        str, setting("The keystore's password, or a file holding it (-ethPassword); never logged.",
                     flag="ethPassword", secret=True)
    ] = ""
    eth_acct_addr: Annotated[
        str, setting("The orchestrator's address (-ethAcctAddr): picks the key in a keystore folder.",
                     flag="ethAcctAddr")
    ] = ""
    reward: Annotated[
        bool | None,
        setting("Call reward every round while active (-reward). Unset: on while the account is a registered "
                "orchestrator (go-livepeer decides that once at start; Baton re-checks each round).", flag="reward")
    ] = None
    initialize_round: Annotated[
        bool, setting("Initialize each round if nobody has yet (-initializeRound).", flag="initializeRound")
    ] = False
    redeem: Annotated[bool, setting("Redeem winning tickets from the winners bucket.")] = True
    max_gas_price: Annotated[
        int, setting("Cap in wei on the fee of Baton's own transactions, replacements included; 0 = none "
                     "(-maxGasPrice; not applied to face values).", flag="maxGasPrice", ge=0)
    ] = 0
    max_transaction_replacements: Annotated[
        int, setting("Times a stuck transaction is replaced with higher fees (-maxTransactionReplacements).",
                     flag="maxTransactionReplacements", ge=0)
    ] = 1
    tx_timeout: Annotated[
        float, setting("Time to wait for a receipt before replacing a transaction (-transactionTimeout): a Go "
                       "duration (`5m`, `300s`, `1m30s`) or seconds.", flag="transactionTimeout", duration=True, gt=0)
    ] = 300.0
    poll_interval: Annotated[
        float, setting("Seconds between two reads of the latest block (-blockPollingInterval).",
                       flag="blockPollingInterval", gt=0)
    ] = 5.0
    rpc_timeout: Annotated[float, setting("Seconds before an RPC call counts as failed and the next URL is tried.",
                                          gt=0)] = 10.0
    price_feed_addr: Annotated[
        str, setting("Chainlink ETH/USD aggregator (-priceFeedAddr); empty: go-livepeer's default for -network, "
                     "none elsewhere.", flag="priceFeedAddr")
    ] = ""
    price_feed_interval: Annotated[
        float, setting("Seconds between two reads of the price feed (go-livepeer: hourly); a failed read is retried "
                       "after a minute.", gt=0)
    ] = 3600.0
    redeem_gas: Annotated[
        int, setting("Gas a redemption costs, for the pre-checks; 0: 1,200,000 on Arbitrum, else 350,000.", ge=0)
    ] = 0
    nonce_cleanup_margin: Annotated[
        int, setting("L1 blocks behind the last block that nonce cleanup stays, for replicas whose view lags.",
                     ge=1)
    ] = 10
    reward_attempts: Annotated[
        int, setting("Failed reward tries within one round before the alert; reward is retried all the same "
                     "until the round ends.", ge=1)
    ] = 5
    reward_backoff: Annotated[float, setting("Seconds before the second reward try; doubles each time, up to "
                                             "reward_max_backoff.", gt=0)] = 5.0
    reward_max_backoff: Annotated[float, setting("Longest wait in seconds between two reward tries.", gt=0)] = 300.0

    @property
    def eth_urls(self) -> list[str]:
        return [u.strip() for u in self.eth_url.split(",") if u.strip()]

    @property
    def controller(self) -> str:
        return self.eth_controller or CONTROLLERS.get(self.network, "")

    @property
    def price_feed(self) -> str:
        return self.price_feed_addr or PRICE_FEEDS.get(self.network, "")

    @property
    def redeem_gas_used(self) -> int:
        return self.redeem_gas or (1_200_000 if self.network.startswith("arbitrum") else 350_000)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.network != "offchain" and not self.eth_urls:
            raise ValueError(f"network {self.network!r} needs an Ethereum node: set BATON_CHAIN_ETH_URL (-ethUrl)")
        for index, url in enumerate(self.eth_urls):
            scheme = url.split("://", 1)[0].lower() if "://" in url else ""
            if scheme in ("ws", "wss"):
                raise ValueError(f"BATON_CHAIN_ETH_URL (-ethUrl) URL #{index} is a {scheme}:// URL: Baton speaks "
                                 "JSON-RPC over http(s) only; use the provider's https:// endpoint")
            if scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ValueError(f"BATON_CHAIN_ETH_URL (-ethUrl) URL #{index} must be an http(s) URL "
                                 f"(http://host:port/...), got one starting {url[:8]!r}")
        if self.nonce_cleanup_margin < 1:
            raise ValueError("BATON_CHAIN_NONCE_CLEANUP_MARGIN must be at least 1 block")
        if self.eth_password.startswith(("/", "./", "../")) and not os.path.isfile(self.eth_password):
            raise ValueError("BATON_CHAIN_ETH_PASSWORD (-ethPassword) looks like a file path, but no such file "
                             "exists (a password file is read; a literal password must not start with / or ./)")
        if self.network == "offchain":
            return
        if not self.controller:
            raise ValueError(f"network {self.network!r} has no default Controller: set BATON_CHAIN_ETH_CONTROLLER "
                             "(-ethController)")
        for name, value in (("ETH_CONTROLLER (-ethController)", self.controller),
                            ("PRICE_FEED_ADDR (-priceFeedAddr)", self.price_feed or "0x" + "0" * 40),
                            ("ETH_ACCT_ADDR (-ethAcctAddr)", self.eth_acct_addr or "0x" + "0" * 40)):
            if not _address(value):
                raise ValueError(f"BATON_CHAIN_{name} must be a 0x-prefixed 20-byte hex address, got {value!r}")
        if not self.eth_keystore_path:
            raise ValueError("an on-chain orchestrator needs its key: set BATON_CHAIN_ETH_KEYSTORE_PATH "
                             "(-ethKeystorePath) and BATON_CHAIN_ETH_PASSWORD (-ethPassword)")
