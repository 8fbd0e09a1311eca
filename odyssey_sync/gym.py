"""A Gymnasium environment over a live Odyssey stream: observe frames, act with prompts.

Needs the ``gym`` extra (``pip install 'odyssey-sync[gym]'``). Importing this
module registers the environment as ``"odyssey_sync/Odyssey-v0"``::

    import gymnasium
    import odyssey_sync.gym  # or make("odyssey_sync.gym:odyssey_sync/Odyssey-v0")

    env = gymnasium.make("odyssey_sync/Odyssey-v0", prompts=["The cat jumps", "The cat sleeps"],
                         max_episode_steps=200)
    obs, info = env.reset(seed=0)            # a new stream; obs is its first frame
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    env.close()                              # ends the stream and disconnects

One step waits for the next frame of the stream (``frames_per_step``), and a
prompt that differs from the one in force is sent without waiting for its
acknowledgement, so an agent runs at the stream's frame rate.
"""

from __future__ import annotations

import concurrent.futures
import math
import numbers
import string
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, SupportsFloat

import numpy as np
from numpy.typing import NDArray

from . import protocol
from ._extras import require
from .client import Odyssey
from .errors import (
    OdysseyConnectionError,
    OdysseyStateError,
    OdysseyStreamError,
    OdysseyTimeoutError,
    StreamDurationExceededError,
)
from .frames import VideoFrame
from .types import Acknowledgement

try:
    import gymnasium
    from gymnasium import spaces
except ImportError:
    require("gymnasium", "gym", "The Gymnasium environment (odyssey_sync.gym)")
    raise

__all__ = ["DEFAULT_PROMPT", "ENV_ID", "PROMPT_CHARSET", "OdysseyEnv", "RewardFn"]

ENV_ID = "odyssey_sync/Odyssey-v0"
"""The id the environment is registered under with :func:`gymnasium.register`."""

DEFAULT_PROMPT = "A first-person walk along a forest path on a sunny morning"
"""The prompt an episode starts with when neither ``prompt=`` nor ``prompts=`` is given."""

PROMPT_CHARSET = string.ascii_letters + string.digits + string.punctuation + " "
"""The characters of the ``Text`` action space (what ``action_space.sample()`` draws from)."""

RewardFn = Callable[[VideoFrame, Mapping[str, Any]], SupportsFloat]
"""``reward_fn(frame, info) -> float``: the reward of the step that observed ``frame``."""

_SERVER_FPS = 20
_SETTLE_INTERACTS_S = 2.0
_RESET_OPTIONS = ("prompt", "image")

Observation = NDArray[np.uint8]


class OdysseyEnv(gymnasium.Env[Observation, Any]):
    """A live Odyssey stream as a Gymnasium environment.

    * Observation: the newest frame, ``Box(0, 255, (704, 1280, 3), uint8)``
      (``(1280, 704, 3)`` with ``portrait=True``), RGB, read-only.
    * Action: a prompt, from a ``Text`` space (characters :data:`PROMPT_CHARSET`,
      though any string is accepted); or, when ``prompts`` is given, an index
      into it from ``Discrete(len(prompts))``. An action equal to the prompt in
      force, or blank, sends nothing; another is sent with a non-blocking
      ``interact`` (its acknowledgement is not waited for).
    * :meth:`step` returns once ``frames_per_step`` new frames arrived since the
      last observation (at once if they already have: a slow agent gets the
      newest frame), so steps follow the stream's frame rate.
    * :meth:`reset` ends the previous stream and starts a new one with
      ``options["prompt"]`` (else ``prompt``, else ``prompts[0]``, else
      :data:`DEFAULT_PROMPT`); ``options["image"]`` starts it from an image.
    * Reward: ``reward_fn(frame, info)``, default 0.0. Never terminated.
      Truncated after ``max_episode_steps`` steps, or when the server ends the
      stream (its duration limit): ``info["truncated_reason"]`` then says why.
    * ``info``: ``stream_id``, ``frame_index`` and ``frame_timestamp_ms``
      (within the stream), ``prompt`` (the applied prompt in force at the
      frame), ``requested_prompt``, ``interacts_pending``, ``frames_advanced``
      (frames since the last observation) and ``step``.

    Give a connected or unconnected ``client``, or the connection arguments
    (``api_key``, ``api_url``, ``timeout``; default the ``ODYSSEY_API_KEY`` and
    ``ODYSSEY_API_URL`` environment variables, as for :class:`Odyssey`).
    :meth:`close` ends the episode's stream and disconnects the connection the
    environment opened; a client handed in already connected stays connected.
    ``step_timeout`` bounds each wait for a frame (``OdysseyTimeoutError``).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": _SERVER_FPS}

    def __init__(
        self,
        client: Odyssey | None = None,
        *,
        prompt: str | None = None,
        prompts: Sequence[str] | None = None,
        portrait: bool = False,
        frames_per_step: int = 1,
        max_episode_steps: int | None = None,
        reward_fn: RewardFn | None = None,
        render_mode: str | None = None,
        max_prompt_length: int = 500,
        step_timeout: float = 10.0,
        api_key: str | None = None,
        api_url: str | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        if client is not None and not isinstance(client, Odyssey):
            raise TypeError(f"client must be an odyssey_sync.Odyssey, not {type(client).__name__}")
        if client is not None and (api_key is not None or api_url is not None):
            raise ValueError("pass either client= or the connection arguments (api_key=, api_url=), not both")
        self._prompts = _check_prompts(prompts)
        if prompt is not None:
            _check_prompt_text("prompt", prompt)
        if not isinstance(portrait, bool):
            raise TypeError(f"portrait must be True or False, not {type(portrait).__name__}")
        self._frames_per_step = _check_count("frames_per_step", frames_per_step)
        self._max_episode_steps = None if max_episode_steps is None else _check_count("max_episode_steps", max_episode_steps)
        if reward_fn is not None and not callable(reward_fn):
            raise TypeError(f"reward_fn must be callable as reward_fn(frame, info), not {type(reward_fn).__name__}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self._max_prompt_length = _check_count("max_prompt_length", max_prompt_length)
        self._step_timeout = _check_seconds("step_timeout", step_timeout)

        self._owns_client = client is None
        self._client = client if client is not None else Odyssey(api_key=api_key, api_url=api_url, timeout=timeout)
        self._owns_connection = False
        self._initial_prompt = prompt if prompt is not None else (self._prompts[0] if self._prompts else DEFAULT_PROMPT)
        self._portrait = portrait
        self._reward_fn = reward_fn
        self.render_mode = render_mode

        width, height = protocol.PORTRAIT if portrait else protocol.LANDSCAPE
        self._frame_size = (width, height)
        self.observation_space = spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8)
        self.action_space: spaces.Space[Any] = (
            spaces.Discrete(len(self._prompts))
            if self._prompts
            else spaces.Text(max_length=self._max_prompt_length, charset=PROMPT_CHARSET)
        )

        self._stream_id: str | None = None
        self._last_frame: VideoFrame | None = None
        self._requested_prompt = ""
        self._pending: list[tuple[str, int, concurrent.futures.Future[Acknowledgement]]] = []
        self._steps = 0
        self._stream_over: str | None = None
        self._closed = False

    # -- properties ------------------------------------------------------------------------------

    @property
    def client(self) -> Odyssey:
        """The client the environment streams with."""
        return self._client

    @property
    def prompts(self) -> tuple[str, ...] | None:
        """The prompts a ``Discrete`` action indexes, or ``None`` for ``Text`` actions."""
        return self._prompts

    # -- the Gymnasium API -------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Observation, dict[str, Any]]:
        """End the running stream, start a new one, and return its first frame and ``info``.

        ``options`` may hold ``"prompt"`` (the stream's first prompt) and
        ``"image"`` (anything ``start_stream(image=)`` takes). ``seed`` seeds
        :attr:`np_random` (the stream itself is not seeded).
        """
        self._check_open()
        super().reset(seed=seed)
        prompt, image = _check_options(options, self._initial_prompt)
        self._settle_interacts()
        self._end_stream()
        client = self._connected_client()
        ack = client.start_stream(prompt, portrait=self._portrait, image=image)
        self._stream_id, self._stream_over, self._steps = str(ack), None, 0
        self._requested_prompt = prompt
        self._last_frame = None
        first = self._wait_for_stream_frame(ack.received_at, need_index=None)
        self._last_frame = first
        return first.data, self._info(first, advanced=0)

    def step(self, action: Any) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """Send the action's prompt if it changes the one in force, then observe the next frame."""
        self._check_open()
        last = self._last_frame
        if last is None or self._stream_id is None:
            raise OdysseyStateError("step() before reset(): call reset() to start a stream first", reason="no_active_stream")
        if self._stream_over is not None:
            raise OdysseyStateError(
                f"the episode's stream is over ({self._stream_over}); call reset() to start another", reason="stream_ended"
            )
        prompt = self._action_prompt(action)
        self._steps += 1
        reason = self._collect_interacts()
        if reason is None and prompt.strip() and prompt != self._requested_prompt:
            self._pending.append((prompt, self._steps, self._client.interact(prompt, wait=False)))
            self._requested_prompt = prompt
        frame = last
        if reason is None:
            try:
                frame = self._wait_for_stream_frame(last.received_at, need_index=last.index + self._frames_per_step)
            except (OdysseyStreamError, OdysseyConnectionError) as exc:
                reason = self._end_reason(exc)
                if reason is None:
                    raise
        if reason is not None:
            return self._truncated_by_server(last, reason)
        advanced = frame.index - last.index
        # Let the previous frame go before converting this one, so its 2.7 MB can be reused (else the
        # C heap grows and shrinks by a frame each step: ~400 page faults, about 2 ms, per step).
        del last
        self._last_frame = frame
        observation = frame.data
        info = self._info(frame, advanced=advanced)
        reward = self._reward(frame, info)
        truncated = self._max_episode_steps is not None and self._steps >= self._max_episode_steps
        if truncated:
            info["truncated_reason"] = "max_episode_steps"
        return observation, reward, False, truncated, info

    def render(self) -> Observation | None:
        """The last observation (``render_mode="rgb_array"``), or ``None`` without a render mode."""
        if self.render_mode != "rgb_array" or self._last_frame is None:
            return None
        return self._last_frame.data

    def close(self) -> None:
        """End the episode's stream and disconnect what the environment connected; idempotent."""
        if self._closed:
            return
        self._closed = True
        for _, _, future in self._pending:
            future.cancel()
        self._pending.clear()
        client = self._client
        if self._owns_client or self._owns_connection:
            client.disconnect()
        else:
            self._end_stream()
        self._stream_id = None
        super().close()

    # -- helpers -----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise OdysseyStateError("the environment is closed; make a new one", reason="not_connected")

    def _connected_client(self) -> Odyssey:
        client = self._client
        if not client.is_connected:
            client.connect()
            self._owns_connection = True
        return client

    def _end_stream(self) -> None:
        """End this environment's stream if it still runs; a stream or connection already gone is fine."""
        client = self._client
        if self._stream_id is None or client.current_stream_id != self._stream_id:
            return
        try:
            client.end_stream()
        except (OdysseyStreamError, OdysseyConnectionError):
            pass
        finally:
            self._stream_id = None

    def _settle_interacts(self) -> None:
        """Before a new stream: drop unsent prompts, let sent ones finish (bounded), ignore their outcome."""
        pending, self._pending = self._pending, []
        waiting = [future for _, _, future in pending if not future.cancel()]
        concurrent.futures.wait(waiting, timeout=_SETTLE_INTERACTS_S)

    def _collect_interacts(self) -> str | None:
        """Drop acknowledged prompts; raise a failed one's error, or return the stream's end reason."""
        still: list[tuple[str, int, concurrent.futures.Future[Acknowledgement]]] = []
        for prompt, step, future in self._pending:
            if not future.done():
                still.append((prompt, step, future))
                continue
            error = future.exception()
            if error is None:
                continue
            reason = self._end_reason(error)
            if reason is not None:
                self._pending = []
                return reason
            raise OdysseyStreamError(f"the prompt sent at step {step} ({_short(prompt)}) failed: {error}") from error
        self._pending = still
        return None

    def _wait_for_stream_frame(self, after: float, need_index: int | None) -> VideoFrame:
        """The newest frame of this stream received after ``after`` with ``index >= need_index``.

        Frames of another size are passed over: a service that answers a start
        before its last frames of the old picture are decoded would tag them
        with the new stream (the local server answers as the new picture's
        first frame goes out, so it never does).
        """
        client = self._client
        deadline = time.monotonic() + self._step_timeout
        frame = client.latest_frame()
        misfit: VideoFrame | None = None
        while not self._acceptable(frame, after, need_index):
            moment = after
            if frame is not None and frame.stream_id == self._stream_id and frame.received_at > after:
                moment = frame.received_at
                if (frame.width, frame.height) != self._frame_size:
                    misfit = frame
            try:
                frame = client.wait_for_frame(after=moment, timeout=max(0.0, deadline - time.monotonic()))
            except OdysseyTimeoutError:
                if misfit is None:
                    raise
                width, height = self._frame_size
                raise OdysseyStreamError(
                    f"the stream's frames are {misfit.width}x{misfit.height} but the observation space is "
                    f"{width}x{height}; construct the environment with portrait={not self._portrait}"
                ) from None
        assert frame is not None
        return frame

    def _acceptable(self, frame: VideoFrame | None, after: float, need_index: int | None) -> bool:
        if frame is None or frame.stream_id != self._stream_id or frame.received_at <= after:
            return False
        if (frame.width, frame.height) != self._frame_size:
            return False
        return need_index is None or frame.index >= need_index

    def _action_prompt(self, action: Any) -> str:
        if self._prompts is not None:
            if isinstance(action, (bool, np.bool_)) or not isinstance(action, numbers.Integral):
                raise TypeError(f"the action must be an int index into prompts, not {type(action).__name__}")
            index = int(action)
            if not 0 <= index < len(self._prompts):
                raise ValueError(f"the action must be an index 0..{len(self._prompts) - 1} into prompts, got {index}")
            return self._prompts[index]
        if not isinstance(action, str):
            raise TypeError(f"the action must be a prompt string, not {type(action).__name__}")
        if len(action) > self._max_prompt_length:
            raise ValueError(
                f"the prompt is {len(action)} characters; keep it within max_prompt_length={self._max_prompt_length}"
            )
        return action

    def _info(self, frame: VideoFrame, *, advanced: int) -> dict[str, Any]:
        return {
            "stream_id": self._stream_id,
            "frame_index": frame.index,
            "frame_timestamp_ms": frame.timestamp_ms,
            "prompt": frame.prompt,
            "requested_prompt": self._requested_prompt,
            "interacts_pending": sum(not future.done() for _, _, future in self._pending),
            "frames_advanced": advanced,
            "step": self._steps,
        }

    def _end_reason(self, error: BaseException) -> str | None:
        """Why the episode's stream ended under a call that raised ``error``; ``None`` if it did not."""
        if _caused_by_duration_limit(error):
            return "stream_duration_limit"
        if getattr(error, "reason", None) in ("stream_ended", "no_active_stream"):
            return "stream_ended"
        return None

    def _reward(self, frame: VideoFrame, info: Mapping[str, Any]) -> float:
        if self._reward_fn is None:
            return 0.0
        value = self._reward_fn(frame, info)
        try:
            reward = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"reward_fn must return a number, it returned {type(value).__name__}") from None
        if not math.isfinite(reward):
            raise ValueError(f"reward_fn returned {reward!r}; rewards must be finite numbers")
        return reward

    def _truncated_by_server(self, last: VideoFrame, reason: str) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        """The stream ended under the episode: the last frame again (a copy), truncated, with the reason."""
        self._stream_over = reason
        info = self._info(last, advanced=0)
        info["truncated_reason"] = reason
        return np.array(last.data), 0.0, False, True, info


def _caused_by_duration_limit(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, StreamDurationExceededError):
            return True
        seen = seen.__cause__
    return False


def _check_prompts(prompts: Sequence[str] | None) -> tuple[str, ...] | None:
    if prompts is None:
        return None
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise TypeError("prompts must be a list of prompt strings (the Discrete actions), e.g. ['The cat jumps', 'The cat sleeps']")
    if not prompts:
        raise ValueError("prompts is empty; give at least one prompt, or leave it out for Text actions")
    for i, prompt in enumerate(prompts):
        _check_prompt_text(f"prompts[{i}]", prompt)
    return tuple(prompts)


def _check_prompt_text(name: str, prompt: Any) -> None:
    if not isinstance(prompt, str):
        raise TypeError(f"{name} must be a string, not {type(prompt).__name__}")
    if not prompt.strip():
        raise ValueError(f"{name} is blank; describe a scene or an event, e.g. 'The cat jumps'")


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _check_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    seconds = float(value)
    if not 0 < seconds < math.inf:
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return seconds


def _check_options(options: Mapping[str, Any] | None, default_prompt: str) -> tuple[str, Any]:
    if options is None:
        return default_prompt, None
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict, not {type(options).__name__}")
    unknown = sorted(set(options) - set(_RESET_OPTIONS))
    if unknown:
        raise ValueError(f"unknown reset option(s) {unknown}; the options are {list(_RESET_OPTIONS)}")
    prompt = options.get("prompt", default_prompt)
    _check_prompt_text("options['prompt']", prompt)
    return prompt, options.get("image")


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="odyssey_sync.gym:OdysseyEnv", nondeterministic=True)
