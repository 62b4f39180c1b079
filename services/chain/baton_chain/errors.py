"""The chain service's errors, each with a machine-readable code."""

from __future__ import annotations

__all__ = [
    "ChainError",
    "EmptyResult",
    "GasPriceAboveCap",
    "InsufficientFunds",
    "NotLeaseHolder",
    "RpcNodeError",
    "RpcUnavailable",
    "Superseded",
    "TxNotMined",
    "TxReverted",
]


class ChainError(Exception):
    code = "chain_error"
    retryable = True


class RpcUnavailable(ChainError):
    """No Ethereum node answered (every URL failed or timed out)."""

    code = "rpc_unavailable"


class EmptyResult(ChainError):
    """A contract read returned no data: no contract at that address on this node (the wrong network or
    -ethController, or a node still syncing)."""

    code = "empty_result"


class RpcNodeError(ChainError):
    """Every node answered with a JSON-RPC error of its own (rate limit, ``header not found``, ``missing trie
    node``, internal error, a refused eth_getLogs range): the node's trouble, not the call's answer."""

    code = "rpc_node_error"


class InsufficientFunds(ChainError):
    """The orchestrator's key has too little ETH to pay for the transaction's gas."""

    code = "insufficient_funds_for_gas"


class TxReverted(ChainError):
    """The contract refused the call (at estimation, or the mined transaction failed)."""

    code = "reverted"

    def __init__(self, reason: str, *, tx_hash: bytes | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tx_hash = tx_hash


class GasPriceAboveCap(ChainError):
    """The network's fee is above -maxGasPrice: nothing is sent until it comes down."""

    code = "gas_price_above_cap"


class TxNotMined(ChainError):
    """No receipt within the transaction timeout and its replacements."""

    code = "tx_not_mined"


class NotLeaseHolder(ChainError):
    """Another chain instance holds the sender lease; this one sends nothing."""

    code = "not_lease_holder"


class Superseded(ChainError):
    """Not sent: a transaction of ours from before the start already did its work."""

    code = "superseded"
