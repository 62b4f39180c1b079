"""Who a request comes from, as the per-client limits count it.

A client is its IPv4 address, or the /64 prefix of its IPv6 address: one host
is handed a whole /64, so counting full IPv6 addresses would give a single
attacker 2^64 shares. ``CLIENT`` holds the client of the request being served
(set where a gRPC call or an HTTP request comes in), so the limits deep in a
call (the cold sender lookups under the payments core) can read it without
it being threaded through the core's ports.
"""

from __future__ import annotations

import ipaddress
from contextvars import ContextVar

__all__ = ["CLIENT", "client_key", "grpc_peer_host"]

CLIENT: ContextVar[str] = ContextVar("baton_negotiator_client", default="")
"""The client key of the request this task serves ('' when none: a task of the service's own)."""


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def client_key(host: str) -> str:
    """``host``'s client key: an IPv4 address as it is, an IPv6 one as its /64 network; an IPv6 address that
    carries an IPv4 one (IPv4-mapped, 6to4, Teredo, NAT64) as that IPv4 address, since one IPv4 host owns a
    whole 6to4 /48; anything else (a unix socket, a name) as given."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        teredo = address.teredo
        embedded = address.ipv4_mapped or address.sixtofour or (teredo[1] if teredo else None)
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return str(embedded)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def grpc_peer_host(peer: str) -> str:
    """The host in grpcio's ``context.peer()``: ``ipv4:1.2.3.4:5678``, ``ipv6:[::1]:5678`` (sometimes
    percent-encoded), ``unix:/path``."""
    kind, _, rest = peer.partition(":")
    rest = rest.replace("%5B", "[").replace("%5D", "]").replace("%5b", "[").replace("%5d", "]")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]") if rest.startswith("[") else rest
    return peer
