"""odyssey_sync: a blocking Python client for Odyssey's interactive world-model video API.

::

    from odyssey_sync import Odyssey

    with Odyssey() as client:
        client.connect()
        client.start_stream("A cat on a windowsill", portrait=False)
        frame = client.get_frame(timeout=5)
        ack = client.interact("The cat stretches")
        after = client.wait_for_frame(after=ack)

``odyssey_sync.local`` runs an Odyssey-compatible server on this machine.
"""

from ._version import __version__
from .client import Odyssey
from .errors import (
    AccountSuspendedError,
    ConcurrentLimitReachedError,
    MonthlyLimitReachedError,
    OdysseyAuthError,
    OdysseyConnectionError,
    OdysseyError,
    OdysseyStateError,
    OdysseyStreamError,
    OdysseyTimeoutError,
    OdysseyUsageError,
    RateLimitError,
    StreamDurationExceededError,
)
from .frames import MediaStream, VideoFrame
from .scripts import ScriptError, prompt_list_script
from .spectator import SpectatorConnection, connect_to_stream
from .types import (
    CURRENT_STREAM,
    DEFAULT_TIMEOUT,
    Acknowledgement,
    AdvancedConfig,
    BroadcastInfo,
    ClientCredentials,
    ConnectionStatus,
    Recording,
    SimulationJobDetail,
    SimulationJobInfo,
    SimulationJobsList,
    SimulationJobStatus,
    SimulationStream,
    Stats,
    StreamerCapabilities,
    StreamRecordingInfo,
    StreamRecordingsList,
)

__all__ = [
    "CURRENT_STREAM",
    "DEFAULT_TIMEOUT",
    "Acknowledgement",
    "AccountSuspendedError",
    "AdvancedConfig",
    "BroadcastInfo",
    "ClientCredentials",
    "ConcurrentLimitReachedError",
    "ConnectionStatus",
    "MediaStream",
    "MonthlyLimitReachedError",
    "Odyssey",
    "OdysseyAuthError",
    "OdysseyConnectionError",
    "OdysseyError",
    "OdysseyStateError",
    "OdysseyStreamError",
    "OdysseyTimeoutError",
    "OdysseyUsageError",
    "RateLimitError",
    "ScriptError",
    "Recording",
    "SimulationJobDetail",
    "SimulationJobInfo",
    "SimulationJobStatus",
    "SimulationJobsList",
    "SimulationStream",
    "SpectatorConnection",
    "Stats",
    "StreamDurationExceededError",
    "StreamRecordingInfo",
    "StreamRecordingsList",
    "StreamerCapabilities",
    "VideoFrame",
    "connect_to_stream",
    "prompt_list_script",
    "__version__",
]
