"""Tearing down one connection's runtime (client or spectator) in one order, bounded."""

from __future__ import annotations

import gc
import logging
from typing import Any, Coroutine

from ._dispatch import Dispatcher
from ._heap import trim_heap
from ._loop import LoopThread
from .frames import FrameBuffer

logger = logging.getLogger("odyssey_sync.runtime")


def shut_down(
    loop: LoopThread,
    close: Coroutine[Any, Any, Any] | None,
    buffer: FrameBuffer,
    dispatcher: Dispatcher,
    *,
    budget_s: float,
    what: str,
    discard: bool,
) -> None:
    """Run ``close`` on the loop (within ``budget_s``), stop both threads, give the memory back.

    ``discard`` lets go of the frames still buffered (the user left); without
    it they stay readable until the user disconnects (the server or the
    network ended the connection). Best effort after the budget: stopping the
    loop cancels whatever is left.
    aiortc's peer objects live in reference cycles, so they are collected here
    and the freed pages returned to the OS (see :mod:`._heap`).
    """
    if close is not None:
        if loop.is_running:
            try:
                loop.run(close, budget_s, what=what)
            except BaseException as exc:
                logger.debug("%s: %r", what, exc)
        else:
            close.close()
    buffer.close(discard=discard)
    loop.stop(timeout=1.0)
    dispatcher.stop(timeout=0.5)
    gc.collect()
    trim_heap()
