"""`baton stop <service>` and `baton start <service>`: take one service out of `baton up` and back.

`baton up` answers requests on :data:`CONTROL_SUBJECT` on its own NATS: it
stops the service's process (SIGTERM, its shutdown budget, then SIGKILL) and
does not restart it until `baton start`. The rest of the stack runs on. Only
`baton up` listens there; under compose, use `docker compose stop <service>`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import msgspec
import nats
import nats.errors

__all__ = ["CONTROL_SUBJECT", "ControlReply", "ControlRequest", "control"]

CONTROL_SUBJECT = "baton.up.control"
"""Request/reply between the `baton` CLI and `baton up` (JSON ControlRequest -> ControlReply)."""


class ControlRequest(msgspec.Struct, frozen=True, kw_only=True):
    action: str
    """``stop`` or ``start``."""
    service: str


class ControlReply(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    state: str = ""
    error: str = ""


def control(args: argparse.Namespace) -> int:
    request = ControlRequest(action=args.command, service=args.service)
    try:
        reply = asyncio.run(_request(args.nats_url, request, timeout=args.timeout))
    except (TimeoutError, nats.errors.NoServersError, OSError) as exc:
        print(f"baton {args.command}: cannot reach NATS at {args.nats_url} ({exc or 'no answer'}); "
              "is the stack running (baton up)?", file=sys.stderr)
        return 2
    except nats.errors.NoRespondersError:
        print(f"baton {args.command}: no `baton up` listens on {args.nats_url}", file=sys.stderr)
        return 2
    if not reply.ok:
        print(f"baton {args.command}: {reply.error}", file=sys.stderr)
        return 1
    print(f"{args.service}: {reply.state}")
    return 0


async def _request(url: str, request: ControlRequest, *, timeout: float) -> ControlReply:
    async def quiet(_: Exception) -> None:
        pass

    nc = await asyncio.wait_for(
        nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2, error_cb=quiet),
        timeout=3,
    )
    try:
        msg = await nc.request(CONTROL_SUBJECT, msgspec.json.encode(request), timeout=timeout)
    finally:
        await nc.close()
    return msgspec.json.decode(msg.data, type=ControlReply)
