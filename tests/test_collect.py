"""odyssey_sync.collect: episodes as values, a thread pool and Ray against the local server, 429 back-off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from video_checks import decode

from odyssey_sync import OdysseyAuthError
from odyssey_sync.collect import (
    Backoff,
    Episode,
    EpisodeResult,
    Interact,
    collect,
    episode_ids,
)
from odyssey_sync.dataset import Dataset
from odyssey_sync.local import LocalOdyssey

# End to end: run on Python 3.11 (every test); the 3.10 and 3.12 passes skip them (see .ci/run).
pytestmark = pytest.mark.slow

FAST = Backoff(initial_s=0.1, max_s=0.5)
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def limited_server() -> Iterator[LocalOdyssey]:
    """A server whose key may hold 2 sessions at once, with 2 simulation workers."""
    with LocalOdyssey(max_concurrent_per_key=2, simulation_workers=2) as local:
        yield local


def check_written(dataset: Dataset, results: list[EpisodeResult]) -> None:
    """Every result written, and the dataset holds exactly those episodes, each video matching its rows."""
    assert [r.status for r in results] == ["written"] * len(results), [r.error for r in results]
    assert dataset.complete_episodes() == sorted(r.episode_id for r in results)
    table = dataset.read()
    for result in results:
        rows = [row for row in table.to_pylist() if row["episode_id"] == result.episode_id]
        video = decode(dataset.root / "videos" / f"{result.episode_id}.mp4")
        assert len(rows) == video.count == result.frames > 0
        assert {row["episode_index"] for row in rows} == {result.index}
        assert {row["stream_id"] for row in rows} == {result.stream_id}


# -- the episode value ---------------------------------------------------------------------------


def test_an_episode_round_trips_through_json() -> None:
    episode = Episode("A cat", seconds=6, interacts=[(2, "The cat jumps"), {"at": 4.5, "prompt": "It lands"}],
                      portrait=True, kind="simulation", name="cat-1")
    assert episode.interacts == (Interact(2, "The cat jumps"), Interact(4.5, "It lands"))
    text = json.dumps(episode.to_json())
    assert Episode.from_json(text) == Episode.from_json(json.loads(text)) == episode
    assert episode.script() == [
        {"timestamp_ms": 0, "start": {"prompt": "A cat"}},
        {"timestamp_ms": 2000, "interact": {"prompt": "The cat jumps"}},
        {"timestamp_ms": 4500, "interact": {"prompt": "It lands"}},
        {"timestamp_ms": 6000, "end": {}},
    ]
    assert episode.digest() == Episode.from_json({**episode.to_json(), "name": None}).digest()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": " "}, r"prompt must be a non-empty string"),
        ({"prompt": "A", "seconds": 0}, r"seconds in \(0, 150\]"),
        ({"prompt": "A", "seconds": 151}, r"seconds in \(0, 150\]"),
        ({"prompt": "A", "seconds": 5, "interacts": [(6, "late")]}, r"before the end at 5 s"),
        ({"prompt": "A", "seconds": 5, "interacts": [(3, "b"), (2, "a")]}, r"increasing order"),
        ({"prompt": "A", "kind": "offline"}, r"'kind' must be in"),
        ({"prompt": "A", "name": "no/slash"}, r"cannot name a file"),
        ({"prompt": "A", "interacts": "jump"}, r"list of \(at_seconds, prompt\) pairs"),
    ],
)
def test_a_bad_episode_is_refused_with_what_to_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        Episode(**kwargs)  # type: ignore[arg-type]


def test_from_json_names_unknown_fields() -> None:
    with pytest.raises(ValueError, match=r"unknown episode fields \['second'\]"):
        Episode.from_json({"prompt": "A", "second": 3})


def test_episode_ids_are_stable_and_unique() -> None:
    episodes = [Episode("A"), Episode("B", name="b"), Episode("A")]
    ids = episode_ids(episodes)
    assert ids[1] == "b" and ids[0].startswith("00000-") and ids[2].startswith("00002-") and ids[0][6:] == ids[2][6:]
    assert ids == episode_ids(list(episodes))
    with pytest.raises(ValueError, match=r"two episodes are named 'b'"):
        episode_ids([Episode("A", name="b"), Episode("B", name="b")])


# -- the thread pool -----------------------------------------------------------------------------


def test_more_workers_than_the_key_allows_complete_through_back_off(limited_server: LocalOdyssey, tmp_path: Path) -> None:
    episodes = [Episode(f"A lighthouse, take {i}", seconds=2.0, interacts=[(1.0, "A storm rolls in")]) for i in range(4)]
    results = collect(episodes, tmp_path, workers=4, api_key=limited_server.api_key, api_url=limited_server.url,
                      backoff=FAST, progress=False)
    dataset = Dataset(tmp_path)
    check_written(dataset, results)
    # Four workers started together against a limit of two: some were sent back to wait, none failed.
    assert sum(r.limit_waits for r in results) > 0
    assert all(r.attempts == 1 for r in results)
    for result in results:
        rows = [row for row in dataset.read().to_pylist() if row["episode_id"] == result.episode_id]
        # The prompt in force: the start prompt, then (once acknowledged, which a loaded machine may delay
        # past the end) the interact's.
        indexes = [row["prompt_index"] for row in rows]
        assert indexes == sorted(indexes) and set(indexes) <= {0, 1} and indexes[0] == 0
        assert {row["prompt"].split(",")[0] for row in rows if row["prompt_index"] == 1} <= {"A storm rolls in"}

    again = collect(episodes, tmp_path, workers=4, api_key=limited_server.api_key, api_url=limited_server.url,
                    progress=False)
    assert [r.status for r in again] == ["skipped"] * 4


def test_simulation_episodes_are_written_from_their_recordings(limited_server: LocalOdyssey, tmp_path: Path) -> None:
    episodes = [Episode(f"A storm at sea, take {i}", seconds=1.5, interacts=[(0.5, "Lightning")], kind="simulation")
                for i in range(3)]
    results = collect(episodes, tmp_path, workers=3, api_key=limited_server.api_key, api_url=limited_server.url,
                      backoff=FAST, progress=False)
    dataset = Dataset(tmp_path)
    check_written(dataset, results)
    rows = [row for row in dataset.read().to_pylist() if row["episode_index"] == 0]
    assert [row["prompt_index"] for row in rows] == [0] * 10 + [1] * 20
    assert {row["source"] for row in rows} == {"simulation"}
    assert dataset.episodes()[0]["description"]["kind"] == "simulation"


def test_a_failing_episode_is_retried_then_reported_while_the_batch_goes_on(
    server: LocalOdyssey, tmp_path: Path
) -> None:
    server.faults.stream_error_on_start = "internal_error"  # the next start is refused, once
    results = collect([Episode("A dog", seconds=1.0, name="dog")], tmp_path, workers=1, api_key=server.api_key,
                      api_url=server.url, backoff=FAST, progress=False)
    assert (results[0].status, results[0].attempts) == ("written", 2)

    server.faults.stream_error_on_start = "internal_error"
    results = collect([Episode("A cat", seconds=1.0, name="cat"), Episode("A cow", seconds=1.0, name="cow")], tmp_path,
                      workers=1, api_key=server.api_key, api_url=server.url, retries=0, backoff=FAST, progress=False)
    assert [(r.episode_id, r.status) for r in results] == [("cat", "failed"), ("cow", "written")]
    assert "OdysseyStreamError" in (results[0].error or "")
    assert Dataset(tmp_path).complete_episodes() == ["cow", "dog"]


def test_a_rate_limit_waits_as_long_as_the_server_asks(server: LocalOdyssey, tmp_path: Path) -> None:
    server.faults.usage_error = "RATE_LIMITED"  # one 429 with retry_after_seconds=1
    (result,) = collect([Episode("A dog", seconds=1.0)], tmp_path, workers=1, api_key=server.api_key,
                        api_url=server.url, backoff=FAST, progress=False)
    assert (result.status, result.limit_waits, result.attempts) == ("written", 1, 1)
    assert result.seconds >= 1.0


def test_an_account_error_stops_the_batch(server: LocalOdyssey, tmp_path: Path) -> None:
    with pytest.raises(OdysseyAuthError):
        collect([Episode("A dog", seconds=1.0)] * 1, tmp_path, api_key="ody_wrong_key_123", api_url=server.url,
                progress=False)
    server.faults.usage_error = "MONTHLY_LIMIT_REACHED"
    with pytest.raises(Exception, match="Monthly usage limit"):
        collect([Episode("A dog", seconds=1.0)], tmp_path, api_key=server.api_key, api_url=server.url, progress=False)
    assert Dataset(tmp_path).complete_episodes() == []


def test_collect_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"workers must be an int >= 1"):
        collect([Episode("A")], tmp_path, workers=0)
    with pytest.raises(ValueError, match=r"backend must be 'threads' or 'ray'"):
        collect([Episode("A")], tmp_path, backend="dask")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"takes Episode values"):
        collect(["A cat"], tmp_path)  # type: ignore[list-item]


def test_without_ray_the_error_says_which_extra_to_install(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["ray"] = None  # as if it were not installed
        from odyssey_sync.collect import Episode, collect
        try:
            collect([Episode("A cat")], {str(tmp_path)!r}, backend="ray", api_key="ody_x", progress=False)
        except ImportError as error:
            print(error)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=False,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr
    assert "Collecting on Ray needs the optional package 'ray'" in done.stdout
    assert "pip install 'odyssey-sync[ray]'" in done.stdout


# -- Ray ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ray_actors_collect_live_and_simulated_episodes_within_the_limit(tmp_path: Path) -> None:
    with LocalOdyssey(max_concurrent_per_key=1) as local:
        episodes = [
            Episode("A lighthouse, take 0", seconds=1.5, interacts=[(0.5, "A storm rolls in")]),
            Episode("A lighthouse, take 1", seconds=1.5),
            Episode("A storm at sea", seconds=1.5, kind="simulation"),
        ]
        results = collect(episodes, tmp_path, workers=2, backend="ray", api_key=local.api_key, api_url=local.url,
                          backoff=FAST, progress=False)
    dataset = Dataset(tmp_path)
    check_written(dataset, results)
    assert {row["source"] for row in dataset.read().to_pylist()} == {"live", "simulation"}
    assert not (tmp_path / ".partial").exists()


def test_a_live_episode_longer_than_the_servers_stream_limit_keeps_what_it_got(tmp_path: Path) -> None:
    with LocalOdyssey(max_stream_seconds=1.0) as local:
        (result,) = collect([Episode("A dog", seconds=3.0, interacts=[(2.0, "The dog sits")])], tmp_path, workers=1,
                            api_key=local.api_key, api_url=local.url, retries=0, progress=False)
    assert result.status == "written", result.error
    rows = Dataset(tmp_path).read().to_pylist()
    assert len(rows) == result.frames and 3 <= result.frames <= 25  # the 1 s the server allowed (20 fps at most)
    assert rows[-1]["timestamp_ms"] <= 1200
