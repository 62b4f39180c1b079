"""The pricing service's errors: each with a machine-readable ``code`` and the HTTP status it maps to."""

from __future__ import annotations

from baton_common.errors import BatonError

__all__ = ["Forbidden", "InvalidPrice", "NoRate", "PricingError", "Unauthorized", "UnknownRule"]


class PricingError(BatonError):
    code = "pricing"
    status_code = 500


class InvalidPrice(PricingError):
    """A price, bound, gateway or pipeline that cannot be used; nothing was changed."""

    code = "invalid_price"
    status_code = 400


class NoRate(PricingError):
    """A USD price needs the ETH/USD rate and none has been read yet."""

    code = "no_rate"
    status_code = 503


class UnknownRule(PricingError):
    """There is no change through the API to undo for that gateway and capability."""

    code = "not_found"
    status_code = 404


class Unauthorized(PricingError):
    code = "unauthorized"
    status_code = 401


class Forbidden(PricingError):
    code = "forbidden"
    status_code = 403
