"""The baton command.

    baton up       run the whole stack on this machine (embedded NATS, six services)
    baton status   list service instances from their heartbeats; exit 1 if a service is down
    baton price    show, set, reset prices and their history (the pricing service's admin API)
    baton try      run one job against a running stack as a gateway would
    baton stop S   take service S out of `baton up` (it stays stopped); baton start S brings it back
    baton models   load|unload an inference worker's models live (audited); check a model config
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main"]

DEFAULT_NATS = "nats://127.0.0.1:4222"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="baton", description="Baton: a Livepeer orchestrator stack.")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run NATS and the six services here, restarting them when they crash")
    up.add_argument("--state-dir", type=Path, default=Path(".baton"),
                    help="where NATS data and service logs go (default: ./.baton)")
    up.add_argument("--nats-port", type=int, default=4222, help="client port of the embedded nats-server")
    up.add_argument("--nats-monitor-port", type=int, default=8222, help="monitoring port of the nats-server")
    up.add_argument("--port-base", type=int, default=7935,
                    help="health/metrics port of the first service; the others follow (default 7935..7940)")
    up.add_argument("--services", default="",
                    help="comma-separated subset of services to run (default: all six)")
    up.add_argument("--plain", action="store_true", help="log lines instead of the live table, even on a terminal")

    st = sub.add_parser("status", help="list service instances and their last heartbeats")
    st.add_argument("--nats-url", default=os.environ.get("BATON_NATS_URL", DEFAULT_NATS),
                    help=f"NATS to read heartbeats from (default: $BATON_NATS_URL or {DEFAULT_NATS})")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--watch", action="store_true", help="redraw every --interval seconds until Ctrl-C")
    st.add_argument("--interval", type=float, default=2.0, help="seconds between two redraws with --watch")

    for name, text in (("stop", "stop one service of `baton up` and keep it stopped"),
                       ("start", "start a service `baton stop` stopped")):
        c = sub.add_parser(name, help=text)
        c.add_argument("service", help="negotiator, pricing, chain, inference, transcode or monitor")
        c.add_argument("--nats-url", default=os.environ.get("BATON_NATS_URL", DEFAULT_NATS),
                       help=f"NATS of the running `baton up` (default: $BATON_NATS_URL or {DEFAULT_NATS})")
        c.add_argument("--timeout", type=float, default=40.0,
                       help="seconds to wait for the service to stop (its shutdown budget and a margin)")

    from .price import add_parser as add_price_parser

    add_price_parser(sub)
    from .try_ import add_parser as add_try

    add_try(sub)

    from .models import add_parser as models_parser

    models_parser(sub, DEFAULT_NATS)
    return p


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["models", "check"]:  # the rest are the inference service's own flags
        from .models import check

        sys.exit(check(argv[2:]))
    args = parser().parse_args(argv)
    if args.command == "up":
        from .up import up

        sys.exit(up(args))
    if args.command in ("stop", "start"):
        from .control import control

        sys.exit(control(args))
    if args.command == "price":
        from .price import price

        sys.exit(price(args))
    if args.command == "try":
        from .try_ import run

        sys.exit(run(args))
    if args.command == "models":
        from .models import models

        sys.exit(models(args))
    from .status import status

    sys.exit(status(args))


if __name__ == "__main__":
    main()
