"""The local server in a process of its own, so its CPU and memory are measured apart from the clients'.

    python -m benchmarks.server_proc --fps 20 --set max_stream_seconds=3600

starts :class:`odyssey_sync.local.LocalOdyssey` with the given configuration
(``--set NAME=VALUE`` for any :class:`~odyssey_sync.local.config.ServerConfig`
field; the value is parsed as JSON when it can be) and prints one JSON line::

    {"url": ..., "api_key": ..., "pid": ..., "control_url": ..., "config": {...}, "config_fields": [...]}

``control_url`` is a tiny HTTP endpoint on loopback that benchmark clients
query (rarely, outside their measured windows): ``GET /sessions`` gives the
server's session snapshots (``frames_sent``, streams and the first frame
number of each prompt), ``GET /health`` answers ``ok``. The process stops the
server when its stdin closes or on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence

import attrs

from odyssey_sync.local import LocalOdyssey
from odyssey_sync.local.config import ServerConfig

__all__ = ["main", "parse_overrides"]


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["fps=30", "capacity=null", "host=127.0.0.1"]`` as a dict (values parsed as JSON when possible)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--set takes NAME=VALUE, got {pair!r}")
        try:
            overrides[name] = json.loads(raw)
        except ValueError:
            overrides[name] = raw
    return overrides


def _jsonable(value: Any) -> Any:
    if attrs.has(type(value)):
        return {key: _jsonable(item) for key, item in attrs.asdict(value, recurse=False).items()}
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _control_server(server: LocalOdyssey) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/sessions":
                body = json.dumps([_jsonable(record) for record in server.sessions()]).encode()
            elif self.path == "/health":
                body = b'"ok"'
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="bench-control", daemon=True).start()
    return httpd


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until stdin closes or a signal arrives; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server_proc")
    parser.add_argument("--fps", type=float, default=20.0)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a ServerConfig field")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    fields = [field.name for field in attrs.fields(ServerConfig)]
    try:
        overrides = parse_overrides(args.set)
        overrides["fps"] = args.fps
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ValueError(f"unknown ServerConfig fields: {', '.join(unknown)}")
        server = LocalOdyssey(ServerConfig(**overrides))
        server.start()
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}", "config_fields": fields}), flush=True)
        return 2

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())

    def watch_stdin() -> None:
        try:
            while sys.stdin.readline():
                pass
        finally:
            stop.set()

    threading.Thread(target=watch_stdin, name="bench-stdin", daemon=True).start()
    httpd = _control_server(server)
    host, port = httpd.server_address[:2]
    print(
        json.dumps(
            {
                "url": server.url,
                "api_key": server.api_key,
                "pid": os.getpid(),
                "control_url": f"http://{host}:{port}",
                "config": _jsonable(server.config),
                "config_fields": fields,
            }
        ),
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        httpd.shutdown()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
