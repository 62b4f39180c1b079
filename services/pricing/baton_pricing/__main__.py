"""Composition root of the pricing service: prices per gateway and capability (coming)."""

from __future__ import annotations

from baton_common.runtime import ServiceBase, run_service

from .config import PricingSettings

__all__ = ["Pricing", "main"]


class Pricing(ServiceBase[PricingSettings]):
    name = "pricing"


def main() -> None:
    run_service("pricing", PricingSettings, Pricing)


if __name__ == "__main__":
    main()
