"""Auth tokens: HMAC-SHA256(key, session_id || mBE(expiration)), valid 30 minutes (spec section 3.1).

Opaque to gateways. The key is the same on every replica (``keys.auth_token_key``),
so a token any replica issued is accepted by all.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from hashlib import sha256

from baton_common.pm import mbe
from baton_common.proto import lp_rpc_pb2

from .errors import InvalidAuthToken

__all__ = ["TOKEN_TTL", "AuthTokens"]

TOKEN_TTL = 30 * 60


class AuthTokens:
    def __init__(self, key: bytes, *, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock

    def _mac(self, session_id: str, expiration: int) -> bytes:
        return hmac.new(self._key, session_id.encode() + mbe(max(expiration, 0)), sha256).digest()

    def issue(self) -> lp_rpc_pb2.AuthToken:
        """A new session (8 hex characters, as go-livepeer) valid for 30 minutes."""
        session_id = secrets.token_hex(4)
        expiration = int(self._clock()) + TOKEN_TTL
        return lp_rpc_pb2.AuthToken(token=self._mac(session_id, expiration), session_id=session_id,
                                    expiration=expiration)

    def check(self, token: lp_rpc_pb2.AuthToken, *, expiry: bool = True) -> str:
        """The token's session id; InvalidAuthToken if it is missing, forged or (with ``expiry``) expired."""
        if not token.token or not token.session_id:
            raise InvalidAuthToken("missing auth token")
        if not hmac.compare_digest(token.token, self._mac(token.session_id, token.expiration)):
            raise InvalidAuthToken("invalid auth token")
        if expiry and token.expiration < self._clock():
            raise InvalidAuthToken("expired auth token")
        return token.session_id
