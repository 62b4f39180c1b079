"""Settings of the negotiator service (environment `BATON_NEGOTIATOR_<NAME>`)."""

from __future__ import annotations

from typing import Annotated

from baton_common.config import CommonSettings, setting

__all__ = ["NegotiatorSettings"]


class NegotiatorSettings(CommonSettings, frozen=True, kw_only=True):
    http_port: Annotated[int, setting("Port of the health and metrics HTTP server.", ge=0, le=65535)] = 7935
    ticket_secret_file: Annotated[
        str,
        setting(
            "File holding the recipientRand secret (at least 32 bytes, hex or raw), the same for every "
            "negotiator replica; required unless network is offchain. Not go-livepeer's -orchSecret.",
            secret=True,
        ),
    ] = ""
