"""The ``odyssey`` command: stream to MP4, list and download recordings, run simulations.

::

    export ODYSSEY_API_KEY=ody_...                 # as for the SDK (ODYSSEY_API_URL too)
    odyssey stream "A cat on a windowsill" --seconds 10 --out cat.mp4 --interacts steps.txt
    odyssey recordings list --limit 5
    odyssey recordings download STREAM_ID --what video events --dest out/
    odyssey simulate script.json --download out/
    odyssey local                                  # a local server to try it all on

Exit codes: 0 done, 1 the service, the network or a file failed, 2 a usage
error (arguments, input files, no API key), 130 interrupted (``stream`` keeps
the video recorded until Ctrl+C). Errors are one
line on stderr without a traceback; the API key is never printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
from tqdm import tqdm

from ._account import ARTIFACTS
from ._version import __version__
from .client import Odyssey
from .errors import OdysseyError, OdysseyStreamError, StreamDurationExceededError
from .save import Mp4Writer
from .types import Acknowledgement, SimulationJobStatus

__all__ = ["TimedPrompt", "main", "read_interacts"]

PROG = "odyssey"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_KEY_HELP = (
    "set ODYSSEY_API_KEY to your key (export ODYSSEY_API_KEY=ody_...), or run 'odyssey local' "
    "in another terminal and export the two variables it prints"
)


class UsageError(Exception):
    """A mistake in the command line or an input file: exit code 2."""


@attrs.frozen
class TimedPrompt:
    """A prompt to send ``at_s`` seconds into the stream (stream time, from its first frame)."""

    at_s: float
    prompt: str


# -- interacts files ------------------------------------------------------------------------------


def read_interacts(text: str, source: str = "interacts") -> list[TimedPrompt]:
    """Parse timed prompts, sorted by time, from text lines or JSON.

    Lines: ``SECONDS PROMPT`` (``3.0 The cat jumps``); blank lines and lines
    starting with ``#`` are skipped. JSON: a list of ``{"at": 3.0, "prompt":
    "The cat jumps"}`` objects, or of simulation-script ``interact`` entries
    (``{"timestamp_ms": 3000, "interact": {"prompt": "The cat jumps"}}``).
    Raises :class:`UsageError` naming the line or entry at fault.
    """
    if text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{source}: not valid JSON ({exc})") from None
        if not isinstance(data, list):
            raise UsageError(f'{source}: JSON interacts must be a list, e.g. [{{"at": 3.0, "prompt": "The cat jumps"}}]')
        prompts = [_json_interact(item, f"{source}: entry {i}") for i, item in enumerate(data)]
    else:
        prompts = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                prompts.append(_line_interact(line, f"{source}: line {number}"))
    return sorted(prompts, key=lambda timed: timed.at_s)


def _line_interact(line: str, where: str) -> TimedPrompt:
    parts = line.strip().split(maxsplit=1)
    if len(parts) < 2:
        raise UsageError(f"{where}: expected 'SECONDS PROMPT', e.g. '3.0 The cat jumps'; got {line.strip()!r}")
    try:
        seconds = float(parts[0])
    except ValueError:
        raise UsageError(f"{where}: {parts[0]!r} is not a number of seconds (expected 'SECONDS PROMPT')") from None
    return _timed(seconds, parts[1], where)


def _json_interact(item: Any, where: str) -> TimedPrompt:
    if not isinstance(item, dict):
        raise UsageError(f'{where}: expected an object like {{"at": 3.0, "prompt": "The cat jumps"}}')
    if "interact" in item or "timestamp_ms" in item:
        payload, ms = item.get("interact"), item.get("timestamp_ms")
        if not isinstance(payload, dict) or set(item) - {"interact", "timestamp_ms"}:
            raise UsageError(
                f"{where}: only interact entries are taken here (the stream starts with PROMPT and ends after --seconds)"
            )
        if isinstance(ms, bool) or not isinstance(ms, (int, float)):
            raise UsageError(f"{where}: timestamp_ms must be a number of milliseconds")
        return _timed(ms / 1000, payload.get("prompt"), where)
    if set(item) != {"at", "prompt"}:
        raise UsageError(f'{where}: expected the keys "at" (seconds) and "prompt", got {sorted(item)}')
    at = item["at"]
    if isinstance(at, bool) or not isinstance(at, (int, float)):
        raise UsageError(f'{where}: "at" must be a number of seconds')
    return _timed(float(at), item["prompt"], where)


def _timed(seconds: float, prompt: Any, where: str) -> TimedPrompt:
    if not math.isfinite(seconds) or seconds < 0:
        raise UsageError(f"{where}: the time must be a number of seconds >= 0, got {seconds!r}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise UsageError(f"{where}: the prompt is missing or blank")
    return TimedPrompt(seconds, prompt.strip())


# -- commands -------------------------------------------------------------------------------------


@contextmanager
def _client(args: argparse.Namespace) -> Iterator[Odyssey]:
    if not os.environ.get("ODYSSEY_API_KEY", "").strip():
        raise UsageError(f"no API key: {_KEY_HELP}")
    with Odyssey(timeout=args.timeout) as client:
        yield client


def _progress(args: argparse.Namespace) -> bool:
    """Whether to show progress (on a terminal only: the bars turn themselves off otherwise)."""
    return not args.quiet


def cmd_stream(args: argparse.Namespace) -> int:
    """``odyssey stream``: record a live stream to MP4, sending timed prompts on the way."""
    if not args.prompt.strip():
        raise UsageError("PROMPT is blank; describe the world to start, e.g. 'A cat on a windowsill'")
    _check_out(args.out)
    interacts = _load_interacts(args.interacts, args.seconds)
    with _client(args) as client:
        client.connect()
        stream_id = client.start_stream(args.prompt, portrait=args.portrait)
        started_with = client.last_applied_prompt or args.prompt
        out = _output_path(args.out, stream_id)
        with Mp4Writer(out) as writer:
            result = _record(client, stream_id, writer, args, interacts)
            if not result.frames and result.interrupted:
                raise KeyboardInterrupt
            if not result.frames:
                raise OdysseyStreamError(f"no video of the stream arrived ({result.ended_early or 'nothing to write'})")
            video = writer.close()
        if client.current_stream_id == stream_id:
            client.end_stream()
    print(f"stream   {stream_id}")
    print(f"video    {video.path} ({video.frames} frames, {video.width}x{video.height}, {video.duration_seconds:.1f} s)")
    print(f"prompt   0.0 s  {started_with}")
    failed = 0
    for timed, outcome in result.prompts:
        print(f"prompt   {timed.at_s:.1f} s  {outcome}")
        failed += outcome.startswith("failed:")
    if result.missed or video.dropped:
        print(
            f"{PROG} stream: note: {result.missed + video.dropped} frames are missing from the video "
            f"({result.missed} skipped while reading fell behind, {video.dropped} while encoding did)",
            file=sys.stderr,
        )
    if result.ended_early:
        print(f"{PROG} stream: note: {result.ended_early}", file=sys.stderr)
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else EXIT_OK


@attrs.define
class _Recorded:
    frames: int = 0
    seconds: float = 0.0
    missed: int = 0
    prompts: list[tuple[TimedPrompt, str]] = attrs.Factory(list)
    ended_early: str | None = None
    interrupted: bool = False


def _record(
    client: Odyssey, started: Acknowledgement, writer: Mp4Writer, args: argparse.Namespace, interacts: list[TimedPrompt]
) -> _Recorded:
    """Write the stream's frames until ``args.seconds`` of video; send each prompt when its time comes.

    Prompts are timed by the clock from the stream's start, not by the frames
    written, so a writer that falls behind does not delay them.
    """
    result = _Recorded()
    queue, sent = list(interacts), []
    previous_index: int | None = None
    limit_ms = args.seconds * 1000
    progress = tqdm(
        total=args.seconds,
        desc="Recording",
        bar_format="{desc} {n:.1f}/{total:g} s of video |{bar}| {elapsed}",
        disable=None if _progress(args) else True,  # None: only on a terminal, as the SDK's bars
        leave=False,
    )
    with progress as bar:
        try:
            for frame in client.frames(timeout=args.timeout):
                while queue and time.monotonic() - started.received_at >= queue[0].at_s:
                    timed = queue.pop(0)
                    sent.append((timed, client.interact(timed.prompt, wait=False)))
                if (frame.height > frame.width) != args.portrait:
                    continue  # an old-picture frame decoded after the start's answer, from a service that answers early
                if previous_index is None:
                    previous_index = frame.index - 1
                if frame.timestamp_ms >= limit_ms:
                    break
                writer.write(frame)  # never blocks; counts what it has to drop when encoding falls behind
                result.frames += 1
                result.missed += max(0, frame.index - previous_index - 1)
                previous_index = frame.index
                result.seconds = frame.timestamp_ms / 1000
                bar.update(result.seconds - bar.n)
            else:
                result.ended_early = f"the stream ended after {result.seconds:.1f} s: {_why_it_ended(client)}"
        except KeyboardInterrupt:  # Ctrl+C ends the recording early; the video so far is kept
            result.interrupted = True
            result.ended_early = f"interrupted after {result.seconds:.1f} s; the video so far is kept"
    for timed, future in sent:
        try:
            result.prompts.append((timed, str(future.result(timeout=args.timeout))))
        except (OdysseyError, TimeoutError) as exc:
            result.prompts.append((timed, f"failed: {exc}"))
    result.prompts += [(timed, "not sent: the recording ended first") for timed in queue]
    return result


def _why_it_ended(client: Odyssey) -> str:
    """After the stream's frames ran out: the reason, from the error a later read raises (it names it)."""
    try:
        client.get_frame(timeout=0)
    except OdysseyError as exc:
        cause = exc.__cause__
        return str(cause if isinstance(cause, StreamDurationExceededError) else exc)
    return "it ended"


def _load_interacts(source: str | None, seconds: float) -> list[TimedPrompt]:
    if source is None:
        return []
    if source == "-":
        text, name = sys.stdin.read(), "stdin"
    else:
        try:
            text, name = Path(source).read_text(encoding="utf-8"), source
        except OSError as exc:
            raise UsageError(f"cannot read --interacts {source}: {exc.strerror or exc}") from None
    interacts = read_interacts(text, name)
    late = [timed for timed in interacts if timed.at_s >= seconds]
    if late:
        raise UsageError(
            f"{name}: the prompt at {late[0].at_s:g} s comes after the recording ends (--seconds {seconds:g}); "
            "raise --seconds or move the prompt earlier"
        )
    return interacts


def _check_out(out: str | None) -> None:
    if out and not _is_folder(out) and Path(out).suffix.lower() != ".mp4":
        raise UsageError(f"--out {out}: name an .mp4 file or a folder (end it with '/')")


def _is_folder(out: str) -> bool:
    return out.endswith(("/", os.sep)) or Path(out).is_dir()


def _output_path(out: str | None, stream_id: str) -> Path:
    path = Path(out) if out else Path(f"{stream_id}.mp4")
    if out and _is_folder(out):
        path = path / f"{stream_id}.mp4"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create the folder {path.parent}: {exc.strerror or exc}") from None
    return path


def cmd_recordings_list(args: argparse.Namespace) -> int:
    """``odyssey recordings list``: this account's stream recordings, newest first."""
    with _client(args) as client:
        items = []
        for info in client.iter_stream_recordings(page_size=min(args.limit, 100)):
            items.append(info)
            if len(items) >= args.limit:
                break
    if args.json:
        print(json.dumps([attrs.asdict(info) for info in items], indent=2))
        return EXIT_OK
    if not items:
        print("no recordings yet")
        return EXIT_OK
    print(f"{'STREAM ID':<38}  {'STARTED':<26}  {'SECONDS':>7}  SIZE")
    for info in items:
        seconds = "-" if info.duration_seconds is None else f"{info.duration_seconds:.1f}"
        print(f"{info.stream_id:<38}  {info.started_at:<26}  {seconds:>7}  {info.width}x{info.height}")
    return EXIT_OK


def cmd_recordings_download(args: argparse.Namespace) -> int:
    """``odyssey recordings download``: a stream's recorded files into a folder."""
    with _client(args) as client:
        paths = client.download_recording(args.stream_id, args.dest, what=_what(args.what), progress=_progress(args))
    for kind, path in paths.items():
        print(f"{kind:<9}{path}")
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    """``odyssey simulate``: submit a script, optionally wait for it and download its videos."""
    request = _load_script(args.script)
    wait = args.wait or args.download is not None
    with _client(args) as client:
        job = client.simulate(**request, portrait=args.portrait)
        print(f"job      {job.job_id} ({job.status})")
        if not wait:
            return EXIT_OK
        detail = client.wait_for_simulation(job, timeout=args.wait_timeout, progress=_progress(args))
        print(f"status   {detail.status}")
        if detail.status is not SimulationJobStatus.COMPLETED:
            reason = detail.error_message or "no reason given"
            print(f"{PROG} simulate: error: the job ended {detail.status}: {reason}", file=sys.stderr)
            return EXIT_FAILED
        for stream in detail.streams:
            print(f"stream   {stream.stream_id} (script {stream.script_index}, {stream.duration_seconds} s)")
            if args.download is not None:
                paths = client.download_recording(
                    stream.stream_id, args.download, what=_what(args.what), progress=_progress(args)
                )
                for kind, path in paths.items():
                    print(f"{kind:<9}{path}")
    return EXIT_OK


def _load_script(source: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the script {source}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source}: not valid JSON ({exc})") from None
    if isinstance(data, list):
        return {"scripts": data} if data and all(isinstance(item, list) for item in data) else {"script": data}
    if isinstance(data, dict) and len(data) == 1 and next(iter(data)) in ("script", "scripts", "script_url"):
        return dict(data)
    raise UsageError(
        f"{source}: expected a script (a list of entries), a list of scripts, or an object with one of "
        '"script", "scripts", "script_url"; e.g. [{"timestamp_ms": 0, "start": {"prompt": "A cat"}}, '
        '{"timestamp_ms": 5000, "end": {}}]'
    )


def _what(names: Sequence[str]) -> list[str]:
    return list(ARTIFACTS) if "all" in names else list(names)


def cmd_local(argv: Sequence[str]) -> int:
    """``odyssey local``: run the local Odyssey-compatible server (the options of ``odyssey-local``)."""
    from .local.__main__ import main as local_main

    return local_main(argv)


# -- the parser -----------------------------------------------------------------------------------


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
    return value


def _page_limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    """The ``odyssey`` argument parser (one sub-command per job)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--timeout", type=_positive_seconds, default=30.0, help="seconds any one call may wait (default: 30)")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars (shown only on a terminal anyway)")

    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=_Formatter,
        description="Odyssey from the command line: stream a world to MP4, fetch recordings, run simulations.",
        epilog=(
            "The API key and URL come from ODYSSEY_API_KEY and ODYSSEY_API_URL, as for the SDK.\n"
            "Exit codes: 0 done, 1 the service, the network or a file failed, 2 usage error, 130 interrupted.\n\n"
            "Example:\n"
            '  odyssey stream "A cat on a windowsill" --seconds 10 --out cat.mp4\n'
            "Run 'odyssey COMMAND --help' for each command's options and an example."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    stream = commands.add_parser(
        "stream",
        parents=[common],
        formatter_class=_Formatter,
        help="record a live stream to MP4, with timed prompts",
        description=(
            "Start a stream with PROMPT, record --seconds of its video to an MP4 file, and send each\n"
            "timed prompt of --interacts when the video reaches its time. Prompts go out without\n"
            "waiting for their acknowledgement; the applied prompts are printed at the end."
        ),
        epilog=(
            "Interacts file: one 'SECONDS PROMPT' per line ('#' starts a comment), or JSON:\n"
            '  [{"at": 3.0, "prompt": "The cat jumps"}]  (simulation-script interact entries work too)\n\n'
            "Example:\n"
            '  printf "3 The cat jumps\\n6 The cat sleeps\\n" | odyssey stream "A cat on a windowsill" \\\n'
            "      --seconds 10 --out cat.mp4 --interacts -"
        ),
    )
    stream.add_argument("prompt", metavar="PROMPT", help="what the world shows at the start")
    stream.add_argument("--seconds", type=_positive_seconds, default=10.0, help="seconds of video to record (default: 10)")
    stream.add_argument("--out", metavar="PATH", help="the MP4 file, or a folder for STREAM_ID.mp4 (default: ./STREAM_ID.mp4)")
    stream.add_argument("--portrait", action="store_true", help="704x1280 instead of 1280x704")
    stream.add_argument("--interacts", metavar="FILE", help="timed prompts to send, from FILE or '-' for stdin")
    stream.set_defaults(handler=cmd_stream)

    recordings = commands.add_parser(
        "recordings",
        formatter_class=_Formatter,
        help="list or download stream recordings",
        description="Every stream is recorded: list this account's recordings or download their files.",
        epilog="Examples:\n  odyssey recordings list --limit 5\n  odyssey recordings download STREAM_ID --what all --dest out/",
    )
    recording_commands = recordings.add_subparsers(dest="recordings_command", metavar="ACTION", required=True)
    listing = recording_commands.add_parser(
        "list",
        parents=[common],
        formatter_class=_Formatter,
        help="this account's recordings, newest first",
        description="List this account's stream recordings, newest first.",
        epilog="Example:\n  odyssey recordings list --limit 5 --json",
    )
    listing.add_argument("--limit", type=_page_limit, default=20, help="how many to list (default: 20)")
    listing.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    listing.set_defaults(handler=cmd_recordings_list)
    what_help = f"files to fetch: {', '.join(ARTIFACTS)} or all (default: video)"
    download = recording_commands.add_parser(
        "download",
        parents=[common],
        formatter_class=_Formatter,
        help="download a recording's files",
        description="Download a stream's recorded files (named STREAM_ID.mp4, .events.jsonl, .jpg, .preview.mp4).",
        epilog="Example:\n  odyssey recordings download 4ccccddf-7054-4da5-97f8-bbd134dbd349 --what video events --dest out/",
    )
    download.add_argument("stream_id", metavar="STREAM_ID", help="the stream's id (see 'odyssey recordings list')")
    download.add_argument("--what", nargs="+", choices=[*ARTIFACTS, "all"], default=["video"], metavar="FILE", help=what_help)
    download.add_argument("--dest", default=".", metavar="DIR", help="the folder to write to (default: .)")
    download.set_defaults(handler=cmd_recordings_download)

    simulate = commands.add_parser(
        "simulate",
        parents=[common],
        formatter_class=_Formatter,
        help="run a scripted simulation job",
        description=(
            "Submit SCRIPT.json as a simulation job (rendered offline, no connection needed). The file holds\n"
            'a script (a list of entries), a list of scripts, or {"script_url": "https://..."}.'
        ),
        epilog=(
            "Example script.json:\n"
            '  [{"timestamp_ms": 0, "start": {"prompt": "A cat on a windowsill"}},\n'
            '   {"timestamp_ms": 3000, "interact": {"prompt": "The cat stretches"}},\n'
            '   {"timestamp_ms": 6000, "end": {}}]\n\n'
            "Example:\n  odyssey simulate script.json --download out/"
        ),
    )
    simulate.add_argument("script", metavar="SCRIPT.json", help="the script file ('-' for stdin)")
    simulate.add_argument("--wait", action="store_true", help="wait until the job finishes")
    simulate.add_argument("--download", metavar="DIR", help="wait, then download each stream's files into DIR")
    simulate.add_argument("--what", nargs="+", choices=[*ARTIFACTS, "all"], default=["video"], metavar="FILE", help=what_help)
    simulate.add_argument("--portrait", action="store_true", help="704x1280 instead of 1280x704")
    simulate.add_argument(
        "--wait-timeout", type=_positive_seconds, default=None, metavar="SECONDS", help="give up waiting after SECONDS (default: never)"
    )
    simulate.set_defaults(handler=cmd_simulate)

    # Listed for --help only: main() hands "odyssey local ..." to odyssey-local's own parser.
    commands.add_parser("local", help="run a local Odyssey-compatible server (see 'odyssey local --help')")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``odyssey`` command; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["local"]:
        return cmd_local(arguments[1:])
    args = build_parser().parse_args(arguments)
    where = " ".join(part for part in (PROG, args.command, getattr(args, "recordings_command", None)) if part)
    try:
        code: int = args.handler(args)
        return code
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UsageError, ValueError) as exc:
        print(f"{where}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OdysseyError as exc:
        print(f"{where}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"{where}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
