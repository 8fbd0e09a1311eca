"""REST calls of an account that need no connection: recordings and simulations.

Mixed into :class:`odyssey_sync.Odyssey`; they use the client's REST layer
from the caller's thread.
"""

from __future__ import annotations


class AccountMethods:
    """Recordings and simulations (filled in by the recordings/simulations issue)."""
