"""Return freed heap memory to the operating system after a connection closes.

A connection churns through threads (loop, dispatcher, aiortc's decoder) and
decoded frames of a megabyte or more; glibc keeps what they freed mapped in
its per-thread arenas, so a process that connects and disconnects repeatedly
grows in RSS without leaking. ``malloc_trim(0)`` hands those pages back.
Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from typing import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def trim_heap() -> None:
    """Ask the C allocator to release free memory (best effort, a few milliseconds)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
