"""`baton price show|set|reset|history`: the pricing service's admin API from the command line.

The token is read from a file (``--token-file``, default
``~/.config/baton/pricing.token``: the token alone); the audit log names
that token's holder. Prices are given as go-livepeer's ``-pricePerUnit``:
``<price><currency>``, e.g. ``1200``, ``0.5USD``, ``0.0001eth``.
Exit status: 0 done, 1 refused (the API's message is printed), 2 not reached.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

__all__ = ["add_parser", "price"]

DEFAULT_URL = "http://127.0.0.1:7941"
DEFAULT_TOKEN_FILE = Path("~/.config/baton/pricing.token")
PRICE = re.compile(r"(\d+(\.\d+)?)([A-z][A-z0-9]*)?", re.ASCII)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("price", help="show, change and audit prices (the pricing service's admin API)")
    p.add_argument("--url", default=DEFAULT_URL, help=f"the admin API (default {DEFAULT_URL})")
    p.add_argument("--token-file", type=Path, default=DEFAULT_TOKEN_FILE,
                   help=f"file holding your bearer token (default {DEFAULT_TOKEN_FILE})")
    cmd = p.add_subparsers(dest="price_command", required=True)

    show = cmd.add_parser("show", help="the rules in force and their wei per unit")
    show.add_argument("--json", action="store_true", help="machine-readable output")

    def target(q: argparse.ArgumentParser) -> None:
        q.add_argument("--gateway", default="default", help="a gateway's 0x address, or default (the default)")
        q.add_argument("--pipeline", default="", help="an AI pipeline (llm, text-to-image...); none: transcoding")
        q.add_argument("--model", default="", help="the pipeline's model_id")
        q.add_argument("--reason", required=True, help="why: the audit log keeps it")

    st = cmd.add_parser("set", help="set a price, floor or ceiling")
    target(st)
    st.add_argument("--price", help="<price><currency>, e.g. 1200, 0.5USD")
    st.add_argument("--floor", help="lowest quote, same format")
    st.add_argument("--ceiling", help="highest quote, same format")
    st.add_argument("--pixels-per-unit", type=int, default=1, help="units the amounts are for (default 1)")
    st.add_argument("--clear", action="append", choices=["price", "floor", "ceiling"], default=[],
                    help="remove the gateway's own price or a bound (repeatable)")

    rs = cmd.add_parser("reset", help="undo the API's changes to one rule: the configured one applies again")
    target(rs)

    hi = cmd.add_parser("history", help="the last price changes from the audit log")
    hi.add_argument("--limit", type=int, default=20)
    hi.add_argument("--json", action="store_true", help="machine-readable output")


def price(args: argparse.Namespace) -> int:
    try:
        token = _token(args.token_file)
        body = _body(args) if args.price_command in ("set", "reset") else None
    except ValueError as exc:
        print(f"baton price: {exc}", file=sys.stderr)
        return 2 if "token" in str(exc) else 1
    headers = {"Authorization": f"Bearer {token}"}
    method, path, params = {
        "show": ("GET", "/prices", None),
        "set": ("PUT", "/prices", None),
        "reset": ("POST", "/prices/reset", None),
        "history": ("GET", "/prices/history", {"limit": getattr(args, "limit", 20)}),
    }[args.price_command]
    try:
        r = httpx.request(method, args.url.rstrip("/") + path, json=body, params=params, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        print(f"baton price: cannot reach the pricing admin API at {args.url} ({exc}); is BATON_PRICING_ADMIN_ADDR "
              "set and the service running?", file=sys.stderr)
        return 2
    if r.status_code >= 400:
        try:
            message = r.json().get("message", r.text)
        except ValueError:
            message = r.text
        print(f"baton price: refused ({r.status_code}): {message}", file=sys.stderr)
        return 1
    data = r.json()
    if getattr(args, "json", False):
        sys.stdout.write(r.text + "\n")
    elif args.price_command == "show":
        _show(data)
    elif args.price_command == "history":
        _history(data)
    else:
        print(f"{data['target']}: version {data['version']} ({data['event_id']})")
    return 0


def _token(path: Path) -> str:
    path = path.expanduser()
    try:
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise ValueError(f"cannot read the token file {path}: {exc.strerror}") from None
    if not lines:
        raise ValueError(f"the token file {path} is empty")
    return lines[0]


def _amount(text: str, pixels: int, what: str) -> dict[str, Any]:
    match = PRICE.fullmatch(text)
    if not match:
        raise ValueError(f"--{what} must be <price><currency>, e.g. 1200 or 0.5USD; got {text!r}")
    return {"amount": match.group(1), "currency": match.group(3) or "wei", "pixels_per_unit": pixels}


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"gateway": args.gateway, "pipeline": args.pipeline, "model_id": args.model,
                            "reason": args.reason}
    if args.price_command == "set":
        for what in ("price", "floor", "ceiling"):
            value = getattr(args, what)
            if value is not None:
                body[what] = _amount(value, args.pixels_per_unit, what)
        if args.clear:
            body["clear"] = args.clear
    return body


def _console() -> Console:
    """A terminal's width; piped output is not cut to 80 columns (addresses are 42 characters)."""
    console = Console()
    return console if console.is_terminal else Console(width=240)


def _shown(p: dict[str, Any] | None) -> str:
    return "" if p is None else p["price"]


def _show(data: dict[str, Any]) -> None:
    console = _console()
    stale = " [red](stale: last good rate)[/red]" if data["eth_usd_stale"] else ""
    rate = f", ETH/USD {data['eth_usd']:g}{stale}" if data["eth_usd"] else ""
    table = Table(title=f"Prices, version {data['version']}{rate}")
    for column in ("gateway", "pipeline", "model", "price", "wei per unit", "floor", "ceiling", "set by"):
        table.add_column(column)
    for rule in data["rules"]:
        wei = rule["price"]["wei_per_unit"] if rule["price"] else ""
        table.add_row(rule["gateway"], rule["pipeline"] or "transcoding", rule["model_id"], _shown(rule["price"]),
                      wei or "", _shown(rule["floor"]), _shown(rule["ceiling"]), rule["source"])
    console.print(table)


def _history(events: list[dict[str, Any]]) -> None:
    import datetime

    table = Table(title="Price changes")
    for column in ("when (UTC)", "who", "what", "target", "old", "new", "reason"):
        table.add_column(column)
    for e in events:
        when = datetime.datetime.fromtimestamp(e["at"], datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(when, e["actor"], e["action"], e["target"], _rule(e.get("old")), _rule(e.get("new")),
                      e.get("reason", ""))
    _console().print(table)


def _rule(rule: dict[str, Any] | None) -> str:
    if not rule:
        return ""
    parts = [f"{k} {v['price']}" for k, v in rule.items() if v]
    return ", ".join(parts) or "-"
