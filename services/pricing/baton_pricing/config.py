"""Settings of the pricing service (environment `BATON_PRICING_<NAME>`)."""

from __future__ import annotations

from typing import Annotated

from baton_common.config import CommonSettings, setting

__all__ = ["PricingSettings"]


class PricingSettings(CommonSettings, frozen=True, kw_only=True):
    http_port: Annotated[int, setting("Port of the health and metrics HTTP server.", ge=0, le=65535)] = 7936
