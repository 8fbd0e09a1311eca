"""Parallel collection: run many episodes at once, within the key's limits, into a dataset.

::

    from odyssey_sync.collect import Episode, collect

    episodes = [
        Episode("A cat on a windowsill", seconds=10, interacts=[(4, "The cat stretches")]),
        Episode("A storm at sea", seconds=10, kind="simulation"),      # rendered offline by simulate()
    ]
    results = collect(episodes, "data/", workers=4)                    # a thread pool, one client per thread
    results = collect(episodes, "data/", workers=8, backend="ray")     # Ray actors, one client per actor

An :class:`Episode` is a prompt, timed interacts and a length; it runs as a
live stream (``kind="live"``: the frames the client receives are written) or
as a simulation job (``kind="simulation"``: the server's recording is
written). Either way it becomes one episode of the
:class:`~odyssey_sync.dataset.Dataset` in the folder given (MP4 plus Parquet
rows), named by ``Episode.name`` or by its position and content, so a re-run
skips what is complete.

Limits: a refusal because the key is at its limit (HTTP 429: concurrent
sessions, queued jobs, request rate) sends the episode back to wait, with
jittered exponential back-off (``Backoff``), and never fails the batch;
other failures (a lost connection, a failed job) are retried ``retries``
times and then reported in the episode's result while the rest goes on. An
auth error, a monthly limit or a suspended account stops the batch and is
raised.

Ray (``pip install 'odyssey-sync[ray]'``): ``ray.init()`` on this machine
unless Ray is initialised already or ``ray_address`` names a cluster. Each
actor holds one client and writes its episode into a scratch folder of its
own; the finished files travel back to the driver, which adds them to the
dataset, so workers need no shared file system.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import logging
import math
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
from tqdm import tqdm

from ._account import _bar_off
from ._extras import require
from .client import Odyssey
from .dataset import Dataset, EpisodeSummary, check_episode_id
from .errors import (
    AccountSuspendedError,
    ConcurrentLimitReachedError,
    MonthlyLimitReachedError,
    OdysseyAuthError,
    OdysseyError,
    OdysseyStateError,
    OdysseyStreamError,
    RateLimitError,
)
from .scripts import MAX_PROMPT_CHARS, MAX_SCRIPT_MS, validate_script
from .types import SimulationJobStatus

__all__ = ["Backoff", "Episode", "EpisodeResult", "Interact", "collect", "episode_ids"]

Kind = Literal["live", "simulation"]
Status = Literal["written", "skipped", "failed", "cancelled"]

_FATAL = (OdysseyAuthError, MonthlyLimitReachedError, AccountSuspendedError)
_AT_LIMIT = (ConcurrentLimitReachedError, RateLimitError)
_MAX_SECONDS = MAX_SCRIPT_MS / 1000


# -- the episode description ---------------------------------------------------------------------


def _check_prompt(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be a non-empty string, got {value!r}")
    if len(value) >= MAX_PROMPT_CHARS:
        raise ValueError(f"{type(instance).__name__}.{attribute.name} is {len(value)} characters; keep it under {MAX_PROMPT_CHARS}")


def _check_seconds(instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= _MAX_SECONDS:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be a number of seconds in (0, {_MAX_SECONDS:g}], got {value!r}"
        )


@attrs.frozen
class Interact:
    """A prompt sent ``at`` seconds after the stream starts."""

    at: float = attrs.field(validator=_check_seconds)
    prompt: str = attrs.field(validator=_check_prompt)


def _to_interacts(values: Iterable[Any]) -> tuple[Interact, ...]:
    """Interacts from ``Interact``, ``(at, prompt)`` pairs or ``{"at": ..., "prompt": ...}`` dicts."""
    if isinstance(values, (str, bytes, Mapping)):
        raise TypeError("interacts must be a list of (at_seconds, prompt) pairs or Interact values")
    out = []
    for value in values:
        if isinstance(value, Interact):
            out.append(value)
        elif isinstance(value, Mapping):
            out.append(Interact(at=value.get("at"), prompt=value.get("prompt")))  # type: ignore[arg-type] # validated
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            out.append(Interact(at=value[0], prompt=value[1]))
        else:
            raise TypeError(f"an interact is (at_seconds, prompt) or Interact(at=, prompt=), not {value!r}")
    return tuple(out)


@attrs.frozen
class Episode:
    """One episode to collect: a start prompt, timed interacts, a length, and how to run it.

    ``kind="live"`` streams it (the frames the client receives are kept);
    ``kind="simulation"`` submits it as a simulation script (the server's
    recording is kept). ``interacts`` are ``(seconds_after_start, prompt)``
    pairs, strictly increasing, before ``seconds``. ``name`` becomes the
    episode id in the dataset (default: position and a digest of the
    content). Serialises with :meth:`to_json` / :meth:`from_json`.
    """

    prompt: str = attrs.field(validator=_check_prompt)
    seconds: float = attrs.field(default=10.0, validator=_check_seconds)
    interacts: tuple[Interact, ...] = attrs.field(default=(), converter=_to_interacts)
    portrait: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    kind: Kind = attrs.field(default="live", validator=attrs.validators.in_(("live", "simulation")))
    name: str | None = attrs.field(default=None)

    @name.validator
    def _check_name(self, attribute: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None:
            check_episode_id(value)

    def __attrs_post_init__(self) -> None:
        previous = 0.0
        for interact in self.interacts:
            if not previous < interact.at < self.seconds:
                raise ValueError(
                    f"interact at {interact.at:g} s: interacts must come after the start, in increasing order, "
                    f"and before the end at {self.seconds:g} s"
                )
            previous = interact.at
        validate_script(self.script(), where=f"episode {self.prompt[:40]!r}")

    def script(self) -> list[dict[str, Any]]:
        """The episode as a simulation script (what ``simulate(script=...)`` takes)."""
        entries: list[dict[str, Any]] = [{"timestamp_ms": 0, "start": {"prompt": self.prompt}}]
        for interact in self.interacts:
            entries.append({"timestamp_ms": round(interact.at * 1000), "interact": {"prompt": interact.prompt}})
        entries.append({"timestamp_ms": round(self.seconds * 1000), "end": {}})
        return entries

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_json` reads it back."""
        return {
            "prompt": self.prompt,
            "seconds": self.seconds,
            "interacts": [{"at": interact.at, "prompt": interact.prompt} for interact in self.interacts],
            "portrait": self.portrait,
            "kind": self.kind,
            "name": self.name,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> Episode:
        """An episode from :meth:`to_json`'s dict, or its JSON text."""
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, Mapping):
            raise TypeError(f"an episode is a JSON object, not {type(data).__name__}")
        unknown = set(data) - {field.name for field in attrs.fields(cls)}
        if unknown:
            raise ValueError(f"unknown episode fields {sorted(unknown)}; the fields are {[f.name for f in attrs.fields(cls)]}")
        if "prompt" not in data:
            raise ValueError("an episode needs a 'prompt'")
        return cls(**data)

    def digest(self) -> str:
        """A short digest of the content (name excluded), stable across runs and machines."""
        content = {key: value for key, value in self.to_json().items() if key != "name"}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()[:10]


def episode_ids(episodes: Sequence[Episode]) -> list[str]:
    """The dataset id of each episode: its ``name``, else ``<position>-<digest>``; raises on duplicates."""
    ids = [episode.name or f"{position:05d}-{episode.digest()}" for position, episode in enumerate(episodes)]
    seen: set[str] = set()
    for episode_id in ids:
        if episode_id in seen:
            raise ValueError(f"two episodes are named {episode_id!r}; episode names must be unique")
        seen.add(episode_id)
    return ids


# -- results and policy ---------------------------------------------------------------------------


@attrs.frozen
class EpisodeResult:
    """How one episode of a batch ended.

    ``status``: ``"written"`` (now in the dataset), ``"skipped"`` (complete
    from an earlier run), ``"failed"`` (``error`` says why; the batch went
    on) or ``"cancelled"`` (the batch stopped first). ``attempts`` counts the
    tries that ran, ``limit_waits`` the times the key's limit (429) sent the
    episode back to wait; ``seconds`` is its wall time, waits included.
    """

    episode_id: str
    index: int
    status: Status
    stream_id: str | None = None
    frames: int = 0
    dropped: int = 0
    attempts: int = 0
    limit_waits: int = 0
    seconds: float = 0.0
    error: str | None = None


def _non_negative(instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"Backoff.{attribute.name} must be a finite number >= 0, got {value!r}")


@attrs.frozen
class Backoff:
    """How long an episode refused by the key's limit (429) waits before trying again.

    The n-th wait is ``min(initial_s * 2**n, max_s)`` scaled by a random
    factor in [0.5, 1] (so workers refused together do not return together),
    or what the server asked for (``Retry-After``) when longer. An episode
    still refused after ``give_up_s`` of waiting fails (the batch goes on).
    """

    initial_s: float = attrs.field(default=0.5, validator=_non_negative)
    max_s: float = attrs.field(default=8.0, validator=_non_negative)
    give_up_s: float = attrs.field(default=3600.0, validator=_non_negative)

    def delay(self, waits: int, asked_s: float | None = None) -> float:
        """Seconds before try number ``waits`` + 1."""
        ceiling: float = min(self.initial_s * 2.0 ** min(waits, 30), self.max_s)
        return max(ceiling * random.uniform(0.5, 1.0), asked_s or 0.0)  # jitter, not crypto


@attrs.frozen(repr=False)
class _Account:
    """Where and as whom workers connect; the key never shows in a repr or a log."""

    api_key: str | None
    api_url: str | None

    def __repr__(self) -> str:
        return f"_Account(api_url={self.api_url!r}, api_key=...)"


@attrs.frozen
class _Settings:
    timeout: float
    simulation_timeout: float
    retries: int
    backoff: Backoff


class _Cancelled(Exception):
    """The batch is stopping; the episode gave up its work."""


# -- running one episode ---------------------------------------------------------------------------


class _Runner:
    """One worker: one client, running episodes one after another (a thread of the pool, or a Ray actor)."""

    def __init__(self, account: _Account, settings: _Settings, stop: threading.Event) -> None:
        self._client = Odyssey(api_key=account.api_key, api_url=account.api_url, timeout=settings.timeout)
        self._settings = settings
        self._stop = stop

    def close(self) -> None:
        """Disconnect the client (idempotent)."""
        self._client.disconnect()

    def run(self, episode: Episode, episode_id: str, index: int, dataset: Dataset) -> EpisodeResult:
        """Run ``episode`` into ``dataset`` with back-off and retries; fatal account errors are raised."""
        settings = self._settings
        began = time.monotonic()
        attempts = waits = 0
        waited = 0.0

        def result(status: Status, summary: EpisodeSummary | None = None, error: str | None = None) -> EpisodeResult:
            return EpisodeResult(
                episode_id=episode_id,
                index=index,
                status=status,
                stream_id=summary.stream_id if summary else None,
                frames=summary.frames if summary else 0,
                dropped=summary.dropped if summary else 0,
                attempts=attempts,
                limit_waits=waits,
                seconds=time.monotonic() - began,
                error=error,
            )

        while True:
            if self._stop.is_set():
                return result("cancelled")
            attempts += 1
            try:
                summary = self._run_once(episode, episode_id, index, dataset)
                return result("written", summary)
            except _FATAL:
                raise
            except _AT_LIMIT as refused:
                attempts -= 1
                delay = settings.backoff.delay(waits, _asked_delay(refused))
                waits += 1
                if waited + delay > settings.backoff.give_up_s:
                    return result("failed", error=f"still refused by the key's limit after {waited:.0f} s of waiting: {refused}")
                waited += delay
                if self._stop.wait(delay):
                    return result("cancelled")
            except _Cancelled:
                return result("cancelled")
            except (OdysseyError, ValueError) as error:
                if attempts > settings.retries:
                    return result("failed", error=f"{type(error).__name__}: {error}")
                if self._stop.wait(settings.backoff.delay(attempts - 1)):
                    return result("cancelled")
            finally:
                self._client.disconnect()

    def _run_once(self, episode: Episode, episode_id: str, index: int, dataset: Dataset) -> EpisodeSummary:
        if episode.kind == "simulation":
            return self._simulate(episode, episode_id, index, dataset)
        return self._stream(episode, episode_id, index, dataset)

    def _stream(self, episode: Episode, episode_id: str, index: int, dataset: Dataset) -> EpisodeSummary:
        client = self._client
        client.connect()
        with dataset.live_episode(episode_id, episode_index=index, description=episode.to_json()) as capture:
            client.start_stream(episode.prompt, portrait=episode.portrait)
            pending = collections.deque(episode.interacts)
            steering: list[concurrent.futures.Future[Any]] = []
            began: float | None = None  # the arrival of the stream's first frame: the episode's time 0
            for frame in client.frames():  # this stream's frames; ends if the server ends the stream
                if self._stop.is_set():
                    raise _Cancelled
                capture.add(frame)
                if began is None:
                    began = frame.received_at
                # Interacts go out on the wall clock, without waiting for their acknowledgements.
                while pending and pending[0].at <= time.monotonic() - began:
                    steering.append(client.interact(pending.popleft().prompt, wait=False))
                if frame.received_at - began >= episode.seconds:
                    break
            else:  # the server ended the stream first (its duration limit): keep what arrived
                for future in steering:
                    future.cancel()
                steering.clear()
            for future in steering:
                future.result(timeout=self._settings.timeout)
            _end_stream(client)
        return capture.commit()

    def _simulate(self, episode: Episode, episode_id: str, index: int, dataset: Dataset) -> EpisodeSummary:
        client = self._client
        job = client.simulate(script=episode.script(), portrait=episode.portrait)
        deadline = time.monotonic() + self._settings.simulation_timeout
        while True:  # in slices, so a stopping batch is noticed
            if self._stop.is_set():
                _cancel_quietly(client, job.job_id)
                raise _Cancelled
            try:
                detail = client.wait_for_simulation(
                    job, timeout=min(5.0, max(0.1, deadline - time.monotonic())), progress=False, poll_interval=0.25
                )
                break
            except OdysseyError as error:
                if not isinstance(error, TimeoutError) or time.monotonic() >= deadline:
                    raise
        if detail.status is not SimulationJobStatus.COMPLETED or not detail.streams:
            raise OdysseyStreamError(f"simulation job {detail.job_id} {detail.status.value}: {detail.error_message or 'no stream'}")
        stream = min(detail.streams, key=lambda item: item.script_index)
        return dataset.add_recording(
            client,
            stream.stream_id,
            episode_id=episode_id,
            episode_index=index,
            source="simulation",
            description={**episode.to_json(), "job_id": detail.job_id},
            timeout=self._settings.timeout,
        )


def _end_stream(client: Odyssey) -> None:
    """End the stream unless the server ended it already (its duration limit, which may close the connection).

    Called after ``frames()`` ended cleanly or was left: a failed connection raised there already.
    """
    try:
        client.end_stream()
    except OdysseyStateError as error:
        if error.reason not in ("no_active_stream", "stream_ended", "connection_ended"):
            raise


def _cancel_quietly(client: Odyssey, job_id: str) -> None:
    try:
        client.cancel_simulation(job_id, timeout=5.0)
    except OdysseyError:
        pass  # a job already rendering cannot be cancelled; it finishes on its own


def _asked_delay(refused: OdysseyError) -> float | None:
    return refused.retry_after if isinstance(refused, RateLimitError) else None


# -- the batch -------------------------------------------------------------------------------------


def collect(
    episodes: Iterable[Episode],
    dataset: str | os.PathLike[str] | Dataset,
    *,
    workers: int = 2,
    backend: Literal["threads", "ray"] = "threads",
    api_key: str | None = None,
    api_url: str | None = None,
    ray_address: str | None = None,
    retries: int = 2,
    backoff: Backoff | None = None,
    timeout: float = 30.0,
    simulation_timeout: float = 1800.0,
    progress: bool = True,
) -> list[EpisodeResult]:
    """Run ``episodes`` on ``workers`` parallel clients and write each into the dataset; results in episode order.

    ``backend="threads"`` (default): a thread pool in this process, one
    :class:`~odyssey_sync.Odyssey` client per thread. ``backend="ray"``: one
    Ray actor per worker, each with its own client (``ray_address`` for a
    cluster). ``api_key`` / ``api_url`` default to ``$ODYSSEY_API_KEY`` /
    ``$ODYSSEY_API_URL``. ``timeout`` bounds every call of a worker's client,
    ``simulation_timeout`` each simulation job. Episodes complete in the
    dataset from an earlier run are skipped. ``progress`` shows a tqdm bar
    on a terminal. Ctrl+C stops the batch: running episodes are abandoned
    (their partial files redone next time).
    """
    plan = list(episodes)
    for episode in plan:
        if not isinstance(episode, Episode):
            raise TypeError(f"collect() takes Episode values, not {type(episode).__name__}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if backend not in ("threads", "ray"):
        raise ValueError(f"backend must be 'threads' or 'ray', not {backend!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")
    for name, value in (("timeout", timeout), ("simulation_timeout", simulation_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    target = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    account = _Account(
        api_key=api_key if api_key is not None else os.environ.get("ODYSSEY_API_KEY"),
        api_url=api_url if api_url is not None else os.environ.get("ODYSSEY_API_URL"),
    )
    settings = _Settings(float(timeout), float(simulation_timeout), retries, backoff or Backoff())
    ids = episode_ids(plan)
    results: dict[int, EpisodeResult] = {}
    todo: list[tuple[int, str, Episode]] = []
    for index, (episode_id, episode) in enumerate(zip(ids, plan, strict=True)):
        if target.is_complete(episode_id):
            results[index] = EpisodeResult(episode_id=episode_id, index=index, status="skipped")
        else:
            todo.append((index, episode_id, episode))

    with tqdm(total=len(plan), initial=len(results), desc="episodes", unit="ep", disable=_bar_off(progress)) as bar:

        def done(result: EpisodeResult) -> None:
            results[result.index] = result
            bar.update()
            counts = collections.Counter(item.status for item in results.values())
            waits = sum(item.limit_waits for item in results.values())
            bar.set_postfix(written=counts["written"], failed=counts["failed"], limit_waits=waits, refresh=False)

        if todo:
            run = _run_threads if backend == "threads" else _run_ray
            run(todo, target, account, settings, min(workers, len(todo)), ray_address, done)
    return [results[index] for index in range(len(plan))]


def _run_threads(
    todo: list[tuple[int, str, Episode]],
    dataset: Dataset,
    account: _Account,
    settings: _Settings,
    workers: int,
    ray_address: str | None,
    done: Callable[[EpisodeResult], None],
) -> None:
    stop = threading.Event()
    local = threading.local()
    runners: list[_Runner] = []
    runners_lock = threading.Lock()

    def work(index: int, episode_id: str, episode: Episode) -> EpisodeResult:
        runner = getattr(local, "runner", None)
        if runner is None:
            runner = local.runner = _Runner(account, settings, stop)
            with runners_lock:
                runners.append(runner)
        return runner.run(episode, episode_id, index, dataset)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="odyssey-collect")
    futures = {pool.submit(work, *item): item for item in todo}
    try:
        for future in concurrent.futures.as_completed(futures):
            done(future.result())
    except BaseException:
        stop.set()
        for future in futures:
            future.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for runner in runners:
            runner.close()
        for future, (index, episode_id, _) in futures.items():
            if future.cancelled():
                done(EpisodeResult(episode_id=episode_id, index=index, status="cancelled"))


class _RayWorker:
    """The body of a Ray actor: one client, episodes written to a scratch folder and returned as bytes."""

    def __init__(self, account: _Account, settings: _Settings) -> None:
        self._runner = _Runner(account, settings, threading.Event())
        self._scratch = Path(tempfile.mkdtemp(prefix="odyssey-collect-"))

    def ready(self) -> bool:
        """True once the actor is up (its imports done)."""
        return True

    def run(self, episode: dict[str, Any], episode_id: str, index: int) -> tuple[EpisodeResult, bytes, bytes]:
        """Run one episode; its result and, when written, its MP4 and Parquet bytes."""
        folder = self._scratch / episode_id
        try:
            dataset = Dataset(folder)
            result = self._runner.run(Episode.from_json(episode), episode_id, index, dataset)
            if result.status != "written":
                return result, b"", b""
            video, rows = dataset.episode_files(episode_id)
            return result, video.read_bytes(), rows.read_bytes()
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        """Disconnect and remove the scratch folder."""
        self._runner.close()
        shutil.rmtree(self._scratch, ignore_errors=True)


_RAY_START_TIMEOUT_S = 180.0
_RAY_POLL_S = 0.5


def _run_ray(
    todo: list[tuple[int, str, Episode]],
    dataset: Dataset,
    account: _Account,
    settings: _Settings,
    workers: int,
    ray_address: str | None,
    done: Callable[[EpisodeResult], None],
) -> None:
    ray = require("ray", "ray", "Collecting on Ray")
    started_here = not ray.is_initialized()
    if started_here:
        options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
        if ray_address is None:
            options["num_cpus"] = max(workers, os.cpu_count() or 1)
        ray.init(address=ray_address, **options)
    actor_class = ray.remote(num_cpus=1)(_RayWorker)
    actors: list[Any] = []
    try:
        actors = [actor_class.remote(account, settings) for _ in range(workers)]
        try:
            ray.get([actor.ready.remote() for actor in actors], timeout=_RAY_START_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise RuntimeError(
                f"Ray could not start {workers} workers (1 CPU each) within {_RAY_START_TIMEOUT_S:g} s; "
                "the cluster may lack free CPUs: lower workers= or add nodes"
            ) from None
        _drive_actors(ray, actors, actor_class, account, settings, todo, dataset, done)
        # Every actor is idle now: let each disconnect and clean its scratch folder.
        ray.wait([actor.close.remote() for actor in actors], num_returns=len(actors), timeout=10)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started_here:
            ray.shutdown()


def _drive_actors(
    ray: Any,
    actors: list[Any],
    actor_class: Any,
    account: _Account,
    settings: _Settings,
    todo: list[tuple[int, str, Episode]],
    dataset: Dataset,
    done: Callable[[EpisodeResult], None],
) -> None:
    """Hand episodes to idle actors, and the files they return to the dataset."""
    waiting = collections.deque(todo)
    idle = list(actors)
    running: dict[Any, tuple[Any, tuple[int, str, Episode]]] = {}
    try:
        while waiting or running:
            while idle and waiting:
                actor, item = idle.pop(), waiting.popleft()
                index, episode_id, episode = item
                running[actor.run.remote(episode.to_json(), episode_id, index)] = (actor, item)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=_RAY_POLL_S)
            for ref in ready:
                actor, (index, episode_id, _) = running.pop(ref)
                try:
                    result, video, rows = ray.get(ref)
                except ray.exceptions.RayActorError as error:
                    done(EpisodeResult(episode_id=episode_id, index=index, status="failed", error=f"the Ray worker died: {error}"))
                    replacement = actor_class.remote(account, settings)
                    actors.append(replacement)
                    idle.append(replacement)
                    continue
                except ray.exceptions.RayTaskError as error:
                    raise error.as_instanceof_cause() from None
                idle.append(actor)
                if result.status == "written":
                    dataset.add_episode_files(episode_id, video, rows)
                done(result)
    except BaseException:  # the actors are killed by the caller; report what did not finish
        for _, (index, episode_id, _) in running.values():
            done(EpisodeResult(episode_id=episode_id, index=index, status="cancelled"))
        for index, episode_id, _ in waiting:
            done(EpisodeResult(episode_id=episode_id, index=index, status="cancelled"))
        raise
