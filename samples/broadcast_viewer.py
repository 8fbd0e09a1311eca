"""One world, two processes: this one broadcasts a stream and steers it, a viewer process watches.

Uses the hosted Odyssey API when ``ODYSSEY_API_KEY`` is set, otherwise an
in-process local server. The broadcaster starts a stream with
``broadcast=True`` and hands the spectator URL and token to a viewer process
it spawns (through a pipe, not the command line); the viewer connects with
``odyssey_sync.connect_to_stream`` (no API key needed) and reports the frames
it saw while the broadcaster changed the prompt.

    python samples/broadcast_viewer.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
from typing import Any

import odyssey_sync
from odyssey_sync.local import hosted_or_local
from odyssey_sync.stamp import read_stamp

PROMPTS = ("A glowing alien ruin at dawn", "Vines grow over the ruin", "A storm gathers over the ruin")


def watch(webrtc_url: str, spectator_token: str, seconds: float, reports: Any) -> None:
    """The viewer process: watch the broadcast for ``seconds`` and send back what was seen."""
    report: dict[str, Any] = {"pid": os.getpid(), "frames": 0}
    try:
        with odyssey_sync.connect_to_stream(webrtc_url, spectator_token, timeout=20) as spectator:
            first = last = spectator.get_frame(timeout=10)
            report.update(frames=1, size=f"{first.width}x{first.height}", stream_id=first.stream_id)
            for frame in spectator.frames(timeout=10):
                report["frames"] += 1
                last = frame
                if frame.received_at - first.received_at >= seconds:
                    break
        report["seconds"] = last.received_at - first.received_at
        # The local server stamps its frame number in every frame: how many the broadcast sent meanwhile.
        stamps = read_stamp(first.data), read_stamp(last.data)
        if stamps[0] is not None and stamps[1] is not None:
            report["frames_sent"] = stamps[1].frame_number - stamps[0].frame_number + 1
    except Exception as exc:  # reported to the broadcaster, which prints it
        report["error"] = f"{type(exc).__name__}: {exc}"
    reports.put(report)


def main(argv: list[str] | None = None) -> int:
    """Broadcast, spawn a viewer, steer, and print both sides; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long the viewer watches (default: 5)")
    args = parser.parse_args(argv)

    with hosted_or_local() as api, api.client() as client:
        target = api.description
        ready = threading.Event()
        client.connect(on_broadcast_ready=lambda info: ready.set())
        stream_id = client.start_stream(PROMPTS[0], portrait=False, broadcast=True)
        if not ready.wait(15):
            print("the broadcast did not become ready within 15 s", file=sys.stderr)
            return 1
        info = client.broadcast_info
        assert info is not None
        spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no SDK threads forked
        reports = spawn.Queue()
        viewer = spawn.Process(target=watch, args=(info.webrtc_url, info.spectator_token, args.seconds, reports))
        viewer.start()
        applied = []
        try:
            for prompt in PROMPTS[1:]:  # steer while the viewer watches
                time.sleep(args.seconds / len(PROMPTS))
                applied.append(client.interact(prompt))
            report = reports.get(timeout=args.seconds + 60)
        finally:
            viewer.join(timeout=15)
            if viewer.is_alive():
                viewer.terminate()
        client.end_stream()

    print(f"target:       {target}")
    print(f"broadcast:    {stream_id} (HLS: {info.hls_url or 'none'})")
    for prompt in applied:
        print(f"steered:      {prompt}")
    if "error" in report:
        print(f"viewer:       failed: {report['error']}", file=sys.stderr)
        return 1
    print(f"viewer pid:   {report['pid']} (this process: {os.getpid()})")
    print(f"viewer saw:   {report['frames']} frames of {report['stream_id']} at {report['size']} "
          f"in {report['seconds']:.1f} s")
    if "frames_sent" in report:
        print(f"server sent:  {report['frames_sent']} frames meanwhile (from the frame stamps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
