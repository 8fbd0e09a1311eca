"""Speed-up of ``odyssey_sync.collect`` with 1, 2 and 4 workers, thread pool and Ray, live and simulated episodes.

    python -m benchmarks.collect_speedup            # 8 episodes of 5 s per batch (~10 min in all)
    python -m benchmarks.collect_speedup --quick    # 4 episodes of 2 s per batch

Run by hand, not in CI. The local server runs in its own process with room for every worker
(``max_concurrent_per_key=8``, 4 simulation workers); each batch runs in a fresh process
(``run_batch`` below) into an empty dataset folder, so no batch skips another's episodes. The
figure is each batch's wall time, and the speed-up is the 1-worker batch's wall time of the same
backend and kind divided by it, measured in the same run. For Ray, ``ray.init()`` happens before the
clock starts (its start-up is printed apart); the actors' start-up is inside the batch's time.
Frames per live episode are printed too: a live episode's length is fixed, so when the machine runs
out of CPU it shows as fewer frames, not as a longer batch.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import REPO_ROOT, ServerHandle, Worker

WORKER_COUNTS = (1, 2, 4)


def run_batch(server: dict[str, Any], backend: str, workers: int, kind: str, episodes: int, seconds: float) -> dict[str, Any]:
    """One batch in this (fresh) process: its wall time and what it wrote."""
    from odyssey_sync.collect import Episode, collect

    ray_init_s = None
    if backend == "ray":
        import ray

        began = time.monotonic()
        ray.init(num_cpus=max(workers, os.cpu_count() or 1), include_dashboard=False, logging_level=logging.WARNING)
        ray_init_s = round(time.monotonic() - began, 2)
    batch = [
        Episode.from_json({"prompt": f"A lighthouse on a cliff, take {i}", "seconds": seconds, "kind": kind,
                           "interacts": [{"at": seconds / 2, "prompt": "A storm rolls in"}]})
        for i in range(episodes)
    ]
    folder = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    try:
        began = time.monotonic()
        results = collect(batch, folder, workers=workers, backend="ray" if backend == "ray" else "threads",
                          api_key=server["api_key"], api_url=server["url"], progress=False)
        wall = time.monotonic() - began
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if backend == "ray":
            ray.shutdown()
    written = [r for r in results if r.status == "written"]
    return {
        "backend": backend,
        "workers": workers,
        "kind": kind,
        "episodes": episodes,
        "seconds": seconds,
        "wall_s": round(wall, 2),
        "written": len(written),
        "failed": [r.error for r in results if r.status == "failed"],
        "frames_per_episode": round(sum(r.frames for r in written) / max(1, len(written)), 1),
        "dropped": sum(r.dropped for r in written),
        "limit_waits": sum(r.limit_waits for r in results),
        "ray_init_s": ray_init_s,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every batch and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.collect_speedup", description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each episode")
    parser.add_argument("--backends", default="threads,ray")
    parser.add_argument("--kinds", default="live,simulation")
    parser.add_argument("--quick", action="store_true", help="4 episodes of 2 s")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "collect_speedup.json")
    args = parser.parse_args(argv)
    episodes, seconds = (4, 2.0) if args.quick else (args.episodes, args.seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = args.out.with_suffix(".log")
    config = {"fps": 20.0, "max_concurrent_per_key": 8, "simulation_workers": 4, "max_queued_jobs": 50}
    server = ServerHandle(config, log)
    runs: list[dict[str, Any]] = []
    try:
        for kind in args.kinds.split(","):
            for backend in args.backends.split(","):
                for workers in WORKER_COUNTS:
                    print(f"{kind} {backend} x{workers} ...", file=sys.stderr)
                    runs.append(Worker("benchmarks.collect_speedup:run_batch", {
                        "server": server.description(), "backend": backend, "workers": workers, "kind": kind,
                        "episodes": episodes, "seconds": seconds,
                    }, log).result(episodes * (seconds + 60) + 300))
    finally:
        server.stop()
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "nproc": os.cpu_count(), "loadavg": os.getloadavg(), "runs": runs}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\n{episodes} episodes of {seconds:g} s per batch, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}:")
    print("| kind | backend | workers | wall s | speed-up vs 1 worker | frames/episode | frames/s collected "
          "| frames/s vs 1 worker | written |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        one = next(r for r in runs if (r["kind"], r["backend"], r["workers"]) == (run["kind"], run["backend"], 1))
        rate, one_rate = _frame_rate(run), _frame_rate(one)
        print(f"| {run['kind']} | {run['backend']} | {run['workers']} | {run['wall_s']:.1f} | "
              f"{one['wall_s'] / run['wall_s']:.2f} | {run['frames_per_episode']:g} | {rate:.1f} | "
              f"{rate / one_rate:.2f} | {run['written']}/{run['episodes']} |")
    inits = [r["ray_init_s"] for r in runs if r["ray_init_s"] is not None]
    if inits:
        print(f"ray.init() before each Ray batch: {min(inits):.1f}-{max(inits):.1f} s (not in the wall times)")
    return 0


def _frame_rate(run: dict[str, Any]) -> float:
    """Frames written per second of the batch's wall time."""
    return float(run["frames_per_episode"] * run["written"] / run["wall_s"])


if __name__ == "__main__":
    sys.exit(main())
