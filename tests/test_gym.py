"""The Gymnasium environment against the local server: check_env, pacing, steering, truncation."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env  # noqa: E402

from odyssey_sync import Odyssey, OdysseyStreamError  # noqa: E402
from odyssey_sync.gym import DEFAULT_PROMPT, ENV_ID, OdysseyEnv  # noqa: E402
from odyssey_sync.local import LocalOdyssey  # noqa: E402
from odyssey_sync.stamp import read_stamp  # noqa: E402

# End to end: run on Python 3.11 (every test); the 3.10 and 3.12 passes skip them (see .ci/run).
pytestmark = pytest.mark.slow

LANDSCAPE_SHAPE = (704, 1280, 3)
JUMP = "The cat jumps onto the shelf"


@pytest.fixture
def make_env(server: LocalOdyssey) -> Iterator[Callable[..., OdysseyEnv]]:
    """Build environments on the shared server (own client unless one is given); all closed after the test."""
    made: list[OdysseyEnv] = []

    def make(client: Odyssey | None = None, **kwargs: Any) -> OdysseyEnv:
        if client is None:
            kwargs.setdefault("api_key", server.api_key)
            kwargs.setdefault("api_url", server.url)
        env = OdysseyEnv(client, **kwargs)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


def stamp_number(observation: np.ndarray) -> int:
    stamp = read_stamp(observation)
    assert stamp is not None, "every frame of the local server carries a readable stamp"
    return stamp.frame_number


def updates_received(client: Odyssey, stream_id: str, folder: Path) -> list[str]:
    """The prompts the server received for a finished stream, from its recorded events."""
    paths = client.download_recording(stream_id, folder, what="events", progress=False)
    events = [json.loads(line) for line in paths["events"].read_text().splitlines()]
    return [event["prompt"] for event in events if event["type"] == "update"]


def test_check_env_passes_against_the_local_server(server: LocalOdyssey) -> None:
    env = gymnasium.make(ENV_ID, api_key=server.api_key, api_url=server.url, render_mode="rgb_array")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env.unwrapped)
        assert [str(w.message) for w in caught if "WARN:" in str(w.message)] == []  # gymnasium's logger.warn
        assert env.spec is not None and env.spec.nondeterministic
    finally:
        env.close()
    assert not env.unwrapped.client.is_connected


def test_reset_starts_a_stream_and_returns_its_first_frame(make_env: Callable[..., OdysseyEnv]) -> None:
    env = make_env()
    observation, info = env.reset(seed=7)
    assert env.observation_space.contains(observation) and observation.shape == LANDSCAPE_SHAPE
    assert info["stream_id"] == env.client.current_stream_id
    assert info["frame_index"] == 0 and info["frame_timestamp_ms"] == 0
    assert info["requested_prompt"] == DEFAULT_PROMPT and DEFAULT_PROMPT in info["prompt"]
    first_stream = info["stream_id"]

    _, info = env.reset(options={"prompt": "A red barn in a snowy field"})
    assert info["stream_id"] != first_stream, "reset ends the previous stream and starts another"
    assert "A red barn in a snowy field" in info["prompt"]
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"portrait": True})


def test_each_step_observes_a_newer_frame(make_env: Callable[..., OdysseyEnv]) -> None:
    env = make_env()
    observation, _ = env.reset()
    numbers = [stamp_number(observation)]
    for _ in range(10):
        observation, reward, terminated, truncated, info = env.step(DEFAULT_PROMPT)
        numbers.append(stamp_number(observation))
        assert (reward, terminated, truncated) == (0.0, False, False)
        assert info["frames_advanced"] >= 1
    assert all(later > earlier for earlier, later in zip(numbers, numbers[1:], strict=False))
    assert info["step"] == 10 and info["frame_index"] >= 10


def test_frames_per_step_skips_ahead(make_env: Callable[..., OdysseyEnv]) -> None:
    env = make_env(frames_per_step=3)
    observation, _ = env.reset()
    previous = stamp_number(observation)
    for _ in range(4):
        observation, _, _, _, info = env.step(DEFAULT_PROMPT)
        assert stamp_number(observation) - previous >= 3 and info["frames_advanced"] >= 3
        previous = stamp_number(observation)


def test_a_changed_prompt_is_sent_once_and_applied(
    make_env: Callable[..., OdysseyEnv], client: Odyssey, tmp_path: Path
) -> None:
    client.connect()
    env = make_env(client)
    _, info = env.reset()
    stream_id = info["stream_id"]
    for _ in range(100):  # 5 s of frames; the acknowledgement takes ~0.1 s
        _, _, _, _, info = env.step(JUMP)
        if info["prompt"] and JUMP in info["prompt"]:
            break
    assert info["requested_prompt"] == JUMP and JUMP in info["prompt"]
    for action in (JUMP, "   ", JUMP):  # the prompt in force, and a blank action: nothing is sent
        env.step(action)
    env.close()
    assert client.is_connected, "a client handed in connected stays connected"
    assert client.current_stream_id is None, "close() ends the environment's stream"
    assert updates_received(client, stream_id, tmp_path) == [JUMP]


def test_a_step_does_not_wait_for_the_acknowledgement(make_env: Callable[..., OdysseyEnv], server: LocalOdyssey) -> None:
    env = make_env(timeout=3)
    env.reset()
    server.faults.ignore_message_types.add("update")  # the server drops the prompt: no ack ever comes
    observation, _, _, _, info = env.step(JUMP)
    assert info["interacts_pending"] == 1, "the step returned with the next frame while the ack was outstanding"
    previous = stamp_number(observation)
    observation, _, _, _, info = env.step(JUMP)
    assert stamp_number(observation) > previous and info["interacts_pending"] == 1
    with pytest.raises(OdysseyStreamError, match="the prompt sent at step 1 .* failed"):
        for _ in range(200):  # the interact times out after 3 s; a later step reports it
            env.step(JUMP)
    server.faults.ignore_message_types.clear()
    _, info = env.reset()
    assert info["interacts_pending"] == 0


def test_discrete_actions_index_the_prompts(make_env: Callable[..., OdysseyEnv]) -> None:
    prompts = ["A calm lake at noon", "A storm over the lake"]
    env = make_env(prompts=prompts)
    assert env.action_space == gymnasium.spaces.Discrete(2)
    _, info = env.reset()
    assert info["requested_prompt"] == prompts[0]
    _, _, _, _, info = env.step(np.int64(1))
    assert info["requested_prompt"] == prompts[1]
    with pytest.raises(ValueError, match=r"index 0\.\.1"):
        env.step(2)
    with pytest.raises(TypeError, match="int index"):
        env.step("A storm over the lake")


def test_truncation_after_max_episode_steps(make_env: Callable[..., OdysseyEnv]) -> None:
    env = make_env(max_episode_steps=3)
    env.reset()
    results = [env.step(DEFAULT_PROMPT) for _ in range(3)]
    assert [truncated for _, _, _, truncated, _ in results] == [False, False, True]
    assert results[-1][4]["truncated_reason"] == "max_episode_steps"


def test_the_servers_stream_limit_truncates_the_episode(tmp_path: Path) -> None:
    with LocalOdyssey(max_stream_seconds=1.0) as limited:
        env = OdysseyEnv(api_key=limited.api_key, api_url=limited.url, step_timeout=5)
        try:
            _, info = env.reset()
            first_stream = info["stream_id"]
            truncated, steps = False, 0
            while not truncated:
                observation, _, terminated, truncated, info = env.step(DEFAULT_PROMPT)
                steps += 1
                assert steps < 200, "a 1 s stream ends within 200 steps"
            assert not terminated and info["truncated_reason"] == "stream_duration_limit"
            assert env.observation_space.contains(observation) and observation.flags.writeable
            with pytest.raises(OdysseyStreamError, match="call reset"):
                env.step(DEFAULT_PROMPT)
            _, info = env.reset()  # connects again: the server closed the connection at its limit
            assert info["stream_id"] != first_stream and env.client.is_connected
        finally:
            env.close()


def test_reward_comes_from_the_reward_function(make_env: Callable[..., OdysseyEnv]) -> None:
    seen: list[dict[str, Any]] = []

    def stamp_reward(frame: Any, info: dict[str, Any]) -> float:
        seen.append(info)
        return float(stamp_number(frame.data))

    env = make_env(reward_fn=stamp_reward)
    env.reset()
    observation, reward, _, _, info = env.step(DEFAULT_PROMPT)
    assert reward == stamp_number(observation) and seen == [info]

    bad = make_env(reward_fn=lambda frame, info: "high")
    bad.reset()
    with pytest.raises(TypeError, match="reward_fn must return a number"):
        bad.step(DEFAULT_PROMPT)


def test_render_portrait_and_close(make_env: Callable[..., OdysseyEnv]) -> None:
    env = make_env(portrait=True, render_mode="rgb_array")
    assert env.render() is None
    observation, _ = env.reset()
    assert observation.shape == (1280, 704, 3)
    assert env.render() is observation
    env.close()
    env.close()
    assert not env.client.is_connected
    with pytest.raises(OdysseyStreamError, match="closed"):
        env.reset()
    assert make_env().render() is None, "no render mode: render() returns None"


def test_arguments_are_checked_before_any_connection(server: LocalOdyssey) -> None:
    with pytest.raises(TypeError, match="prompts must be a list"):
        OdysseyEnv(prompts="The cat jumps")
    with pytest.raises(ValueError, match="prompts is empty"):
        OdysseyEnv(prompts=[])
    with pytest.raises(ValueError, match=r"prompts\[1\] is blank"):
        OdysseyEnv(prompts=["A cat", " "])
    with pytest.raises(ValueError, match="frames_per_step must be >= 1"):
        OdysseyEnv(frames_per_step=0)
    with pytest.raises(ValueError, match="render_mode"):
        OdysseyEnv(render_mode="human")
    with pytest.raises(ValueError, match="not both"):
        OdysseyEnv(Odyssey(api_key=server.api_key, api_url=server.url), api_key=server.api_key)
    env = OdysseyEnv(api_key=server.api_key, api_url=server.url)
    with pytest.raises(OdysseyStreamError, match="before reset"):
        env.step("A cat")
    assert not env.client.is_connected
    env.close()


def test_the_module_registers_the_environment_for_make() -> None:
    code = (
        "import gymnasium\n"
        "env = gymnasium.make('odyssey_sync.gym:odyssey_sync/Odyssey-v0', api_key='ody_x', api_url='http://127.0.0.1:9')\n"
        "print(env.spec.id, env.observation_space.shape, env.unwrapped.client.is_connected)\n"
        "env.close()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["odyssey_sync/Odyssey-v0", "(704,", "1280,", "3)", "False"]


def test_without_gymnasium_the_import_names_the_extra() -> None:
    code = "import sys\nsys.modules['gymnasium'] = None\nimport odyssey_sync.gym\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "MissingExtraError" in done.stderr and "pip install 'odyssey-sync[gym]'" in done.stderr
