"""`baton status`: every service instance, from the heartbeat bucket.

A service is down when none of its instances heartbeated within three
intervals (6 s); then the command exits 1. When `baton up` supervises the
stack, its view of each process (restarts, crash loop) is shown too.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import TypeVar

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from rich.console import Console
from rich.table import Table

from baton_common.bus import read_bucket_as
from baton_common.config import SERVICES
from baton_common.health import ServiceStatus, is_fresh, summarize
from baton_common.schemas import HEARTBEAT_BUCKET, SUPERVISION_BUCKET, Heartbeat, Supervision

__all__ = ["status"]

T = TypeVar("T", bound=msgspec.Struct)


class Report(msgspec.Struct, frozen=True):
    ok: bool
    services: dict[str, ServiceStatus]
    supervision: dict[str, Supervision]


def status(args: argparse.Namespace) -> int:
    if getattr(args, "watch", False):
        return _watch(args)
    return _once(args)


def _watch(args: argparse.Namespace) -> int:
    """Redraw the table every ``args.interval`` seconds until Ctrl-C; the exit code is the last draw's."""
    code = 0
    try:
        while True:
            Console().clear()
            code = _once(args)
            time.sleep(max(0.2, args.interval))
    except KeyboardInterrupt:
        return code


def _once(args: argparse.Namespace) -> int:
    try:
        report = asyncio.run(_read(args.nats_url))
    except (TimeoutError, nats.errors.NoServersError, OSError) as exc:
        why = str(exc) or "no answer"
        print(f"baton status: cannot reach NATS at {args.nats_url} ({why}); is the stack running (baton up)?",
              file=sys.stderr)
        return 2
    except nats.errors.Error as exc:  # reached, but JetStream is off or refuses us
        print(f"baton status: NATS at {args.nats_url} cannot serve the heartbeat bucket: {exc!r} "
              "(is JetStream enabled?)", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        _print(report)
    return 0 if report.ok else 1


async def _read(url: str) -> Report:
    async def quiet(_: Exception) -> None:
        pass

    nc = await asyncio.wait_for(
        nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2, error_cb=quiet),
        timeout=3,
    )
    try:
        js = nc.jetstream()
        beats = await _values(js, HEARTBEAT_BUCKET, Heartbeat)
        sup = {s.service: s for s in await _values(js, SUPERVISION_BUCKET, Supervision)}
    finally:
        await nc.close()
    services = summarize(beats, SERVICES, time.time())
    return Report(ok=all(s.up for s in services.values()), services=services, supervision=sup)


async def _values(js: JetStreamContext, bucket: str, type_: type[T]) -> list[T]:
    try:
        kv = await js.key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        return []
    return await read_bucket_as(kv, type_)


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _print(report: Report) -> None:
    now = time.time()
    t = Table(title_justify="left")
    for col in ("service", "instance", "state", "age", "last heartbeat", "checks", "supervisor"):
        t.add_column(col)
    for name, st in report.services.items():
        sup = report.supervision.get(name)
        sup_text = ""
        if sup is not None and now - sup.at < 30:
            sup_text = f"{sup.state}, {sup.restarts} restarts"
            if sup.state == "crash-loop":
                sup_text = f"[bold red]crash-loop[/]: {sup.crashes_last_minute} crashes in 60s, last exit {sup.last_exit}"
        if not st.instances:
            t.add_row(name, "-", "[bold red]down[/]", "-", "never", "", sup_text)
            continue
        for hb in st.instances:
            fresh = is_fresh(hb, now)
            state = hb.state if fresh else "down"
            style = "green" if state == "ready" else "bold red" if state == "down" else "yellow"
            failing = [f"{k}: {c.detail}" for k, c in hb.checks.items() if not c.ok]
            t.add_row(name, hb.instance, f"[{style}]{state}[/]", _ago(now - hb.started_at),
                      f"{_ago(now - hb.at)} ago", "; ".join(failing) or "ok", sup_text)
    console = Console()
    console.print(t)
    down = [n for n, s in report.services.items() if not s.up]
    if down:
        console.print(f"[bold red]down:[/] {', '.join(down)}")
    else:
        console.print(f"[green]all {len(report.services)} services up[/]")
