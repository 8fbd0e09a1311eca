"""The local Odyssey-compatible server: real HTTP, signaling and WebRTC video on this machine.

``with LocalOdyssey() as server:`` runs it in-process on a thread of its own;
``python -m odyssey_sync.local`` (or the ``odyssey-local`` console script)
runs it standalone.
"""

from .config import ApiKey, ServerConfig
from .faults import Faults
from .server import LocalOdyssey
from .sessions import PromptRecord, SessionRecord, StreamRecord

__all__ = ["ApiKey", "Faults", "LocalOdyssey", "PromptRecord", "ServerConfig", "SessionRecord", "StreamRecord"]
