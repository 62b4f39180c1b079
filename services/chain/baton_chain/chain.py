"""Adapter to an Ethereum JSON-RPC node."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["EthHealth", "EthUnreachable"]


class EthUnreachable(Exception):
    """The node did not answer; the message names the method and the cause, never the URL."""


class EthHealth:
    """Asks the node for its chain id and latest block; its errors never show the URL (API keys)."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.client = client

    async def _call(self, method: str) -> Any:
        try:
            resp = await self.client.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []})
        except httpx.HTTPError as exc:
            raise EthUnreachable(f"{method}: {type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise EthUnreachable(f"{method}: HTTP {resp.status_code} {resp.reason_phrase}")
        body = resp.json()
        if "error" in body:
            raise RuntimeError(f"{method}: {body['error'].get('message', body['error'])}")
        return body["result"]

    async def check(self) -> str:
        chain_id = int(await self._call("eth_chainId"), 16)
        block = int(await self._call("eth_blockNumber"), 16)
        return f"chain id {chain_id}, block {block}"
