"""Quickstart: connect, start a stream, steer it twice, and save what was seen.

Uses the hosted Odyssey API when ``ODYSSEY_API_KEY`` is set, otherwise an
in-process local server (``odyssey_sync.local.LocalOdyssey``). Writes an MP4
of the received frames and a PNG snapshot, then prints a summary.

    python samples/quickstart.py [--out DIR] [--seconds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from odyssey_sync import Odyssey, VideoFrame
from odyssey_sync.local import hosted_or_local
from odyssey_sync.save import Mp4Writer, save_image


def record_for(client: Odyssey, writer: Mp4Writer, seconds: float) -> VideoFrame:
    """Encode the stream's frames that arrive within ``seconds`` as they come; the last one."""
    end = time.monotonic() + seconds
    frame = client.get_frame(timeout=10)
    writer.write(frame)
    while time.monotonic() < end:
        frame = client.get_frame(timeout=10)
        writer.write(frame)
    return frame


def main(argv: list[str] | None = None) -> int:
    """Run the quickstart; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("quickstart-output"), help="where to write the MP4 and PNG")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of video to read per step")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    video, snapshot = args.out / "quickstart.mp4", args.out / "snapshot.png"

    with hosted_or_local() as api, api.client() as client:
        target = api.description
        began = time.monotonic()
        client.connect()
        connect_s = time.monotonic() - began
        stream_id = client.start_stream("A lighthouse on a cliff at dusk", portrait=False)
        applied = [client.last_applied_prompt or ""]
        with Mp4Writer(video) as writer:  # encodes on its own thread while frames arrive: memory stays flat
            last = record_for(client, writer, args.seconds)
            for prompt in ("A storm rolls in over the sea", "The clouds part and the sun breaks through"):
                applied.append(client.interact(prompt))
                last = record_for(client, writer, args.seconds)
        client.end_stream()
        stats = client.stats
    summary = writer.close()
    save_image(last, snapshot)

    print(f"target:       {target}")
    print(f"connected in: {connect_s * 1000:.0f} ms")
    print(f"stream:       {stream_id}")
    print(f"video:        {summary.frames} frames at {summary.width}x{summary.height}, "
          f"{summary.frames / summary.duration_seconds:.1f} fps, {summary.duration_seconds:.1f} s")
    print(f"frames:       {stats.frames_received} received, {stats.frames_delivered} handed to this script, "
          f"{stats.frames_superseded} superseded, {stats.frames_dropped} dropped by buffer overflow, "
          f"{summary.dropped} dropped by the encoder")
    for i, prompt in enumerate(applied):
        print(f"prompt {i}:     {prompt}")
    print(f"video:        {video.resolve()} ({video.stat().st_size / 1e6:.1f} MB)")
    print(f"snapshot:     {snapshot.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
