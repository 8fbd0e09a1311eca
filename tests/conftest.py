"""Shared fixtures: a local Odyssey server on loopback and clients of it."""

from __future__ import annotations

from typing import Iterator

import pytest

from odyssey_sync import Odyssey
from odyssey_sync.local import LocalOdyssey


@pytest.fixture(scope="session")
def server() -> Iterator[LocalOdyssey]:
    """One local server shared by the tests that leave its limits alone."""
    with LocalOdyssey(max_concurrent_per_key=50) as local:
        yield local


@pytest.fixture
def client(server: LocalOdyssey) -> Iterator[Odyssey]:
    """A client of the shared server, disconnected after the test."""
    with Odyssey(api_key=server.api_key, api_url=server.url, timeout=20) as odyssey:
        yield odyssey


@pytest.fixture(autouse=True)
def _reset_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        request.getfixturevalue("server").faults.reset()
