"""Settings of the chain service (environment `BATON_CHAIN_<NAME>`)."""

from __future__ import annotations

from typing import Annotated

from baton_common.config import CommonSettings, setting

__all__ = ["ChainSettings"]


class ChainSettings(CommonSettings, frozen=True, kw_only=True):
    http_port: Annotated[int, setting("Port of the health and metrics HTTP server.", ge=0, le=65535)] = 7937
    eth_url: Annotated[
        str, setting("Ethereum JSON-RPC URL (go-livepeer's -ethUrl); required unless network is offchain.",
                     flag="ethUrl")
    ] = ""

    def __post_init__(self) -> None:
        if self.network != "offchain" and not self.eth_url:
            raise ValueError(f"network {self.network!r} needs an Ethereum node: set BATON_CHAIN_ETH_URL (-ethUrl)")
        if self.eth_url and not self.eth_url.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError(f"BATON_CHAIN_ETH_URL (-ethUrl) must be an http(s) or ws(s) URL, got {self.eth_url!r}")
