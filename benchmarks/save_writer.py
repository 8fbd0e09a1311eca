"""The streaming MP4 writer: flat memory over a long capture, and encoding that keeps up with 20 fps.

    python -m benchmarks.save_writer                    # 120 s captures (~6 min in all)
    python -m benchmarks.save_writer --seconds 600      # the 10-minute figure (~14 min)
    python -m benchmarks.save_writer --quick            # 20 s captures, a smoke run

Run by hand, not in CI. The server runs in its own process; each workload in a fresh process
(``benchmarks/save_workloads.py``), one at a time:

1. encode speed: 200 received 1280x704 frames encoded with each x264 preset; CPU and wall ms per frame
   against the 50 ms a frame lasts at 20 fps (the ratio says how much of one core a 20 fps capture costs);
2. the streaming writer (``Mp4Writer``) over a ``--seconds`` capture: RSS every 10 s, frames dropped;
3. the baseline, in the same run: the frames collected in a list and written at the end (what the
   quickstart did), over ``--list-seconds`` (default: the capture length, at most 60 s: its memory grows
   by ~1.4 MB a frame, so a 10-minute list would need ~17 GB).

Prints a table and writes JSON to ``--out`` (default ``benchmarks/results/save_writer.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import REPO_ROOT, ServerHandle, Worker
from odyssey_sync.save import STREAMING_PRESET

TARGET = "benchmarks.save_workloads"


def _run(target: str, log: Path, timeout: float, **kwargs: Any) -> dict[str, Any]:
    return Worker(f"{TARGET}:{target}", kwargs, log).result(timeout)


def main(argv: list[str] | None = None) -> int:
    """Run the three measurements and print them."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.save_writer", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the streaming capture")
    parser.add_argument("--list-seconds", type=float, default=None, help="length of the list baseline (<= 60 s by default)")
    parser.add_argument("--preset", default=STREAMING_PRESET, help="x264 preset of the captures (the writer's default)")
    parser.add_argument("--quick", action="store_true", help="20 s captures, 100 frames for the speed test")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "save_writer.json")
    args = parser.parse_args(argv)
    seconds = 20.0 if args.quick else args.seconds
    list_seconds = args.list_seconds if args.list_seconds is not None else min(seconds, 60.0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = args.out.with_suffix(".log")
    server = ServerHandle({"fps": 20.0, "max_stream_seconds": 3600}, log)
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "seconds": seconds, "list_seconds": list_seconds}
    try:
        info = server.description()
        print("encode speed ...", file=sys.stderr)
        report["encode"] = _run("encode_speed", log, 600, server=info, frames=100 if args.quick else 200)
        print(f"streaming capture, {seconds:g} s ...", file=sys.stderr)
        report["streaming"] = _run("capture", log, seconds + 300, server=info, mode="streaming", seconds=seconds,
                                   preset=args.preset)
        print(f"list capture, {list_seconds:g} s ...", file=sys.stderr)
        report["list"] = _run("capture", log, list_seconds + 600, server=info, mode="list", seconds=list_seconds,
                              preset=args.preset)
    finally:
        server.stop()
    args.out.write_text(json.dumps(report, indent=2))
    _print(report)
    return 0


def _growth(run: dict[str, Any], until_s: float | None = None) -> float:
    """RSS growth from the first sample after 10 s (the warm-up) to the last at or before ``until_s``."""
    samples = [s for s in run["rss_samples"] if until_s is None or s[0] <= until_s + 1]
    warm = next((s for s in samples if s[0] >= 10), samples[0])
    return float(samples[-1][1] - warm[1])


def _print(report: dict[str, Any]) -> None:
    encode = report["encode"]
    print(f"\nEncode speed, {encode['frames']} received {encode['width']}x{encode['height']} frames "
          "(one 20 fps frame lasts 50 ms):")
    print("| preset | CPU ms/frame | wall ms/frame | share of a core at 20 fps | frames/s it can take | bytes/frame |")
    print("|---|---|---|---|---|---|")
    for preset, row in encode.items():
        if isinstance(row, dict):
            print(f"| {preset} | {row['cpu_ms_per_frame']} | {row['wall_ms_per_frame']} | "
                  f"{row['cpu_ms_per_frame'] / 50:.2f} | {row['fps_capacity']} | {row['bytes_per_frame']} |")
    streaming, listed = report["streaming"], report["list"]
    print(f"\nMemory (RSS MiB), preset {streaming['preset']}:")
    for run in (streaming, listed):
        series = ", ".join(f"{t:g}s {mb:.0f}" for t, mb in run["rss_samples"])
        print(f"- {run['mode']} ({run['seconds']:g} s, {run['frames_written']} frames written, "
              f"{run['frames_dropped_by_writer']} dropped by the writer, {run['frames_dropped_by_client_buffer']} by the "
              f"client buffer; peak {run['rss_peak_mb']:.0f}): {series}")
    span = min(streaming["seconds"], listed["seconds"])
    stream_growth, list_growth = _growth(streaming, span), _growth(listed, span)
    print(f"\nRSS growth after the 10 s warm-up, over the first {span:g} s: streaming {stream_growth:+.1f} MiB, "
          f"list {list_growth:+.1f} MiB; peak RSS list / streaming = {listed['rss_peak_mb'] / streaming['rss_peak_mb']:.2f}")
    print(f"Streaming over its whole {streaming['seconds']:g} s: {_growth(streaming):+.1f} MiB")


if __name__ == "__main__":
    sys.exit(main())
