"""Simulation scripts: the one validator shared by the SDK and the local server.

A script is a list of timed entries that an Odyssey simulation job plays back
without a live connection::

    [
        {"timestamp_ms": 0, "start": {"prompt": "A cat on a windowsill"}},
        {"timestamp_ms": 3000, "interact": {"prompt": "The cat is asleep"}},
        {"timestamp_ms": 6000, "end": {}},
    ]

The first entry is ``start`` at 0, timestamps strictly increase, and the last
entry is ``end``: its timestamp sets the length of the video. This module does
no I/O. :meth:`odyssey_sync.Odyssey.simulate` runs :func:`validate_job_request`
before sending, and ``odyssey_sync.local`` runs the same function on what it
receives, answering 400 with the :class:`ScriptError` text as ``detail``.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Mapping, Sequence, TypeGuard
from urllib.parse import urlsplit

import attrs

from . import protocol

__all__ = [
    "MAX_PROMPT_CHARS",
    "MAX_SCRIPTS_PER_JOB",
    "MAX_SCRIPT_MS",
    "MAX_SCRIPT_URL_CHARS",
    "JobRequest",
    "ScriptError",
    "prompt_list_script",
    "validate_job_request",
    "validate_script",
]

MAX_SCRIPT_MS: int = 150_000
"""Default longest script, in ms: one simulated stream obeys the 150 s per-stream limit."""

MAX_PROMPT_CHARS: int = protocol.MAX_PROMPT_CHARS
"""Prompts must be shorter than this many characters (the limit of every path, see :func:`odyssey_sync.protocol.prompt_problem`)."""

MAX_SCRIPTS_PER_JOB: int = 10
"""Most scripts one job may carry in ``scripts=[...]``."""

MAX_SCRIPT_URL_CHARS: int = 2048
"""Longest accepted ``script_url``."""

MAX_IMAGE_BYTES: int = 25 * 1024 * 1024
"""Largest start image, decoded, as for interactive streams."""

ACTIONS: tuple[str, ...] = ("start", "interact", "end")
"""The action keys of a script entry."""

_EXAMPLE = "[{'timestamp_ms': 0, 'start': {'prompt': 'A cat'}}, {'timestamp_ms': 5000, 'end': {}}]"
_PAYLOAD_KEYS: dict[str, tuple[str, ...]] = {"start": ("prompt", "image"), "interact": ("prompt",), "end": ()}
_Form = Literal["script", "scripts", "script_url"]
_REQUEST_FORMS: tuple[_Form, ...] = ("script", "scripts", "script_url")


class ScriptError(ValueError):
    """A simulation script or job request is invalid; the message names the entry and the fix."""


@attrs.frozen
class JobRequest:
    """A validated ``POST /simulation-jobs`` body.

    ``form`` is the key the body used: ``"script"`` (``scripts`` holds that one
    script), ``"scripts"`` (a batch; stream ``script_index`` counts from 0) or
    ``"script_url"`` (``scripts`` is empty; the server fetches the script and
    validates it with :func:`validate_script`).
    """

    form: _Form
    scripts: list[list[dict[str, Any]]]
    script_url: str | None = None
    portrait: bool = True
    bypass_vlm_expansion: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """The wire body, with ``output_video`` true and ``bypass_vlm_expansion`` only when set."""
        body: dict[str, Any] = {"portrait": self.portrait, "output_video": True}
        if self.bypass_vlm_expansion is not None:
            body["bypass_vlm_expansion"] = self.bypass_vlm_expansion
        if self.form == "script":
            body["script"] = self.scripts[0]
        elif self.form == "scripts":
            body["scripts"] = self.scripts
        else:
            body["script_url"] = self.script_url
        return body


def validate_script(
    script: object, *, where: str = "script", max_duration_ms: int = MAX_SCRIPT_MS
) -> list[dict[str, Any]]:
    """Check a script and return a normalised copy.

    Rules: a non-empty list of dicts ``{"timestamp_ms": int >= 0, <action>: {...}}``
    with exactly one action among ``start`` (``{"prompt": str, "image"?: data URL}``),
    ``interact`` (``{"prompt": str}``) and ``end`` (``{}``); the first entry, and
    only it, is ``start`` at 0; timestamps strictly increase; the last entry,
    and only it, is ``end``, at most ``max_duration_ms``; prompts are non-empty
    and under :data:`MAX_PROMPT_CHARS`; no unknown keys anywhere.

    The copy has integer timestamps, ``start.image`` dropped when ``None``,
    and the keys in wire order. ``where`` names the script in messages.

    Raises:
        ScriptError: the first problem found, e.g. ``"script entry 3: the last
            entry must be {'timestamp_ms': ..., 'end': {}}; ..."``.
    """
    return _check_script(script, where, max_duration_ms, images_as_data_urls=True)


def validate_job_request(body: Mapping[str, Any], *, max_duration_ms: int = MAX_SCRIPT_MS) -> JobRequest:
    """Check a ``POST /simulation-jobs`` body the way the hosted API does.

    Exactly one of ``script`` (a script), ``scripts`` (1 to
    :data:`MAX_SCRIPTS_PER_JOB` scripts) or ``script_url`` (an http(s) URL);
    ``portrait`` a bool (default True); ``output_video`` true when given;
    ``bypass_vlm_expansion`` a bool or null. Other top-level keys are ignored,
    as a FastAPI model ignores them, so newer clients keep working.

    Raises:
        ScriptError: its text is the ``detail`` of the server's 400 answer.
    """
    return _check_job_request(body, max_duration_ms, images_as_data_urls=True)


def prompt_list_script(prompts: Sequence[str], *, interval_ms: int = 3000) -> list[dict[str, Any]]:
    """A script that plays ``prompts`` one after another, ``interval_ms`` apart.

    ``prompts[0]`` starts the video at 0, each later prompt is an ``interact``
    ``interval_ms`` after the previous one, and the video ends ``interval_ms``
    after the last prompt::

        prompt_list_script(["A cat", "The cat is asleep"])
        # [{'timestamp_ms': 0, 'start': {'prompt': 'A cat'}},
        #  {'timestamp_ms': 3000, 'interact': {'prompt': 'The cat is asleep'}},
        #  {'timestamp_ms': 6000, 'end': {}}]

    Raises:
        TypeError: ``prompts`` is not a list of strings, or ``interval_ms`` not an int.
        ScriptError: no prompts, a bad prompt, or a video longer than :data:`MAX_SCRIPT_MS`.
    """
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
        raise TypeError(f"prompts must be a list of strings, e.g. ['A cat', 'The cat jumps'], not {_kind(prompts)}")
    if isinstance(interval_ms, bool) or not isinstance(interval_ms, int):
        raise TypeError(f"interval_ms must be an int number of milliseconds, not {_kind(interval_ms)}")
    if interval_ms <= 0:
        raise ScriptError(f"interval_ms must be > 0, got {interval_ms} (3000 ms between prompts works well)")
    if not prompts:
        raise ScriptError("prompts is empty: give at least one prompt, e.g. ['A cat on a windowsill']")
    length = interval_ms * len(prompts)
    if length > MAX_SCRIPT_MS:
        raise ScriptError(
            f"{len(prompts)} prompts {interval_ms} ms apart make a {length} ms video, longer than the "
            f"{MAX_SCRIPT_MS} ms limit; use fewer prompts or interval_ms <= {MAX_SCRIPT_MS // len(prompts)}"
        )
    script: list[dict[str, Any]] = [{"timestamp_ms": 0, "start": {"prompt": prompts[0]}}]
    script.extend({"timestamp_ms": i * interval_ms, "interact": {"prompt": p}} for i, p in enumerate(prompts) if i)
    script.append({"timestamp_ms": length, "end": {}})
    return validate_script(script, where="prompts")


# -- internals ------------------------------------------------------------------------------


def _check_job_request(body: Mapping[str, Any], max_duration_ms: int, *, images_as_data_urls: bool) -> JobRequest:
    """:func:`validate_job_request`; see :func:`_check_script` for ``images_as_data_urls``."""
    if not isinstance(body, Mapping):
        raise ScriptError(f"The request body must be a JSON object, got {_kind(body)}")
    given = [name for name in _REQUEST_FORMS if body.get(name) is not None]
    if len(given) != 1:
        got = f"got {' and '.join(given)}" if given else "got none"
        raise ScriptError(f"Exactly one of script, scripts or script_url must be given ({got})")
    form = given[0]
    portrait = body.get("portrait", True)
    if not isinstance(portrait, bool):
        raise ScriptError(f"portrait must be true or false, got {_short(portrait)}")
    if "output_video" in body and body["output_video"] is not True:
        raise ScriptError(
            f"output_video must be true (simulation jobs always produce video), got {_short(body['output_video'])}"
        )
    bypass = body.get("bypass_vlm_expansion")
    if bypass is not None and not isinstance(bypass, bool):
        raise ScriptError(f"bypass_vlm_expansion must be true, false or null, got {_short(bypass)}")

    value = body[form]
    scripts: list[list[dict[str, Any]]] = []
    url = None
    if form == "script":
        scripts = [_check_script(value, "script", max_duration_ms, images_as_data_urls=images_as_data_urls)]
    elif form == "scripts":
        if not _is_list(value):
            raise ScriptError(f"scripts must be a list of scripts (each a list of entries), got {_kind(value)}")
        if not value:
            raise ScriptError("scripts is empty: give at least one script, or use script= for a single one")
        if len(value) > MAX_SCRIPTS_PER_JOB:
            raise ScriptError(
                f"scripts has {len(value)} scripts; one job takes at most {MAX_SCRIPTS_PER_JOB}, "
                "so split them across several jobs"
            )
        scripts = [
            _check_script(item, f"scripts[{i}]", max_duration_ms, images_as_data_urls=images_as_data_urls)
            for i, item in enumerate(value)
        ]
    else:
        url = _check_script_url(value)
    return JobRequest(form=form, scripts=scripts, script_url=url, portrait=portrait, bypass_vlm_expansion=bypass)


def _check_script(
    script: object, where: str, max_duration_ms: int, *, images_as_data_urls: bool
) -> list[dict[str, Any]]:
    """:func:`validate_script`; with ``images_as_data_urls`` False any non-None ``start.image`` passes
    (the SDK converts it to a data URL afterwards and validates again)."""
    if isinstance(max_duration_ms, bool) or not isinstance(max_duration_ms, int) or max_duration_ms <= 0:
        raise ValueError(f"max_duration_ms must be an int > 0, got {max_duration_ms!r}")
    if not _is_list(script):
        raise ScriptError(f"{where} must be a list of entries like {_EXAMPLE}, got {_kind(script)}")
    if not script:
        raise ScriptError(f"{where} is empty: it needs a start entry at 0 and an end entry, e.g. {_EXAMPLE}")
    out: list[dict[str, Any]] = []
    previous = -1
    last = len(script) - 1
    for index, entry in enumerate(script):
        at = f"{where} entry {index}"
        action, payload, timestamp = _check_entry(entry, at, images_as_data_urls)
        if index == 0:
            if action != "start":
                raise ScriptError(
                    f"{at}: the first entry must be {{'timestamp_ms': 0, 'start': {{'prompt': ...}}}}, "
                    f"got {action!r}; the start prompt sets the opening scene"
                )
            if timestamp != 0:
                raise ScriptError(f"{at}: the start entry must be at timestamp_ms 0, got {timestamp}")
        elif action == "start":
            raise ScriptError(
                f"{at}: only the first entry may be 'start'; use 'interact' to change the scene mid-video"
            )
        elif timestamp <= previous:
            raise ScriptError(
                f"{at}: timestamp_ms {timestamp} is not after the previous entry's {previous}; entries must be "
                "in chronological order with distinct timestamps (about 3000 ms between prompts works well)"
            )
        if action == "end" and index != last:
            after = "the entry" if last - index == 1 else f"the {last - index} entries"
            raise ScriptError(
                f"{at}: 'end' must be the last entry ({after} after it would never play); move it to the end"
            )
        if index == last and action != "end":
            raise ScriptError(
                f"{at}: the last entry must be {{'timestamp_ms': ..., 'end': {{}}}}; the end timestamp sets the "
                f"video length, e.g. add {{'timestamp_ms': {timestamp + 3000}, 'end': {{}}}}"
            )
        if action == "end" and timestamp > max_duration_ms:
            raise ScriptError(
                f"{at}: the video would last {timestamp} ms, longer than the {max_duration_ms} ms limit of one "
                "stream; end it sooner, or split it into several scripts with scripts=[...]"
            )
        previous = timestamp
        out.append({"timestamp_ms": timestamp, action: payload})
    return out


def _check_entry(entry: object, at: str, images_as_data_urls: bool) -> tuple[str, dict[str, Any], int]:
    """``(action, normalised payload, timestamp)`` of one entry."""
    if not isinstance(entry, Mapping):
        raise ScriptError(
            f"{at}: expected a dict like {{'timestamp_ms': 3000, 'interact': {{'prompt': '...'}}}}, got {_kind(entry)}"
        )
    unknown = [key for key in entry if key != "timestamp_ms" and key not in ACTIONS]
    if unknown:
        raise ScriptError(
            f"{at}: unknown key(s) {_names(unknown)}; an entry has 'timestamp_ms' and one of 'start', 'interact', 'end'"
        )
    actions = [key for key in ACTIONS if key in entry]
    if not actions:
        raise ScriptError(f"{at}: no action; add one of 'start', 'interact' or 'end' next to 'timestamp_ms'")
    if len(actions) > 1:
        raise ScriptError(f"{at}: has {_names(actions, ' and ')}; put each action in its own entry")
    if "timestamp_ms" not in entry:
        raise ScriptError(f"{at}: missing 'timestamp_ms' (milliseconds from the start of the video)")
    timestamp = _check_timestamp(entry["timestamp_ms"], at)
    action = actions[0]
    return action, _check_payload(action, entry[action], at, images_as_data_urls), timestamp


def _check_timestamp(value: object, at: str) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScriptError(f"{at}: timestamp_ms must be a whole number of milliseconds, got {_short(value)}")
    if value < 0:
        raise ScriptError(f"{at}: timestamp_ms must be >= 0, got {value}")
    return value


def _check_payload(action: str, payload: object, at: str, images_as_data_urls: bool) -> dict[str, Any]:
    if action == "end":
        if payload is None or (isinstance(payload, Mapping) and not payload):
            return {}
        raise ScriptError(f"{at}: 'end' takes no fields; write {{'timestamp_ms': ..., 'end': {{}}}}")
    if not isinstance(payload, Mapping):
        raise ScriptError(f"{at}: '{action}' must be a dict like {{'prompt': '...'}}, got {_kind(payload)}")
    allowed = _PAYLOAD_KEYS[action]
    unknown = [key for key in payload if key not in allowed]
    if unknown:
        takes = "'prompt' and optionally 'image'" if action == "start" else "only 'prompt'"
        raise ScriptError(f"{at}: '{action}' has unknown key(s) {_names(unknown)}; it takes {takes}")
    if "prompt" not in payload:
        raise ScriptError(f"{at}: '{action}' must include a 'prompt' field")
    prompt = payload["prompt"]
    if not isinstance(prompt, str):
        raise ScriptError(f"{at}: {action}.prompt must be a string, got {_kind(prompt)}")
    if not prompt.strip():
        raise ScriptError(f"{at}: {action}.prompt is empty; describe the scene, e.g. 'A cat on a windowsill'")
    if len(prompt) >= MAX_PROMPT_CHARS:
        raise ScriptError(
            f"{at}: {action}.prompt is {len(prompt)} characters; keep it under {MAX_PROMPT_CHARS} "
            "(a sentence or two works best)"
        )
    problem = protocol.prompt_problem(prompt, name=f"{action}.prompt")
    if problem is not None:
        raise ScriptError(f"{at}: {problem}")
    out: dict[str, Any] = {"prompt": prompt}
    image = payload.get("image")
    if image is not None:
        if images_as_data_urls:
            _check_data_url(image, at)
        out["image"] = image
    return out


def _check_data_url(image: object, at: str) -> None:
    if not isinstance(image, str) or not image[:11].lower().startswith("data:image/"):
        raise ScriptError(
            f"{at}: start.image must be a 'data:image/...;base64,...' URL, got {_short(image)} "
            "(Odyssey.simulate() converts file paths, bytes, numpy arrays and PIL images for you)"
        )
    # Found, not partitioned: the payload may be 33 MB, and a copy of it holds the GIL for tens of ms.
    comma = image.find(",")
    if comma < 0 or not image[:comma].lower().endswith(";base64"):
        raise ScriptError(f"{at}: start.image must be base64-encoded: 'data:image/jpeg;base64,<data>'")
    payload_chars = len(image) - comma - 1
    if not image[comma + 1 : comma + 65].strip() and (payload_chars <= 64 or image[comma + 1 :].isspace()):
        raise ScriptError(f"{at}: start.image has no data after the comma; encode the image bytes with base64")
    if payload_chars // 4 * 3 > MAX_IMAGE_BYTES:
        raise ScriptError(
            f"{at}: start.image is over {MAX_IMAGE_BYTES // (1024 * 1024)} MB; use a smaller image "
            "(it is resized to 1280x704 or 704x1280 anyway)"
        )


def _check_script_url(value: object) -> str:
    if not isinstance(value, str):
        raise ScriptError(f"script_url must be an http(s) URL string, got {_kind(value)}")
    url = value.strip()
    try:
        url.encode("utf-8")
        parts = urlsplit(url)
        parts.port
    except (UnicodeEncodeError, ValueError):
        raise ScriptError(f"script_url is not a valid URL, got {_short(url)}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ScriptError(f"script_url must be an http:// or https:// URL of a JSON script, got {_short(url)}")
    if len(url) > MAX_SCRIPT_URL_CHARS:
        raise ScriptError(f"script_url is {len(url)} characters; at most {MAX_SCRIPT_URL_CHARS} are accepted")
    return url


def _is_list(value: object) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    return isinstance(value, (list, tuple))


def _kind(value: object) -> str:
    return "None" if value is None else type(value).__name__


def _names(keys: Sequence[object], joiner: str = ", ") -> str:
    return joiner.join(repr(key) for key in keys)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
