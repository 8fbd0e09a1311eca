"""The local Odyssey-compatible server: real HTTP, signaling and WebRTC video on this machine.

``with LocalOdyssey() as server:`` runs it in-process on a thread of its own;
``python -m odyssey_sync.local`` (or the ``odyssey-local`` console script)
runs it standalone. ``hosted_or_local()`` picks the hosted API when
``ODYSSEY_API_KEY`` is set and an embedded server otherwise (what the samples do).
"""

from .config import ApiKey, ServerConfig
from .faults import Faults
from .server import LocalOdyssey
from .sessions import PromptRecord, SessionRecord, StreamRecord
from .target import ApiTarget, hosted_or_local

__all__ = [
    "ApiKey",
    "ApiTarget",
    "Faults",
    "LocalOdyssey",
    "PromptRecord",
    "ServerConfig",
    "SessionRecord",
    "StreamRecord",
    "hosted_or_local",
]
