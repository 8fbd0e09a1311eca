"""Stand-ins for two parts of the frames-per-stream API (issue 9) until it lands on main.

Each is one small function with the contract's meaning, so the callers
(``gym.py``, ``cli.py``) switch by replacing the call, and this module goes.
"""

from __future__ import annotations

import concurrent.futures
import threading
import weakref

from .client import Odyssey
from .frames import VideoFrame
from .types import Acknowledgement

__all__ = ["interact_nowait", "stream_position"]

_executors: weakref.WeakKeyDictionary[Odyssey, concurrent.futures.ThreadPoolExecutor] = weakref.WeakKeyDictionary()
_executors_lock = threading.Lock()


def interact_nowait(client: Odyssey, prompt: str) -> concurrent.futures.Future[Acknowledgement]:
    """``client.interact(prompt, wait=False)``: a future of the acknowledgement, sent in order."""
    with _executors_lock:
        executor = _executors.get(client)
        if executor is None:
            executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="odyssey-interact")
            _executors[client] = executor
    return executor.submit(client.interact, prompt)


def stream_position(frame: VideoFrame, first: VideoFrame) -> tuple[int, int]:
    """``(frame.index, frame.timestamp_ms)`` relative to its stream's first frame ``first``."""
    return frame.index - first.index, frame.timestamp_ms - first.timestamp_ms
