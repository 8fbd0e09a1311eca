"""Run a LocalOdyssey for the JS SDK interop runner, driven over stdin/stdout.

Two servers: the main one, and a "short" one with tiny limits (2 s streams, 6 s
connections, capacity 1) for the limit paths. Prints one JSON line ``{"url",
"short_url", "api_key", "limited_key", "suspended_key"}`` once both listen, then
answers one JSON line per command read from stdin:

* ``sessions`` / ``short-sessions`` -> ``{"sessions": [{session_id, held, connected, frames_sent, streams: [...]}]}``
* ``spectators`` -> ``{"spectators": <int>}``
* ``quit`` (or end of stdin) -> stops the server and exits.

The process also exits by itself after ``--max-seconds`` (a bound for the runner).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading

import odyssey_sync
from odyssey_sync.local import ApiKey, LocalOdyssey
from odyssey_sync.local.config import random_api_key


def _stream(s):
    return {
        "stream_id": s.stream_id,
        "prompt": s.prompt,
        "portrait": s.portrait,
        "has_image": s.has_image,
        "applied_prompts": list(s.applied_prompts),
        "ended": s.ended_at is not None,
        "end_reason": s.end_reason,
    }


def _session(rec):
    return {
        "session_id": rec.session_id,
        "key_name": rec.key_name,
        "held": rec.held,
        "connected": rec.connected,
        "frames_sent": rec.frames_sent,
        "streams": [_stream(s) for s in rec.streams],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--simulation-speed", type=float, default=1.0)
    parser.add_argument("--log", metavar="FILE", help="write the server's log (access lines included) to FILE")
    args = parser.parse_args()
    if args.log:
        logging.basicConfig(
            filename=args.log, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        logging.getLogger("odyssey_sync.local.access").setLevel(logging.DEBUG)
        logging.getLogger("odyssey_sync.local.streamer").setLevel(logging.DEBUG)  # data-channel receipts
        if os.environ.get("SCTP_DEBUG"):  # every SCTP chunk in and out, to see what reached the server
            logging.getLogger("aiortc.rtcsctptransport").setLevel(logging.DEBUG)

    keys = [
        ApiKey(random_api_key(), name="default"),
        ApiKey(random_api_key(), name="limited", monthly_limit_reached=True),
        ApiKey(random_api_key(), name="suspended", suspended=True),
    ]
    server = LocalOdyssey(api_keys=keys, simulation_speed=args.simulation_speed)
    # A second server with tiny limits: 2 s streams, 6 s connections, one session at a time.
    short = LocalOdyssey(
        api_keys=[keys[0]], max_stream_seconds=2.0, max_connection_seconds=6.0, capacity=1, recording=False
    )
    server.start()
    short.start()

    def give_up() -> None:
        print(json.dumps({"error": f"time bound of {args.max_seconds:g} s reached; stopping"}), flush=True)
        short.stop()
        server.stop()
        os._exit(3)

    timer = threading.Timer(args.max_seconds, give_up)
    timer.daemon = True
    try:
        print(
            json.dumps(
                {
                    "package": os.path.dirname(odyssey_sync.__file__),
                    "url": server.url,
                    "short_url": short.url,
                    "api_key": keys[0].key,
                    "limited_key": keys[1].key,
                    "suspended_key": keys[2].key,
                }
            ),
            flush=True,
        )
        timer.start()
        for line in sys.stdin:
            command = line.strip()
            if command == "sessions":
                reply = {"sessions": [_session(r) for r in server.sessions()]}
            elif command == "short-sessions":
                reply = {"sessions": [_session(r) for r in short.sessions()]}
            elif command == "spectators":
                reply = {"spectators": server.spectator_count()}
            elif command == "quit":
                break
            else:
                reply = {"error": f"unknown command {command!r}"}
            print(json.dumps(reply), flush=True)
    finally:
        timer.cancel()
        short.stop()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
