"""Composition root of the negotiator service: the gateway edge.

It will serve the Livepeer gRPC and HTTP endpoints and take payments. For now
it loads and checks the ticket secret at start, so a deployment with a
missing or short secret fails before it takes any traffic.
"""

from __future__ import annotations

from baton_common.pm.secret import load_ticket_secret
from baton_common.runtime import ServiceBase, run_service
from baton_common.schemas import Check

from .config import NegotiatorSettings

__all__ = ["Negotiator", "main"]


class Negotiator(ServiceBase[NegotiatorSettings]):
    name = "negotiator"

    def __init__(self, settings: NegotiatorSettings) -> None:
        super().__init__(settings)
        onchain = settings.network != "offchain"
        # Raises TicketSecretError (a ConfigError) naming the setting: the service stops at start.
        self.ticket_secret = (
            load_ticket_secret(settings.ticket_secret_file) if onchain or settings.ticket_secret_file else None
        )

    def checks(self) -> dict[str, Check]:
        loaded = "loaded" if self.ticket_secret else "not needed offchain"
        return {"ticket_secret": Check(ok=True, detail=loaded)}


def main() -> None:
    run_service("negotiator", NegotiatorSettings, Negotiator)


if __name__ == "__main__":
    main()
