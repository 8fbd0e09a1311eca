"""Small helpers shared by the tests."""

from __future__ import annotations

import os
import threading

SDK_THREAD_PREFIXES = ("odyssey-loop", "odyssey-dispatch", "odyssey-cleanup", "odyssey-ping")


def open_fds() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def odyssey_threads() -> list[threading.Thread]:
    """Threads the SDK owns (loop, dispatcher, cleanup, pings) that are alive."""
    return [t for t in threading.enumerate() if t.name.startswith(SDK_THREAD_PREFIXES) and t.is_alive()]
