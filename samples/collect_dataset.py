"""Collect a training dataset in parallel: live streams and simulations, as MP4 per stream plus Parquet rows.

Uses the hosted Odyssey API when ``ODYSSEY_API_KEY`` is set, otherwise an
in-process local server (``odyssey_sync.local.LocalOdyssey``). Needs
``pip install 'odyssey-sync[data]'`` (``[ray]`` for ``--backend ray``).
Run it again and it skips the episodes already in the folder.

    python samples/collect_dataset.py [--out DIR] [--workers 4] [--episodes 6] [--seconds 5] [--backend ray]
    python samples/collect_dataset.py --fast        # 2 short episodes, for a quick check
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

from odyssey_sync.collect import Episode, collect
from odyssey_sync.dataset import Dataset
from odyssey_sync.local import hosted_or_local

SCENES = [
    ("A lighthouse on a cliff at dusk", "A storm rolls in over the sea"),
    ("A cat on a windowsill", "The cat stretches and jumps down"),
    ("A forest path in autumn", "Snow starts to fall"),
    ("A desert road at noon", "A sandstorm approaches"),
]


def plan(count: int, seconds: float) -> list[Episode]:
    """``count`` episodes: live streams and simulations in turn, each steered once halfway."""
    episodes = []
    for number in range(count):
        prompt, change = SCENES[number % len(SCENES)]
        if number % 2 == 0:
            episode = Episode(prompt, seconds=seconds, interacts=[(seconds / 2, change)], name=f"live-{number:03d}")
        else:
            episode = Episode(prompt, seconds=seconds, interacts=[(seconds / 2, change)], kind="simulation",
                              name=f"simulation-{number:03d}")
        episodes.append(episode)
    return episodes


def main(argv: list[str] | None = None) -> int:
    """Collect the episodes and summarise the dataset; returns the exit code (1 if an episode failed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dataset-output"), help="the dataset folder")
    parser.add_argument("--workers", type=int, default=4, help="episodes running at once")
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each episode")
    parser.add_argument("--backend", choices=("threads", "ray"), default="threads")
    parser.add_argument("--fast", action="store_true", help="2 episodes of 1.5 s on 2 workers")
    args = parser.parse_args(argv)
    if args.fast:
        args.episodes, args.seconds, args.workers = 2, 1.5, 2

    with hosted_or_local() as api:
        api_key, api_url, target = api.api_key, api.api_url, api.description
        print(f"target: {target}; {args.episodes} episodes on {args.workers} {args.backend} workers -> {args.out}")
        results = collect(plan(args.episodes, args.seconds), args.out, workers=args.workers, backend=args.backend,
                          api_key=api_key, api_url=api_url)

    for result in results:
        detail = result.error or f"{result.frames} frames, stream {result.stream_id}"
        print(f"{result.episode_id:16} {result.status:9} {detail}")
    table = Dataset(args.out).read()
    episodes, prompts = table.column("episode_id").to_pylist(), table.column("prompt_index").to_pylist()
    per_prompt = collections.Counter(zip(episodes, prompts, strict=True))
    print(f"dataset: {table.num_rows} frame rows in {args.out / 'frames'}, videos in {args.out / 'videos'}")
    print(f"columns: {', '.join(table.column_names)}")
    print(f"frames per (episode, prompt): {dict(sorted(per_prompt.items()))}")
    print("read it back: pyarrow.parquet.read_table(out / 'frames') or odyssey_sync.dataset.Dataset(out).read()")
    return 1 if any(result.status == "failed" for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
