"""Run one measurement function in a fresh process and print its result as JSON.

    python -m benchmarks.worker benchmarks.sdk_workloads:stream '{"fps": 20, ...}'

The function is called with the JSON object as keyword arguments and must
return a JSON-serialisable dict; it is printed on one stdout line starting
with :data:`RESULT_MARKER`. An exception is reported the same way, as
``{"error": "...", "traceback": "..."}``, and the exit status is 1. A function
may announce progress with :func:`emit` (lines starting with
:data:`EVENT_MARKER`), e.g. "connected", for a parent that coordinates several
workers.

Every client workload runs in its own process so that its CPU, memory,
threads and descriptors are its own.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from typing import Any

__all__ = ["EVENT_MARKER", "RESULT_MARKER", "emit", "main"]

RESULT_MARKER = "BENCH_RESULT "
EVENT_MARKER = "BENCH_EVENT "


def emit(event: str, **data: Any) -> None:
    """Tell the parent process about progress (one stdout line)."""
    print(EVENT_MARKER + json.dumps({"event": event, **data}), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Import ``module:function``, call it with the JSON keyword arguments, print the result."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or ":" not in args[0]:
        print("usage: python -m benchmarks.worker module:function '<json kwargs>'", file=sys.stderr)
        return 2
    module_name, function_name = args[0].split(":", 1)
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        result = function(**json.loads(args[1]))
        status = 0
    except BaseException as exc:  # reported to the parent, whatever it is
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        status = 1
    print(RESULT_MARKER + json.dumps(result, default=repr), flush=True)
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
