"""One deadline type for every layer: a call's ``timeout=`` becomes a :class:`Deadline`, and every
wait inside the call (a lock, an HTTP request, a loop call, a frame) takes what is left of it."""

from __future__ import annotations

import math
import threading
import time
from typing import Union

from .errors import OdysseyTimeoutError

__all__ = ["WAIT_SLICE_S", "Deadline", "TimeLimit", "acquire"]

WAIT_SLICE_S = 0.1
"""Blocking waits are cut into slices this long, so that Ctrl+C reaches the caller promptly."""


class Deadline:
    """What is left of one call's time; ``timeout=None`` never runs out.

    ``what`` names the call in the :class:`OdysseyTimeoutError` raised once
    the time is up ("connect() timed out after 2 s").
    """

    __slots__ = ("at", "began", "timeout", "what")

    def __init__(self, timeout: float | None, what: str) -> None:
        """A deadline ``timeout`` seconds from now (``None``: none)."""
        self.timeout = timeout
        self.what = what
        self.began = time.monotonic()
        self.at = math.inf if timeout is None else self.began + timeout

    @classmethod
    def of(cls, limit: TimeLimit, what: str) -> Deadline:
        """``limit`` itself if it is a :class:`Deadline`, else a new one of that many seconds."""
        return limit if isinstance(limit, Deadline) else cls(limit, what)

    @property
    def bounded(self) -> bool:
        """Whether the deadline can run out."""
        return self.at != math.inf

    def left(self) -> float:
        """Seconds left (``math.inf`` when unbounded; 0 or less once expired); never raises."""
        return self.at - time.monotonic()

    def remaining(self) -> float | None:
        """Seconds left (``None`` when unbounded); raises :class:`OdysseyTimeoutError` once expired."""
        if not self.bounded:
            return None
        left = self.left()
        if left <= 0:
            raise self.error()
        return left

    def within(self, seconds: float) -> float:
        """A wait of at most ``seconds`` that does not outlast the deadline (0 once expired)."""
        return max(0.0, min(seconds, self.left()))

    def slice(self) -> float:
        """The next wait of a sliced loop: :data:`WAIT_SLICE_S` or what is left, if shorter."""
        return self.within(WAIT_SLICE_S)

    def expired(self) -> bool:
        """Whether the time is up."""
        return self.left() <= 0

    def error(self, waiting: str = "") -> OdysseyTimeoutError:
        """The error to raise when the time is up (``waiting`` says for what, e.g. "for a free streamer")."""
        limit = f" after {self.timeout:g} s" if self.timeout is not None else ""
        return OdysseyTimeoutError(f"{self.what} timed out{limit}{' waiting ' + waiting if waiting else ''}")

    def elapsed_ms(self) -> float:
        """Milliseconds since the call began."""
        return (time.monotonic() - self.began) * 1000

    def __repr__(self) -> str:
        return f"Deadline({self.what!r}, left={self.left():.3f})"


TimeLimit = Union[Deadline, float, None]
"""What the internal layers take: a caller's :class:`Deadline`, or seconds (``None``: no limit)."""


def acquire(lock: threading.Lock, deadline: Deadline) -> None:
    """Take ``lock`` before the deadline, in slices so that Ctrl+C gets through; raises once it is up."""
    while True:
        deadline.remaining()
        if lock.acquire(timeout=deadline.slice()):
            return
