"""Reading back what the save helpers and the dataset wrote: decoded with PyAV, stamps read."""

from __future__ import annotations

from pathlib import Path

import attrs
import av
import numpy as np

from odyssey_sync import VideoFrame
from odyssey_sync.stamp import read_stamp


@attrs.frozen
class DecodedVideo:
    """Every frame of an MP4: presentation times (ms), stamp numbers (None where unreadable), size."""

    times_ms: list[int]
    stamps: list[int | None]
    width: int
    height: int

    @property
    def count(self) -> int:
        """Frames in the file."""
        return len(self.times_ms)


def decode(path: Path) -> DecodedVideo:
    """Decode the whole file."""
    times, stamps = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        for frame in container.decode(stream):
            assert frame.pts is not None and frame.time_base is not None
            times.append(round(frame.pts * frame.time_base * 1000))
            stamp = read_stamp(frame.to_ndarray(format="rgb24"))
            stamps.append(None if stamp is None else stamp.frame_number)
    return DecodedVideo(times, stamps, width, height)


def decode_image(path: Path) -> np.ndarray:
    """The RGB pixels of a PNG or JPEG."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return np.asarray(frame.to_ndarray(format="rgb24"))


def stamp_of(frame: VideoFrame) -> int:
    """The server's frame number stamped in a received frame."""
    stamp = read_stamp(frame.data)
    assert stamp is not None, f"no readable stamp in {frame!r}"
    return stamp.frame_number
