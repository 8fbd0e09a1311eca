"""Shared fixtures: a local Odyssey server on loopback and clients of it."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from odyssey_sync import Odyssey
from odyssey_sync.local import LocalOdyssey

# The 3.10 and 3.12 passes of .ci/run install the core test tools only (no optional extras) and run the
# fast tests; these modules import an extra at collection (all of their tests are slow anyway).
if os.environ.get("ODYSSEY_SYNC_CORE_TESTS") == "1":
    collect_ignore = ["test_collect.py", "test_dataset.py", "test_gym.py", "test_notebook.py", "test_samples_data.py"]


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
