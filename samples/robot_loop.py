"""A 10 Hz control loop: read the newest frame, decide, steer without waiting for the reply.

Uses the hosted Odyssey API when ``ODYSSEY_API_KEY`` is set, otherwise an
in-process local server. Each tick takes ``latest_frame()`` (never waits),
runs a toy policy on it, and sends a new prompt with ``interact(wait=False)``,
so the acknowledgement's round trip (tens of ms) never stretches a tick.
Prints the achieved loop period (p50 / max) and the interact round trip.

    python samples/robot_loop.py [--seconds 10] [--hz 10]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import sys
import time

from odyssey_sync import Acknowledgement, VideoFrame
from odyssey_sync.local import hosted_or_local

COMMANDS = (
    "The robot turns left toward the shelves",
    "The robot rolls forward down the aisle",
    "The robot turns right toward the loading dock",
)


def policy(frame: VideoFrame, tick: int, hz: float) -> str:
    """A stand-in for a real controller: the scene's brightness picks among the commands, changing every 2 s."""
    brightness = float(frame.data[::16, ::16].mean())  # a real policy would run a model on frame.data
    return COMMANDS[(int(tick // (2 * hz)) + int(brightness) // 128) % len(COMMANDS)]


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    """Run the loop; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run the loop (default: 10)")
    parser.add_argument("--hz", type=float, default=10.0, help="control rate (default: 10)")
    args = parser.parse_args(argv)
    ticks = max(2, round(args.seconds * args.hz))
    period = 1.0 / args.hz

    with hosted_or_local() as api, api.client() as client:
        target = api.description
        client.connect()
        client.start_stream("A small robot in a warehouse aisle, first-person camera", portrait=False)
        client.wait_for_frame(timeout=10)
        in_force = ""
        sent: list[tuple[float, concurrent.futures.Future[Acknowledgement]]] = []
        periods: list[float] = []
        fresh_frames = 0
        last_seen: VideoFrame | None = None
        next_tick = previous_start = time.monotonic()
        for tick in range(ticks):
            start = time.monotonic()
            if tick:
                periods.append(start - previous_start)
            previous_start = start
            frame = client.latest_frame()
            if frame is not None:
                fresh_frames += frame is not last_seen
                last_seen = frame
                command = policy(frame, tick, args.hz)
                if command != in_force:
                    sent.append((time.monotonic(), client.interact(command, wait=False)))
                    in_force = command
            next_tick += period
            time.sleep(max(0.0, next_tick - time.monotonic()))  # the loop's own clock
        round_trips = [future.result(timeout=10).received_at - sent_at for sent_at, future in sent]
        client.end_stream()
        stats = client.stats

    print(f"target:       {target}")
    print(f"ticks:        {ticks} at {args.hz:g} Hz, {fresh_frames} with a new frame")
    print(f"period:       p50 {percentile(periods, 0.5) * 1000:.1f} ms, max {max(periods) * 1000:.1f} ms "
          f"(target {period * 1000:.0f} ms)")
    if round_trips:
        print(f"interact:     {len(round_trips)} sent, round trip p50 {statistics.median(round_trips) * 1000:.0f} ms, "
              f"max {max(round_trips) * 1000:.0f} ms (never waited for)")
    print(f"frames:       {stats.frames_received} received, {stats.frames_superseded} superseded unread")
    return 0


if __name__ == "__main__":
    sys.exit(main())
