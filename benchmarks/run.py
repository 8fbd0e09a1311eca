"""Run every benchmark figure (P1..P12), print the table and write the report.

    python -m benchmarks                      # everything, full length (~27 min; P7 alone is 10 min)
    python -m benchmarks --quick              # every scenario shortened (5-10 s, 10 cycles): a smoke run
    python -m benchmarks --only P1,P5         # some figures
    python -m benchmarks --param p7_stream_s=180 --out /tmp/bench

Writes ``<out>/report.md``, ``<out>/report.json`` (every figure with its
details and every raw run) and ``<out>/harness.log`` (progress plus the stderr
of every process). ``--out`` defaults to ``benchmarks/results``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):  # ``python benchmarks/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import DEFAULT_PARAMS, REPO_ROOT, Context, Figure, fmt

__all__ = ["SCENARIOS", "machine_facts", "main", "render_markdown", "render_table"]

SCENARIOS: tuple[str, ...] = (
    "benchmarks.p01_delivery",
    "benchmarks.p02_cpu_per_frame",
    "benchmarks.p03_control_loop",
    "benchmarks.p04_latency",
    "benchmarks.p05_connect",
    "benchmarks.p06_first_frame",
    "benchmarks.p08_server_cpu",
    "benchmarks.p09_concurrency",
    "benchmarks.p10_broadcast",
    "benchmarks.p11_recording",
    "benchmarks.p12_steering",
    "benchmarks.p07_memory",  # last: the 10-minute stream
)
"""Scenario modules in execution order (the report lists figures in numeric order)."""

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_mb() -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return None


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    """A read-only git query on the repository (None when git is unavailable)."""
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def machine_facts() -> dict[str, Any]:
    """Date, CPUs, CPU model, memory, load, Python and the media stack's versions, the commit."""
    import av

    status = _git("status", "--porcelain")
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "mem_total_mb": _mem_total_mb(),
        "loadavg_start": list(os.getloadavg()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "versions": {name: _version(name) for name in ("odyssey-sync", "aiortc", "av", "aioice", "aiohttp", "numpy")},
        "ffmpeg": {name: ".".join(map(str, v)) if isinstance(v, tuple) else str(v) for name, v in av.library_versions.items()},
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty_files": None if status is None else len([line for line in status.splitlines() if line.strip()]),
    }


def _verdict(figure: Figure) -> str:
    if figure.status != "ok":
        return figure.status
    return "-" if figure.met is None else ("MET" if figure.met else "MISSED")


def render_table(figures: Sequence[Figure]) -> str:
    """A plain-text table: figure, measured, baseline, ratio, target, checked value, verdict."""
    rows = [("figure", "measured", "baseline", "ratio", "target", "checked", "met?")]
    for f in figures:
        measured = "-" if f.measured is None else f"{fmt(f.measured)} {f.unit}".strip()
        rows.append((f.id, measured, fmt(f.baseline), fmt(f.ratio), f.target, fmt(f.checked), _verdict(f)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def render_markdown(report: dict[str, Any], figures: Sequence[Figure]) -> str:
    """The markdown report."""
    facts = report["machine"]
    out = [
        "# odyssey_sync benchmark report",
        "",
        f"{facts['date']} - {'quick (smoke) run' if report['quick'] else 'full run'} - "
        f"{report['elapsed_s']:.0f} s",
        "",
        "Server and clients on loopback, each in its own process; 1280x704 landscape. Every figure is compared "
        "with a baseline measured in the same run (absolute times on a shared machine drift).",
        "",
        "## Machine",
        "",
        f"- CPUs: {facts['nproc']} ({facts['cpus_available']} available), {facts['cpu_model']}, "
        f"{facts['mem_total_mb']} MiB RAM, Linux {facts['kernel']}",
        f"- load average at start {', '.join(f'{x:.2f}' for x in facts['loadavg_start'])}; "
        f"at end {', '.join(f'{x:.2f}' for x in report['loadavg_end'])}",
        f"- Python {facts['python']}; " + ", ".join(f"{k} {v}" for k, v in facts["versions"].items() if v),
        f"- FFmpeg libraries: {', '.join(f'{k} {v}' for k, v in facts['ffmpeg'].items())}",
        f"- commit {facts['git_commit']} ({facts['git_dirty_files']} files modified in the work tree)",
        f"- negotiated video codec: {report['codec'].get('negotiated')}; bare encode codec: "
        f"{report['codec'].get('bare_encode')}",
        f"- aiortc video jitter buffer: SDK {report['codec'].get('sdk_jitter_buffer')}, bare client "
        f"{report['codec'].get('bare_jitter_buffer')}",
        "",
        "## Figures",
        "",
        "| Figure | What | Measured | Baseline | Ratio | Target | Checked | Met? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        measured = "-" if f.measured is None else f"{fmt(f.measured)} {f.unit}".strip()
        baseline = "-" if f.baseline is None else f"{fmt(f.baseline)} ({f.baseline_label})"
        out.append(f"| {f.id} | {f.title} | {measured} | {baseline} | {fmt(f.ratio)} | {f.target} | "
                   f"{fmt(f.checked)} | {_verdict(f)} |")
    out += ["", "## Notes", ""]
    for f in figures:
        if f.note:
            out.append(f"- **{f.id}**: {f.note}")
    out += [
        "",
        "## Parameters",
        "",
        "```",
        json.dumps(report["params"], indent=1, sort_keys=True),
        "```",
        "",
        "Raw runs (every worker's full result) are in `report.json` under `runs`; per-process logs in `harness.log`.",
        "",
    ]
    return "\n".join(out)


def _parse_params(pairs: Sequence[str]) -> dict[str, float]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in DEFAULT_PARAMS:
            raise SystemExit(f"--param takes NAME=VALUE with NAME one of {', '.join(sorted(DEFAULT_PARAMS))}; got {pair!r}")
        params[name] = float(value)
    return params


def _selected(only: str | None) -> list[str]:
    if not only:
        return list(SCENARIOS)
    wanted = {item.strip().upper().rstrip("+") for item in only.split(",") if item.strip()}
    chosen = []
    for name in SCENARIOS:
        figure = importlib.import_module(name).FIGURE
        if figure.upper() in wanted:
            chosen.append(name)
    unknown = wanted - {importlib.import_module(name).FIGURE.upper() for name in chosen}
    if unknown:
        raise SystemExit(f"--only: unknown figures {sorted(unknown)}; use P1..P12")
    return chosen


def _figure_key(figure: Figure) -> tuple[int, str]:
    digits = ""
    for ch in figure.id[1:]:
        if not ch.isdigit():
            break
        digits += ch
    return (int(digits or 0), figure.id)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected figures, print the table, write the report; 0 unless the harness itself broke."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorten every scenario (smoke run)")
    parser.add_argument("--only", help="comma-separated figures, e.g. P1,P5 (P4 includes P4+)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report directory (default: {DEFAULT_OUT})")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help=f"override a run parameter: {', '.join(sorted(DEFAULT_PARAMS))}")
    parser.add_argument("--codec", choices=("libvpx", "libx264"), help="bare-encode codec (default: the negotiated one)")
    parser.add_argument("--p11-config", type=json.loads, help='P11 server overrides: \'{"on": {...}, "off": {...}}\'')
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)

    modules = _selected(args.only)
    ctx = Context(args.out, quick=args.quick, params=_parse_params(args.param), codec=args.codec,
                  p11_config=args.p11_config, verbose=not args.quiet)
    facts = machine_facts()
    ctx.log(f"benchmarks: {len(modules)} scenarios, {'quick' if args.quick else 'full'} run, results in {args.out}")
    figures: list[Figure] = []
    started = time.monotonic()
    try:
        for name in modules:
            module = importlib.import_module(name)
            ctx.log(f"== {module.FIGURE}: {module.__doc__.splitlines()[0]}")
            figures.extend(module.run(ctx))
    finally:
        ctx.close()
    figures.sort(key=_figure_key)
    codec: dict[str, Any] = {"negotiated": None, "bare_encode": None, "sdk_jitter_buffer": None, "bare_jitter_buffer": None}
    for key, run in ctx.runs.items():
        if run.get("jitter_buffer"):
            codec[f"{run.get('client')}_jitter_buffer"] = run["jitter_buffer"]
        if key == "probe" or (codec["negotiated"] is None and isinstance(run.get("codec"), str) and "encode" not in key):
            codec["negotiated"] = run.get("codec")
        elif key.startswith("bare-encode"):
            codec["bare_encode"] = {k: run.get(k) for k in ("codec", "preset", "bitrate", "thread_count", "fps", "size")}
    report = {
        "quick": args.quick,
        "elapsed_s": round(time.monotonic() - started, 1),
        "machine": facts,
        "loadavg_end": list(os.getloadavg()),
        "params": ctx.params,
        "codec": codec,
        "figures": [f.to_dict() for f in figures],
        "runs": ctx.runs,
        "server_usage": ctx.server_usage,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1, default=repr) + "\n")
    (args.out / "report.md").write_text(render_markdown(report, figures))
    print(render_table(figures))
    print(f"\nreport: {args.out / 'report.md'} and report.json ({report['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
