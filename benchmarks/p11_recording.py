"""P11: recording on vs off, server CPU per session: <= 1.10.

Servers identical but for the recording switch, each serving one 20 fps SDK
stream, run off/on/off/on (half the window each) so load drift hits both;
the figure is the ratio of the server's CPU per streamed frame (best window
of each setting).
The switch is found at run time among the ``ServerConfig`` fields (a boolean
whose name contains "record"), or given with ``--p11-config``. "n/a" while
the local server has no recordings.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import Context, Figure, guarded, not_available, ratio

FIGURE = "P11"
TITLE = "server CPU per session, recording on / off"
TARGET = 1.10
PREFERRED = ("record", "recording", "recordings", "record_streams", "recordings_enabled", "enable_recordings")


def recording_switch(ctx: Context) -> tuple[dict[str, Any], dict[str, Any]] | str:
    """The (on, off) server overrides, or the reason there are none."""
    if ctx.p11_config:
        return ctx.p11_config["on"], ctx.p11_config["off"]
    fields = ctx.server_config_fields()
    candidates = sorted((f for f in fields if "record" in f.lower()), key=lambda f: (f not in PREFERRED, f))
    for name in candidates:
        if isinstance(ctx.server_config_value(name, None), bool):
            return {name: True}, {name: False}
    if candidates:
        return f"ServerConfig has {candidates} but no boolean switch; pass --p11-config"
    return "ServerConfig has no recording switch"


def run(ctx: Context) -> list[Figure]:
    """One figure (or n/a)."""
    figure = Figure(id="P11", title=TITLE, unit="ms CPU/frame", baseline_label="recording off", target=f"ratio <= {TARGET}")

    def body(figure: Figure) -> None:
        switch = recording_switch(ctx)
        if isinstance(switch, str):
            not_available(figure, switch)
            return
        on, off = switch
        # Interleaved (off, on, off, on), half the window each, so that drift in the machine's load
        # affects both settings alike.
        seconds = ctx.param("p11_window_s") / 2
        runs: dict[str, list[dict]] = {"off": [], "on": []}
        for round_ in range(2):
            for label, overrides in (("off", off), ("on", on)):
                result = ctx.measure(f"p11-{label}-{round_}-{seconds:g}s", "benchmarks.sdk_workloads:stream", seconds + 90,
                                     {"fps": 20.0, **overrides}, fps=20.0, seconds=seconds,
                                     warmup=ctx.param("warmup_s"), prompt="A recorded drive along a coast")
                runs[label].append(result["server"])

        # Best (least disturbed) window of each setting; every window is in the details.
        figure.measured = min(w["cpu_ms_per_frame"] for w in runs["on"])
        figure.baseline = min(w["cpu_ms_per_frame"] for w in runs["off"])
        figure.ratio = ratio(figure.measured, figure.baseline)
        figure.checked = figure.ratio
        figure.met = figure.ratio is not None and figure.ratio <= TARGET
        figure.note = (f"switch {on} vs {off}; per run on {[round(w['cpu_ms_per_frame'], 2) for w in runs['on']]}, "
                       f"off {[round(w['cpu_ms_per_frame'], 2) for w in runs['off']]} ms/frame")
        figure.details = runs

    return [guarded(ctx, figure, body)]
