"""A /segment body of type application/vnd+livepeer.uri: the segment fetched from the URL it names."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable

import httpx

from .errors import BadInput

__all__ = ["MAX_SEGMENT_BYTES", "SEGMENT_FETCH_TIMEOUT", "fetch_segment"]

MAX_SEGMENT_BYTES = 300_000_000
"""The spec's /segment body limit, fetched bodies too."""
SEGMENT_FETCH_TIMEOUT = 8.0


async def fetch_segment(body: bytes, *, allow_private: bool = False,
                        hold: Callable[[int], None] = lambda _: None) -> bytes:
    """go-livepeer: a /segment body of type application/vnd+livepeer.uri is a URL to fetch (400 past 8 s,
    resolving and connecting included). ``hold`` counts each chunk in the body budget as it arrives (503 past it).

    The host is resolved here and the request pinned to that address; unless ``allow_private``, an address
    that is not public (loopback, private, link-local, multicast, unspecified, reserved) is refused with 400.
    """
    text = body.decode("utf-8", "replace").strip()
    if not text.startswith(("http://", "https://")):
        raise BadInput("segment URI must be an http(s) URL")
    try:
        url = httpx.URL(text)
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
    except (httpx.InvalidURL, ValueError):
        raise BadInput("segment URI must be an http(s) URL") from None
    if not host:
        raise BadInput("segment URI must be an http(s) URL")
    try:
        async with asyncio.timeout(SEGMENT_FETCH_TIMEOUT):
            return await _fetch(url, host, port, allow_private=allow_private, hold=hold)
    except TimeoutError:
        raise BadInput(f"could not fetch the segment within {SEGMENT_FETCH_TIMEOUT:g} s") from None


async def _fetch(url: httpx.URL, host: str, port: int, *, allow_private: bool, hold: Callable[[int], None]) -> bytes:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]
    except (OSError, ValueError):
        raise BadInput("could not fetch the segment: the host does not resolve") from None
    if not addresses:
        raise BadInput("could not fetch the segment: the host does not resolve")
    if not allow_private and not all(_public(a) for a in addresses):
        raise BadInput("segment URI refused: its host resolves to a loopback, private, link-local, multicast or "
                       "unspecified address")
    pinned = url.copy_with(host=str(addresses[0]))
    headers = {"Host": host if url.port is None else f"{host}:{url.port}"}
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    try:
        async with httpx.AsyncClient(timeout=SEGMENT_FETCH_TIMEOUT, follow_redirects=False) as client:
            async with client.stream("GET", pinned, headers=headers, extensions=extensions) as r:
                if r.status_code != 200:
                    raise BadInput(f"could not fetch the segment: status {r.status_code}")
                chunks, size = [], 0
                async for chunk in r.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_SEGMENT_BYTES:
                        raise BadInput("the fetched segment is too large")
                    hold(len(chunk))
                    chunks.append(chunk)
                return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise BadInput(f"could not fetch the segment: {type(exc).__name__}") from None


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast
