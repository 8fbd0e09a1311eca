"""Files and folders only the server's own user may read.

The data directory holds every recording, every prompt (in the events
files), the jobs' scripts and the URL-signing key, so what the server creates
there is mode 0700 (folders) and 0600 (files), whatever the process's umask.
Files written by libraries (PyAV) are created here first, empty and private;
the library then truncates them and keeps the mode.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "create_private", "private_dir", "private_opener"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` as a folder of mode 0700 (created with its parents if missing, tightened if not); returns it."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)
    return path


def private_opener(path: str, flags: int) -> int:
    """An ``opener`` for :func:`open` that creates files with mode 0600."""
    return os.open(path, flags, FILE_MODE)


def create_private(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 (or make an existing file 0600), for a library to write into."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    os.chmod(path, FILE_MODE)
    return path
