"""A random agent in the Odyssey Gymnasium environment (needs ``pip install 'odyssey-sync[gym]'``).

Uses the hosted Odyssey API when ``ODYSSEY_API_KEY`` is set, otherwise an
in-process local server. Each episode is one stream: ``reset()`` starts it,
each ``step()`` picks one of a few prompts at random and observes the next
frame, and the episode is truncated after ``--steps`` steps. The reward is a
toy one (the change in the frame's brightness), to show ``reward_fn``.

    python samples/gym_random_agent.py [--episodes 2] [--steps 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Mapping

import gymnasium

import odyssey_sync.gym  # noqa: F401  (registers "odyssey_sync/Odyssey-v0")
from odyssey_sync import VideoFrame
from odyssey_sync.local import hosted_or_local

PROMPTS = [
    "A fox walks through a snowy forest",
    "The fox starts running",
    "The fox stops and looks around",
    "Snow begins to fall heavily",
]


class BrightnessChange:
    """Reward: how much brighter the frame is than the previous one (a stand-in for a real objective)."""

    def __init__(self) -> None:
        self.previous: float | None = None

    def __call__(self, frame: VideoFrame, info: Mapping[str, Any]) -> float:
        brightness = float(frame.data[::16, ::16].mean()) / 255
        change = 0.0 if self.previous is None else brightness - self.previous
        self.previous = brightness
        return change


def main(argv: list[str] | None = None) -> int:
    """Run the episodes; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2, help="episodes to run (default: 2)")
    parser.add_argument("--steps", type=int, default=100, help="steps per episode (default: 100)")
    args = parser.parse_args(argv)

    with hosted_or_local() as api:
        connection, target = api.connection_arguments(), api.description
        env = gymnasium.make(
            "odyssey_sync/Odyssey-v0", prompts=PROMPTS, max_episode_steps=args.steps,
            reward_fn=BrightnessChange(), **connection,
        )
        print(f"target:       {target}")
        print(f"observations: {env.observation_space}")
        print(f"actions:      {env.action_space} over {len(PROMPTS)} prompts")
        try:
            for episode in range(args.episodes):
                observation, info = env.reset(seed=episode)
                env.action_space.seed(episode)
                began, total, steps, prompts_sent = time.monotonic(), 0.0, 0, 0
                truncated = terminated = False
                while not (terminated or truncated):
                    action = env.action_space.sample()
                    prompts_sent += PROMPTS[action] != info["requested_prompt"]
                    observation, reward, terminated, truncated, info = env.step(action)
                    total += float(reward)
                    steps += 1
                elapsed = time.monotonic() - began
                ended_by = info.get("truncated_reason", "the step limit (TimeLimit)" if truncated else "termination")
                print(
                    f"episode {episode}: {steps} steps in {elapsed:.1f} s ({steps / elapsed:.1f} steps/s), "
                    f"{prompts_sent} prompts sent, return {total:+.3f}, stream {info['stream_id']}, "
                    f"frame {info['frame_index']}, ended by {ended_by}"
                )
                print(f"  prompt in force: {info['prompt']}")
        finally:
            env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
