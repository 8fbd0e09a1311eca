"""Credentials the local server issues and checks.

Two kinds, as on the hosted service: opaque access tokens (``/auth/token``,
sent as ``Authorization: Bearer``) mapped to the API key that obtained them,
session JWTs (``/sessions/token``, HS256, one session each) that open the
signaling socket, and spectator JWTs (one broadcast stream each, sent with
``broadcast_ready``) that let viewers join over WHEP. The JWT secret is
random per server instance, so tokens from another run (or another server)
never verify.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Iterable

import jwt

from .. import protocol
from .config import ApiKey

__all__ = ["SPECTATOR_TOKEN_LIFETIME_S", "Authority", "TokenError"]

_JWT_ALGORITHM = "HS256"
_SPECTATOR_SCOPE = "spectator"
SPECTATOR_TOKEN_LIFETIME_S = 3600


class TokenError(Exception):
    """A session token that does not open the requested session; the text says why."""


class Authority:
    """Issues and verifies access tokens and session tokens. Thread-safe."""

    def __init__(self, api_keys: Iterable[ApiKey], *, access_token_lifetime_s: int = 3600) -> None:
        """Accept exactly ``api_keys``; access tokens live ``access_token_lifetime_s`` seconds."""
        self._keys = {key.key: key for key in api_keys}
        self._access_lifetime = int(access_token_lifetime_s)
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._access_tokens: dict[str, tuple[ApiKey, float]] = {}

    @property
    def access_token_lifetime_s(self) -> int:
        """Seconds an access token stays valid."""
        return self._access_lifetime

    def find_key(self, key: str) -> ApiKey | None:
        """The configured key with this value, or ``None``."""
        return self._keys.get(key)

    def issue_access_token(self, key: ApiKey) -> str:
        """A new opaque access token for ``key``."""
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            expired = [t for t, (_, expiry) in self._access_tokens.items() if expiry <= now]
            for t in expired:
                del self._access_tokens[t]
            self._access_tokens[token] = (key, now + self._access_lifetime)
        return token

    def key_for_access_token(self, token: str) -> ApiKey | None:
        """The key an unexpired access token was issued to, or ``None``."""
        with self._lock:
            entry = self._access_tokens.get(token)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def mint_session_token(self, session_id: str, *, lifetime_s: int = protocol.SESSION_TOKEN_LIFETIME_S) -> str:
        """An HS256 JWT with ``session_id``, ``iat`` and ``exp`` claims."""
        now = int(time.time())
        claims = {"session_id": session_id, "iat": now, "exp": now + lifetime_s}
        return jwt.encode(claims, self._secret, algorithm=_JWT_ALGORITHM)

    def verify_session_token(self, token: str | None, session_id: str) -> None:
        """Raise :class:`TokenError` unless ``token`` is a valid, unexpired JWT for ``session_id``."""
        if not token:
            raise TokenError("missing session token (pass ?token=<JWT from /sessions/token>)")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_JWT_ALGORITHM],
                options={"require": ["exp", "iat", "session_id"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("session token expired; request a new one from /sessions/token") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid session token: {exc}") from None
        if claims.get("session_id") != session_id:
            raise TokenError("session token was minted for another session")

    def mint_spectator_token(self, stream_id: str, *, lifetime_s: int = SPECTATOR_TOKEN_LIFETIME_S) -> str:
        """An HS256 JWT that lets its holder watch the broadcast of ``stream_id`` (and nothing else)."""
        now = int(time.time())
        claims = {"scope": _SPECTATOR_SCOPE, "stream_id": stream_id, "iat": now, "exp": now + lifetime_s}
        return jwt.encode(claims, self._secret, algorithm=_JWT_ALGORITHM)

    def verify_spectator_token(self, token: str | None, stream_id: str) -> None:
        """Raise :class:`TokenError` unless ``token`` is an unexpired spectator token for ``stream_id``."""
        if not token:
            raise TokenError("missing spectator token (pass ?token=<spectator_token from broadcast_ready>)")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_JWT_ALGORITHM],
                options={"require": ["exp", "iat", "stream_id", "scope"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("spectator token expired; ask the broadcaster for a new one") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid spectator token: {exc}") from None
        if claims.get("scope") != _SPECTATOR_SCOPE or claims.get("stream_id") != stream_id:
            raise TokenError("spectator token was issued for another stream")
