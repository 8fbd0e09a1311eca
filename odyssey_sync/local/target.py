"""The hosted API when a key is set, else a local server: how samples and offline development choose.

::

    from odyssey_sync.local import hosted_or_local

    with hosted_or_local() as target, target.client() as client:
        print("using", target.description)
        client.connect()
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

import attrs

from .. import Odyssey
from .server import LocalOdyssey

__all__ = ["ApiTarget", "hosted_or_local"]


@attrs.frozen
class ApiTarget:
    """Where to connect: ``api_key`` and ``api_url`` (``None``: the SDK reads ``ODYSSEY_API_KEY`` /
    ``ODYSSEY_API_URL``), and a description for people. The key never appears in ``repr``."""

    api_key: str | None = attrs.field(repr=False)
    api_url: str | None
    description: str

    def client(self, **options: Any) -> Odyssey:
        """A new :class:`~odyssey_sync.Odyssey` for this target (``options``: its other arguments)."""
        return Odyssey(api_key=self.api_key, api_url=self.api_url, **options)

    def connection_arguments(self) -> dict[str, str]:
        """``api_key=`` / ``api_url=`` for APIs that take them (``collect()``, the Gymnasium env); empty for the hosted API."""
        return {} if self.api_key is None else {"api_key": self.api_key, "api_url": str(self.api_url)}


@contextlib.contextmanager
def hosted_or_local(**server_options: Any) -> Iterator[ApiTarget]:
    """The hosted API if ``ODYSSEY_API_KEY`` is set; otherwise a :class:`LocalOdyssey` started for the
    block (``server_options`` are its arguments) and stopped after it."""
    if os.environ.get("ODYSSEY_API_KEY"):
        yield ApiTarget(None, None, "hosted Odyssey API")
        return
    with LocalOdyssey(**server_options) as server:
        yield ApiTarget(server.api_key, server.url, f"local server at {server.url}")
