"""Quickstart: connect, start a stream, steer it twice, and save what was seen.

Uses the hosted Odyssey API when ``ODYSSEY_API_KEY`` is set, otherwise an
in-process local server (``odyssey_sync.local.LocalOdyssey``). Writes an MP4
of the received frames and a PNG snapshot, then prints a summary.

    python samples/quickstart.py [--out DIR] [--seconds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av

from odyssey_sync import Odyssey, VideoFrame


@contextlib.contextmanager
def odyssey_client() -> Iterator[tuple[Odyssey, str]]:
    """A client for the hosted API if a key is set, else for a local server."""
    if os.environ.get("ODYSSEY_API_KEY"):
        with Odyssey() as client:
            yield client, "hosted Odyssey API"
        return
    from odyssey_sync.local import LocalOdyssey

    with LocalOdyssey() as server, Odyssey(api_key=server.api_key, api_url=server.url) as client:
        yield client, f"local server at {server.url}"


def collect(client: Odyssey, seconds: float) -> list[VideoFrame]:
    """The frames that arrive within ``seconds``."""
    frames = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        frames.append(client.get_frame(timeout=10))
    return frames


def write_mp4(frames: list[VideoFrame], path: Path) -> None:
    """Encode frames to H.264 MP4 with their arrival timing."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=20)
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"preset": "veryfast"}
        start, last_pts = frames[0].received_at, -1
        for frame in frames:
            if (frame.width, frame.height) != (stream.width, stream.height):
                continue
            out = av.VideoFrame.from_ndarray(frame.data, format="rgb24")
            out.pts = max(last_pts + 1, int((frame.received_at - start) * 1000))
            out.time_base = Fraction(1, 1000)
            last_pts = out.pts
            for packet in stream.encode(out):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def write_png(frame: VideoFrame, path: Path) -> None:
    """Save one frame as PNG."""
    with av.open(str(path), mode="w", format="image2") as container:
        stream = container.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, "rgb24"
        image = av.VideoFrame.from_ndarray(frame.data, format="rgb24")
        for packet in stream.encode(image):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def main(argv: list[str] | None = None) -> int:
    """Run the quickstart; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("quickstart-output"), help="where to write the MP4 and PNG")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of video to read per step")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    with odyssey_client() as (client, target):
        began = time.monotonic()
        client.connect()
        connect_s = time.monotonic() - began
        stream_id = client.start_stream("A lighthouse on a cliff at dusk", portrait=False)
        applied = [client.last_applied_prompt or ""]
        frames = collect(client, args.seconds)
        for prompt in ("A storm rolls in over the sea", "The clouds part and the sun breaks through"):
            applied.append(client.interact(prompt))
            frames += collect(client, args.seconds)
        client.end_stream()
        stats = client.stats

    video, snapshot = args.out / "quickstart.mp4", args.out / "snapshot.png"
    write_mp4(frames, video)
    write_png(frames[-1], snapshot)
    span = frames[-1].received_at - frames[0].received_at
    print(f"target:       {target}")
    print(f"connected in: {connect_s * 1000:.0f} ms")
    print(f"stream:       {stream_id}")
    print(f"frames:       {len(frames)} at {frames[0].width}x{frames[0].height}, {len(frames) / span:.1f} fps")
    print(f"dropped:      {stats.frames_dropped} (buffer overflow)")
    for i, prompt in enumerate(applied):
        print(f"prompt {i}:     {prompt}")
    print(f"video:        {video.resolve()} ({video.stat().st_size / 1e6:.1f} MB)")
    print(f"snapshot:     {snapshot.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
