"""Machine-readable frame stamp that survives lossy video compression.

The local server writes a stamp into the top-left corner of every frame it
sends, so that clients, tests and benchmarks can recover which frame they are
looking at and when the server produced it, even after VP8/H.264 encoding and
an RGB <-> YUV round trip.

Layout: three rows of 32 bits, most significant bit on the left, each bit a
square block of ``block`` pixels (black = luma 16, white = luma 235, neutral
chroma):

* row 1: frame number (uint32)
* row 2: server wall-clock time in milliseconds, modulo 2**32 (see :func:`now_ms`)
* row 3: check word ``frame ^ time ^ 0xA5A5A5A5``

A reader averages the central half (in each direction) of every block,
thresholds at 128 and rejects the result when the check word does not match,
so a misread (or a frame without a stamp) yields ``None``.

The block is 16 pixels (a 512x48 stamp, :data:`STAMP_WIDTH` x
:data:`STAMP_HEIGHT`) whenever the frame is large enough; frames narrower than
512 or shorter than 48 pixels use 8- or 4-pixel blocks instead. Writer and
reader derive the block size from the frame size alone (see
:func:`stamp_block_size`), so no extra signalling is needed.
"""

from __future__ import annotations

import functools
import time
from typing import NamedTuple

import numpy as np

__all__ = [
    "BITS_PER_ROW",
    "BLOCK_SIZE",
    "CHECK_MASK",
    "ROWS",
    "STAMP_HEIGHT",
    "STAMP_WIDTH",
    "Stamp",
    "age_ms",
    "now_ms",
    "read_stamp",
    "stamp_block_size",
    "stamp_size",
    "write_stamp_chroma",
    "write_stamp_luma",
    "write_stamp_rgb",
]

BITS_PER_ROW: int = 32
"""Bits in each stamp row."""

ROWS: int = 3
"""Rows in the stamp: frame number, time, check word."""

BLOCK_SIZE: int = 16
"""Side in pixels of one bit block on frames large enough for a full-size stamp."""

STAMP_WIDTH: int = BITS_PER_ROW * BLOCK_SIZE
"""Width in pixels of the full-size stamp (512)."""

STAMP_HEIGHT: int = ROWS * BLOCK_SIZE
"""Height in pixels of the full-size stamp (48)."""

CHECK_MASK: int = 0xA5A5A5A5
"""Constant mixed into the check word so that all-black or all-white areas never validate."""

_MOD = 1 << 32
_BLOCK_SIZES: tuple[int, ...] = (16, 8, 4)
_LUMA_BLACK = 16
_LUMA_WHITE = 235
_RGB_BLACK = 0
_RGB_WHITE = 255
_CHROMA_NEUTRAL = 128
_THRESHOLD = 128.0
_SHIFTS = np.arange(BITS_PER_ROW - 1, -1, -1, dtype=np.uint64)
_WEIGHTS = np.left_shift(np.uint64(1), _SHIFTS)


class Stamp(NamedTuple):
    """The information carried by a frame stamp."""

    frame_number: int
    """Frame number modulo 2**32."""
    time_ms: int
    """Server wall-clock time in ms modulo 2**32, as returned by :func:`now_ms`."""


def now_ms() -> int:
    """Return the current wall-clock time in milliseconds, modulo 2**32."""
    return int(time.time() * 1000) % _MOD


def age_ms(stamp: Stamp, now: int | None = None) -> int:
    """Return how many ms ago the stamp was written, in ``[-2**31, 2**31)``.

    ``now`` defaults to :func:`now_ms`. The modulo 2**32 wrap of the time
    field is undone, so the result is correct as long as the true age is
    within about +-24 days. Negative values mean the stamp's clock is ahead
    of ``now`` (clock skew between machines).
    """
    if now is None:
        now = now_ms()
    return (now - stamp.time_ms + (1 << 31)) % _MOD - (1 << 31)


def stamp_block_size(width: int, height: int) -> int | None:
    """Return the bit block size used for a ``width`` x ``height`` frame.

    16 when a 512x48 stamp fits, else 8 (256x24), else 4 (128x12); ``None``
    when the frame is too small to carry a stamp at all.
    """
    for block in _BLOCK_SIZES:
        if width >= BITS_PER_ROW * block and height >= ROWS * block:
            return block
    return None


def stamp_size(width: int, height: int) -> tuple[int, int]:
    """Return ``(stamp_width, stamp_height)`` in pixels for a frame of the given size.

    Raises ``ValueError`` when the frame is too small to carry a stamp.
    """
    block = _require_block(width, height)
    return BITS_PER_ROW * block, ROWS * block


def write_stamp_luma(y_plane: np.ndarray, frame_number: int, time_ms: int) -> None:
    """Write the stamp in place into the top-left corner of a HxW uint8 luma plane.

    ``frame_number`` and ``time_ms`` are reduced modulo 2**32. Pair this with
    :func:`write_stamp_chroma` on the frame's chroma planes so the stamp is
    grey-scale. Raises ``ValueError`` if the plane is not a 2-D uint8 array
    or is too small for a stamp.
    """
    if y_plane.ndim != 2 or y_plane.dtype != np.uint8:
        raise ValueError(f"expected a HxW uint8 luma plane, got {y_plane.dtype} {y_plane.shape}")
    height, width = y_plane.shape
    block = _require_block(width, height)
    pattern = _pattern(frame_number, time_ms, block, _LUMA_BLACK, _LUMA_WHITE)
    y_plane[: ROWS * block, : BITS_PER_ROW * block] = pattern


def write_stamp_chroma(u_plane: np.ndarray, v_plane: np.ndarray) -> None:
    """Set the chroma under the stamp to neutral (128) in place.

    ``u_plane`` and ``v_plane`` are the half-resolution (4:2:0) chroma planes
    of the frame whose luma received :func:`write_stamp_luma`; the luma size
    is taken to be twice the chroma size.
    """
    if u_plane.shape != v_plane.shape or u_plane.ndim != 2:
        raise ValueError(f"expected two equal 2-D chroma planes, got {u_plane.shape} and {v_plane.shape}")
    chroma_height, chroma_width = u_plane.shape
    block = _require_block(2 * chroma_width, 2 * chroma_height)
    rows = -(-ROWS * block // 2)
    cols = -(-BITS_PER_ROW * block // 2)
    u_plane[:rows, :cols] = _CHROMA_NEUTRAL
    v_plane[:rows, :cols] = _CHROMA_NEUTRAL


def write_stamp_rgb(rgb: np.ndarray, frame_number: int, time_ms: int) -> None:
    """Write the stamp in place into the top-left corner of a HxWx3 uint8 image.

    Black and white are written as 0 and 255 in all three channels, so the
    channel order (RGB or BGR) does not matter.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected a HxWx3 uint8 image, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    block = _require_block(width, height)
    pattern = _pattern(frame_number, time_ms, block, _RGB_BLACK, _RGB_WHITE)
    rgb[: ROWS * block, : BITS_PER_ROW * block] = pattern[:, :, None]


def read_stamp(image: np.ndarray) -> Stamp | None:
    """Read the stamp from a frame, or return ``None`` if there is no valid stamp.

    ``image`` is a HxWx3 RGB or BGR image (the mean of the channels is used)
    or a HxW luma plane, uint8. The frame must have the size it had when
    the stamp was written (the block size depends on it).
    """
    if image.ndim == 3:
        height, width = image.shape[:2]
    elif image.ndim == 2:
        height, width = image.shape
    else:
        return None
    block = stamp_block_size(width, height)
    if block is None:
        return None
    lo, hi = block // 4, block - block // 4
    region = image[: ROWS * block, : BITS_PER_ROW * block]
    blocks = region.reshape(ROWS, block, BITS_PER_ROW, block, *region.shape[2:])
    centres = blocks[:, lo:hi, :, lo:hi]
    axes = (1, 3, 4) if image.ndim == 3 else (1, 3)
    bits = centres.mean(axis=axes, dtype=np.float64) >= _THRESHOLD
    frame_number, time_ms, check = (int(word) for word in (bits.astype(np.uint64) * _WEIGHTS).sum(axis=1))
    if check != frame_number ^ time_ms ^ CHECK_MASK:
        return None
    return Stamp(frame_number, time_ms)


def _require_block(width: int, height: int) -> int:
    block = stamp_block_size(width, height)
    if block is None:
        raise ValueError(f"a {width}x{height} frame is too small for a stamp (minimum 128x12)")
    return block


@functools.cache
def _block_index(block: int) -> np.ndarray:
    """Map every pixel of a stamp with the given block size to its bit index (0..95)."""
    rows = np.repeat(np.arange(ROWS), block)[:, None] * BITS_PER_ROW
    cols = np.repeat(np.arange(BITS_PER_ROW), block)[None, :]
    index = rows + cols
    index.flags.writeable = False
    return index


def _pattern(frame_number: int, time_ms: int, block: int, black: int, white: int) -> np.ndarray:
    """Return the (3*block, 32*block) uint8 stamp image for the given values."""
    frame_number %= _MOD
    time_ms %= _MOD
    words = np.array([frame_number, time_ms, frame_number ^ time_ms ^ CHECK_MASK], dtype=np.uint64)
    bits = (words[:, None] >> _SHIFTS) & np.uint64(1)
    levels = np.where(bits.reshape(-1) != 0, np.uint8(white), np.uint8(black)).astype(np.uint8)
    pattern: np.ndarray = levels[_block_index(block)]
    return pattern
