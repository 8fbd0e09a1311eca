"""``python -m odyssey_sync.local``: run the local server until Ctrl+C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Sequence

from .config import ApiKey, ServerConfig
from .server import LocalOdyssey

__all__ = ["main"]

DEFAULT_PORT = 8765


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="odyssey-local",
        description="Run a local Odyssey-compatible server (REST, signaling, WebRTC video).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0 = any free port)")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accepted API key, starting with 'ody_' (repeatable; default: one random key)",
    )
    parser.add_argument("--fps", type=float, default=20.0, help="video frame rate (default: 20)")
    parser.add_argument("--max-stream-seconds", type=float, default=150.0, help="per-stream limit (default: 150)")
    parser.add_argument("--max-concurrent", type=int, default=5, help="concurrent sessions per key (default: 5)")
    parser.add_argument("--capacity", type=int, default=None, help="total concurrent sessions (default: unbounded)")
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="keep recordings and simulation jobs in DIR across restarts (default: a temporary directory)",
    )
    parser.add_argument("--no-recording", action="store_true", help="do not record interactive streams")
    parser.add_argument(
        "--allow-private-script-urls",
        action="store_true",
        help="let simulation jobs fetch script_url from loopback, private and link-local addresses "
        "(default: public addresses only)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until interrupted; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = ServerConfig(
            host=args.host,
            port=args.port,
            fps=args.fps,
            max_stream_seconds=args.max_stream_seconds,
            max_concurrent_per_key=args.max_concurrent,
            capacity=args.capacity,
            data_dir=args.data_dir,
            recording=not args.no_recording,
            allow_private_script_urls=args.allow_private_script_urls,
        )
        keys = [ApiKey(key, name=f"key{i + 1}") for i, key in enumerate(args.api_keys)] if args.api_keys else None
        server = LocalOdyssey(config, api_keys=keys)
    except ValueError as exc:
        print(f"odyssey-local: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()
    # Handled explicitly: a SIGINT that the launching shell set to "ignore" must still stop the server.
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server.start()
        except OSError as exc:
            print(f"odyssey-local: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        print(f"Local Odyssey server running at {server.url} (Ctrl+C to stop)")
        print(f"Recordings and simulation jobs in {server.data_dir}")
        for key in server.api_keys:
            print(f"export ODYSSEY_API_URL={server.url} ODYSSEY_API_KEY={key.key}")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
        print("Stopping...")
        return 0
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
