"""Shared fixtures: a local Odyssey server on loopback and clients of it."""

from __future__ import annotations

from typing import Iterator

import pytest

from odyssey_sync import Odyssey
from odyssey_sync.local import LocalOdyssey


@pytest.fixture(scope="session")
def shared_server() -> Iterator[LocalOdyssey]:
    """One local server for the whole run, for tests that leave its limits alone."""
    with LocalOdyssey(max_concurrent_per_key=50) as local:
        yield local


@pytest.fixture
def server(shared_server: LocalOdyssey) -> Iterator[LocalOdyssey]:
    """The shared server, with its fault knobs reset after the test."""
    yield shared_server
    shared_server.faults.reset()


@pytest.fixture
def client(server: LocalOdyssey) -> Iterator[Odyssey]:
    """A client of the shared server, disconnected after the test."""
    with Odyssey(api_key=server.api_key, api_url=server.url, timeout=20) as odyssey:
        yield odyssey
