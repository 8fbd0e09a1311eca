"""``python -m odyssey_sync``: the ``odyssey`` command (see :mod:`odyssey_sync.cli`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
