"""The user-facing apps measured: the Gymnasium environment's pacing, steering and overhead, the notebook preview.

    python -m benchmarks.apps [--seconds 20] [--rounds 3]

Run by hand, not in CI. The server runs in its own process (as for the other
figures); the workloads run in this one, one at a time, interleaved over
``--rounds`` rounds. Every figure is a ratio against a baseline measured in the
same run:

* A1 pacing: environment steps per second / frames the server sent per second
  (from the frame stamps of the first and last observation), constant action.
* A2 steering: environment steps per second when every other step changes the
  prompt (a new one each time, so the server builds a new world as it does for
  any new prompt) / frames the server sent per second meanwhile. Second baseline: a hand-written agent
  that blocks on ``interact()`` and then waits for the next frame.
* A3 overhead: CPU per step of the environment / of a bare SDK loop
  (``wait_for_frame`` then ``frame.data``) over the same world, interleaved
  rounds, median: of the calling thread (A3) and of the whole process (A3b).
  A3c: the same with the caller keeping the previous observation during the
  step, as every agent does (``obs, ... = env.step(a)``), with the page faults.
* A4 preview: client CPU per second with a 10 fps notebook preview (JPEG at
  640 px) / a 10 Hz ``latest_frame()`` loop that reads ``frame.data`` but
  encodes nothing; best round of each, and the cost per frame shown.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

from odyssey_sync import Odyssey, VideoFrame
from odyssey_sync.gym import OdysseyEnv
from odyssey_sync.notebook import preview
from odyssey_sync.stamp import read_stamp

from .harness import ServerHandle

PROMPTS = ("A fox walks through a snowy forest", "The fox starts running")


def fresh_prompt(n: int) -> str:
    """A prompt not seen before, so the server builds a new world for it as for any new prompt."""
    return f"The fox runs toward landmark number {n}"


def median(rounds: list[Cost], which: int) -> float:
    """The median of one column of the rounds' costs."""
    return statistics.median(cost[which] for cost in rounds)


def stamp(frame_data: Any) -> int:
    found = read_stamp(frame_data)
    if found is None:
        raise RuntimeError("a frame without a readable stamp: is this the local server?")
    return found.frame_number


def pacing(env: OdysseyEnv, seconds: float) -> dict[str, float]:
    """A1: steps per second against frames sent per second over the same window."""
    observation, _ = env.reset()
    first, began, steps = stamp(observation), time.monotonic(), 0
    while time.monotonic() - began < seconds:
        observation, *_ = env.step(PROMPTS[0])
        steps += 1
    elapsed = time.monotonic() - began
    sent = stamp(observation) - first
    return {"steps_per_s": steps / elapsed, "sent_per_s": sent / elapsed, "ratio": steps / sent}


def steering(env: OdysseyEnv, client: Odyssey, seconds: float) -> dict[str, float]:
    """A2: steps per second when every other step changes the prompt; a blocking agent's as the baseline."""
    observation, _ = env.reset()
    first, began, steps = stamp(observation), time.monotonic(), 0
    while time.monotonic() - began < seconds:
        observation, *_ = env.step(fresh_prompt(steps // 2))  # change, keep, change, keep, ...
        steps += 1
    elapsed = time.monotonic() - began
    env_rate, sent_rate = steps / elapsed, (stamp(observation) - first) / elapsed
    last: VideoFrame = client.wait_for_frame(timeout=10)
    began, steps = time.monotonic(), 0
    while time.monotonic() - began < seconds:
        after = last.received_at
        if steps % 2 == 0:  # a hand-written agent: send, wait for the ack, then for the next frame
            after = max(after, client.interact(fresh_prompt(1000 + steps // 2)).received_at)
        last = client.wait_for_frame(after=after, timeout=10)
        steps += 1
    return {"env_steps_per_s": env_rate, "sent_per_s": sent_rate, "blocking_steps_per_s": steps / (time.monotonic() - began)}


def env_steps(env: OdysseyEnv, *, keep: bool) -> Callable[[], None]:
    """One environment step per call; ``keep``: hold the observation until the next, as an agent does."""
    held: list[Any] = [None]

    def step() -> None:
        observation = env.step(PROMPTS[0])[0]
        if keep:
            held[0] = observation

    return step


def bare_steps(client: Odyssey) -> Callable[[], None]:
    """The bare SDK loop: wait for the next frame of the stream and convert it."""
    last = [client.wait_for_frame(timeout=10)]

    def step() -> None:
        last[0] = client.wait_for_frame(after=last[0].received_at, timeout=10)
        _ = last[0].data

    return step


class Cost(NamedTuple):
    """CPU per step of the calling thread and of the whole process (ms), and the thread's minor page faults."""

    thread_ms: float
    process_ms: float
    faults: float


def cpu_per_step(step: Callable[[], None], seconds: float) -> Cost:
    """What one call of ``step`` costs, over ``seconds`` of calls.

    The calling thread's share is what the loop itself costs (the RGB conversion
    included); the process's adds the SDK's receiving and decoding threads,
    which are the same for any consumer of the stream but vary with the load.
    """
    faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    cpu, own, began, steps = time.process_time(), time.thread_time(), time.monotonic(), 0
    while time.monotonic() - began < seconds:
        step()
        steps += 1
    return Cost(
        (time.thread_time() - own) * 1000 / steps,
        (time.process_time() - cpu) * 1000 / steps,
        (resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - faults) / steps,
    )


def preview_cpu(client: Odyssey, seconds: float) -> tuple[float, int]:
    """CPU % of a core with a 10 fps preview running, and the frames it showed."""
    view = preview(client, fps=10, width=640)
    cpu, began = time.process_time(), time.monotonic()
    view.wait_for_frame(after=began + seconds, timeout=seconds + 10)
    used = (time.process_time() - cpu) / (time.monotonic() - began) * 100
    shown = view.frames_shown
    view.stop()
    return used, shown


def loop_cpu(client: Odyssey, seconds: float) -> float:
    """CPU % of a core of a 10 Hz ``latest_frame()`` loop that reads each new frame's RGB."""
    cpu, began, tick, seen = time.process_time(), time.monotonic(), time.monotonic(), None
    while time.monotonic() - began < seconds:
        frame = client.latest_frame()
        if frame is not None and frame is not seen:
            _ = frame.data  # the RGB conversion, nothing more
            seen = frame
        tick += 0.1
        time.sleep(max(0.0, tick - time.monotonic()))
    return (time.process_time() - cpu) / (time.monotonic() - began) * 100


def main(argv: list[str] | None = None) -> int:
    """Run every figure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measured window (default: 20)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of A3 and A4 (default: 3)")
    args = parser.parse_args(argv)
    log = Path(tempfile.mkdtemp(prefix="bench-apps-")) / "server.log"
    server = ServerHandle({"fps": 20.0, "max_stream_seconds": 3600.0}, log)
    try:
        info = server.description()
        client = Odyssey(api_key=info["api_key"], api_url=info["url"], timeout=20)
        client.connect()
        env = OdysseyEnv(client, prompt=PROMPTS[0])  # the same world as the bare loops: decode cost depends on it
        a1 = pacing(env, args.seconds)
        a2 = steering(env, client, args.seconds)

        env_cpu: list[Cost] = []
        agent_cpu: list[Cost] = []
        bare_cpu: list[Cost] = []
        for _ in range(args.rounds):
            env.reset()
            env_cpu.append(cpu_per_step(env_steps(env, keep=False), args.seconds))
            agent_cpu.append(cpu_per_step(env_steps(env, keep=True), args.seconds))
            client.end_stream()
            client.start_stream(PROMPTS[0], portrait=False)
            bare_cpu.append(cpu_per_step(bare_steps(client), args.seconds))
            client.end_stream()

        with_preview, without, shown = [], [], 0
        client.start_stream(PROMPTS[0], portrait=False)
        for _ in range(args.rounds):
            used, count = preview_cpu(client, args.seconds)
            with_preview.append(used)
            shown = max(shown, count)
            without.append(loop_cpu(client, args.seconds))
        env.close()
        client.disconnect()
    finally:
        server.stop()

    added_per_frame = (min(with_preview) - min(without)) / 100 * args.seconds / max(shown, 1) * 1000
    rows = [
        ("A1", "env steps/s / frames sent/s", f"{a1['steps_per_s']:.2f}", f"{a1['sent_per_s']:.2f}", a1["ratio"], ">= 0.95"),
        ("A2", "env steps/s with a new prompt every 2nd step / frames sent/s", f"{a2['env_steps_per_s']:.2f}",
         f"{a2['sent_per_s']:.2f}", a2["env_steps_per_s"] / a2["sent_per_s"], ">= 0.95"),
        ("A2b", "same, env / an agent that blocks on interact()", f"{a2['env_steps_per_s']:.2f}",
         f"{a2['blocking_steps_per_s']:.2f}", a2["env_steps_per_s"] / a2["blocking_steps_per_s"], "> 1"),
        ("A3", "caller-thread CPU per step, env / bare SDK loop (median of rounds)", f"{median(env_cpu, 0):.2f} ms",
         f"{median(bare_cpu, 0):.2f} ms", median(env_cpu, 0) / median(bare_cpu, 0), "<= 1.10"),
        ("A3b", "process CPU per step (SDK threads included), env / bare (median)", f"{median(env_cpu, 1):.2f} ms",
         f"{median(bare_cpu, 1):.2f} ms", median(env_cpu, 1) / median(bare_cpu, 1), "<= 1.10"),
        ("A3c", "caller-thread CPU, an agent holding the last observation / bare (faults per step: "
         f"{median(agent_cpu, 2):.0f} vs {median(bare_cpu, 2):.0f})", f"{median(agent_cpu, 0):.2f} ms",
         f"{median(bare_cpu, 0):.2f} ms", median(agent_cpu, 0) / median(bare_cpu, 0), "-"),
        ("A4", "client CPU, 10 fps preview / 10 Hz latest_frame loop (best)", f"{min(with_preview):.2f} %",
         f"{min(without):.2f} %", min(with_preview) / min(without), f"({added_per_frame:.2f} ms per frame shown)"),
    ]
    print("| Figure | What | Measured | Baseline | Ratio | Target |")
    print("|---|---|---|---|---|---|")
    for figure, what, measured, baseline, ratio, target in rows:
        print(f"| {figure} | {what} | {measured} | {baseline} | {ratio:.2f} | {target} |")
    print(f"\nMedian A4 {statistics.median(with_preview) / statistics.median(without):.2f}. Rounds: env {env_cpu}, "
          f"agent {agent_cpu}, bare {bare_cpu}, "
          f"preview {with_preview}, loop {without}. Server log: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
