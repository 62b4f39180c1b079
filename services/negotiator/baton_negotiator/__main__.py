"""Composition root of the negotiator service: the gateway edge: Livepeer gRPC and HTTP endpoints (coming), payments."""

from __future__ import annotations

from baton_common.runtime import ServiceBase, run_service

from .config import NegotiatorSettings

__all__ = ["Negotiator", "main"]


class Negotiator(ServiceBase[NegotiatorSettings]):
    name = "negotiator"


def main() -> None:
    run_service("negotiator", NegotiatorSettings, Negotiator)


if __name__ == "__main__":
    main()
