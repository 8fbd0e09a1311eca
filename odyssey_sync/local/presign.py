"""Presigned file URLs: ``<path>?expires=<unix seconds>&sig=<hex>``, checked without any lookup.

``sig`` is HMAC-SHA256, keyed with a secret kept in the data directory (so
links stay valid across restarts when the directory is kept), over the path
and the expiry. Anyone holding a link may fetch that one file until it
expires; changing the path or the expiry breaks the signature.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from urllib.parse import urlencode

__all__ = ["SECRET_NAME", "SignatureError", "UrlSigner"]

SECRET_NAME = "url-signing.key"
_SECRET_BYTES = 32


class SignatureError(Exception):
    """A presigned URL was refused; ``expired`` tells an old link from a forged or damaged one."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class UrlSigner:
    """Signs and checks ``(path, expiry)`` pairs with one secret."""

    def __init__(self, secret: bytes, *, ttl_s: float) -> None:
        """Sign with ``secret``; links expire ``ttl_s`` seconds after signing."""
        if len(secret) < 16:
            raise ValueError("the URL signing secret must be at least 16 bytes")
        self._secret = secret
        self._ttl_s = ttl_s

    @classmethod
    def in_directory(cls, directory: Path, *, ttl_s: float) -> UrlSigner:
        """The signer whose secret is ``directory/url-signing.key``, created (mode 0600) on first use."""
        path = directory / SECRET_NAME
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls(path.read_bytes(), ttl_s=ttl_s)
        secret = secrets.token_bytes(_SECRET_BYTES)
        with os.fdopen(fd, "wb") as out:
            out.write(secret)
        return cls(secret, ttl_s=ttl_s)

    @property
    def ttl_s(self) -> float:
        """How long a new link stays valid, in seconds."""
        return self._ttl_s

    def sign(self, path: str, *, now: float | None = None) -> str:
        """``path?expires=...&sig=...``, valid for :attr:`ttl_s` from ``now`` (default: the clock)."""
        expires = int((time.time() if now is None else now) + self._ttl_s)
        return f"{path}?{urlencode({'expires': expires, 'sig': self._mac(path, str(expires))})}"

    def verify(self, path: str, expires: str | None, sig: str | None, *, now: float | None = None) -> None:
        """Accept a request for ``path`` carrying ``expires`` and ``sig``, or raise :class:`SignatureError`."""
        if not expires or not sig:
            raise SignatureError("This link is not signed: ask the API for a fresh presigned URL")
        if not expires.isdigit() or not hmac.compare_digest(self._mac(path, expires), sig.lower()):
            raise SignatureError("This link's signature is invalid: ask the API for a fresh presigned URL")
        if int(expires) < (time.time() if now is None else now):
            raise SignatureError("This link has expired: ask the API for a fresh presigned URL", expired=True)

    def _mac(self, path: str, expires: str) -> str:
        return hmac.new(self._secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()
