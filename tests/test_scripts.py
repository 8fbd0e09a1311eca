"""odyssey_sync.scripts: the simulation-script validator shared by the SDK and the local server."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from odyssey_sync.scripts import (
    MAX_PROMPT_CHARS,
    MAX_SCRIPT_MS,
    MAX_SCRIPTS_PER_JOB,
    JobRequest,
    ScriptError,
    prompt_list_script,
    validate_job_request,
    validate_script,
)

pytestmark = pytest.mark.timeout(20)

PNG_URL = "data:image/png;base64,iVBORw0KGgo="


def start(prompt: str = "A cat on a windowsill", at: int = 0, **extra: Any) -> dict[str, Any]:
    return {"timestamp_ms": at, "start": {"prompt": prompt, **extra}}


def interact(at: int, prompt: str = "The cat is asleep") -> dict[str, Any]:
    return {"timestamp_ms": at, "interact": {"prompt": prompt}}


def end(at: int) -> dict[str, Any]:
    return {"timestamp_ms": at, "end": {}}


GOOD = [start(), interact(3000), interact(6000, "The cat is wearing glasses"), end(9000)]


# -- validate_script: valid scripts and normalisation -------------------------------------------


def test_a_valid_script_comes_back_equal_and_as_a_copy() -> None:
    original = copy.deepcopy(GOOD)
    out = validate_script(GOOD)
    assert out == GOOD
    assert GOOD == original
    out[1]["interact"]["prompt"] = "changed"
    assert GOOD[1]["interact"]["prompt"] == "The cat is asleep"


def test_normalisation_tuples_floats_null_image_and_key_order() -> None:
    script = (
        {"start": {"image": None, "prompt": "A cat"}, "timestamp_ms": 0.0},
        {"interact": {"prompt": "It sleeps"}, "timestamp_ms": 3000.0},
        {"end": None, "timestamp_ms": 6000},
    )
    out = validate_script(script)
    assert out == [start("A cat"), interact(3000, "It sleeps"), end(6000)]
    assert isinstance(out, list)
    assert all(type(entry["timestamp_ms"]) is int for entry in out)
    assert [list(entry) for entry in out] == [["timestamp_ms", "start"], ["timestamp_ms", "interact"], ["timestamp_ms", "end"]]


def test_shortest_script_and_a_start_image_data_url() -> None:
    assert validate_script([start(), end(1)]) == [start(), end(1)]
    out = validate_script([start(image=PNG_URL), end(5000)])
    assert out[0]["start"] == {"prompt": "A cat on a windowsill", "image": PNG_URL}


def test_the_end_may_sit_exactly_at_the_limit() -> None:
    assert validate_script([start(), end(MAX_SCRIPT_MS)])[-1] == end(MAX_SCRIPT_MS)
    with pytest.raises(ScriptError, match="150000 ms limit"):
        validate_script([start(), end(MAX_SCRIPT_MS + 1)])


def test_max_duration_is_configurable() -> None:
    assert validate_script([start(), end(200_000)], max_duration_ms=300_000)[-1]["timestamp_ms"] == 200_000
    with pytest.raises(ScriptError, match="10000 ms limit"):
        validate_script([start(), end(10_001)], max_duration_ms=10_000)
    with pytest.raises(ValueError, match="max_duration_ms"):
        validate_script(GOOD, max_duration_ms=0)


def test_prompt_length_limit() -> None:
    validate_script([start("x" * (MAX_PROMPT_CHARS - 1)), end(3000)])
    with pytest.raises(ScriptError, match=f"{MAX_PROMPT_CHARS} characters; keep it under"):
        validate_script([start("x" * MAX_PROMPT_CHARS), end(3000)])


def test_where_names_the_script_in_messages() -> None:
    with pytest.raises(ScriptError, match=r"^my_script entry 1: "):
        validate_script([start(), interact(3000)], where="my_script")


def test_script_error_is_a_value_error() -> None:
    assert issubclass(ScriptError, ValueError)


# -- validate_script: every rule, one message each -----------------------------------------------


BAD_SCRIPTS: list[tuple[str, Any, str]] = [
    ("not a list", "start at 0", r"script must be a list of entries .* got str"),
    ("a dict", {"timestamp_ms": 0}, r"script must be a list of entries .* got dict"),
    ("empty", [], r"script is empty: it needs a start entry at 0 and an end entry"),
    ("entry not a dict", [start(), "end"], r"entry 1: expected a dict like"),
    ("first is interact", [interact(0), end(3000)], r"entry 0: the first entry must be \{'timestamp_ms': 0, 'start'"),
    ("first is end", [end(0)], r"entry 0: the first entry must be"),
    ("start not at 0", [start(at=500), end(3000)], r"entry 0: the start entry must be at timestamp_ms 0, got 500"),
    ("only a start", [start()], r"entry 0: the last entry must be \{'timestamp_ms': \.\.\., 'end': \{\}\}"),
    ("no end", [start(), interact(3000)], r"entry 1: the last entry must be .*the end timestamp sets the video length"),
    ("two starts", [start(), start(at=3000), end(6000)], r"entry 1: only the first entry may be 'start'; use 'interact'"),
    ("end in the middle", [start(), end(3000), interact(6000), end(9000)], r"entry 1: 'end' must be the last entry \(the 2 entries"),
    ("two ends", [start(), end(3000), end(6000)], r"entry 1: 'end' must be the last entry \(the entry after"),
    ("out of order", [start(), interact(6000), interact(3000), end(9000)], r"entry 2: timestamp_ms 3000 is not after the previous entry's 6000"),
    ("equal timestamps", [start(), interact(3000), interact(3000), end(9000)], r"entry 2: timestamp_ms 3000 is not after"),
    ("zero-length video", [start(), end(0)], r"entry 1: timestamp_ms 0 is not after the previous entry's 0"),
    ("too long", [start(), end(151_000)], r"entry 1: the video would last 151000 ms, longer than the 150000 ms limit"),
    ("missing timestamp", [start(), {"end": {}}], r"entry 1: missing 'timestamp_ms'"),
    ("string timestamp", [start(), {"timestamp_ms": "3000", "end": {}}], r"entry 1: timestamp_ms must be a whole number of milliseconds, got '3000'"),
    ("fractional timestamp", [start(), {"timestamp_ms": 3000.5, "end": {}}], r"entry 1: timestamp_ms must be a whole number"),
    ("bool timestamp", [{"timestamp_ms": False, "start": {"prompt": "a"}}, end(3000)], r"entry 0: timestamp_ms must be a whole number"),
    ("negative timestamp", [start(), {"timestamp_ms": -1, "end": {}}], r"entry 1: timestamp_ms must be >= 0, got -1"),
    ("unknown entry key", [start(), {"timestamp_ms": 3000, "prompt": "x", "end": {}}], r"entry 1: unknown key\(s\) 'prompt'"),
    ("no action", [start(), {"timestamp_ms": 3000}], r"entry 1: no action; add one of 'start', 'interact' or 'end'"),
    ("two actions", [start(), {"timestamp_ms": 3000, "interact": {"prompt": "x"}, "end": {}}], r"entry 1: has 'interact' and 'end'; put each action in its own entry"),
    ("start without prompt", [{"timestamp_ms": 0, "start": {}}, end(3000)], r"entry 0: 'start' must include a 'prompt' field"),
    ("misspelt prompt", [{"timestamp_ms": 0, "start": {"promt": "a"}}, end(3000)], r"entry 0: 'start' has unknown key\(s\) 'promt'"),
    ("image in interact", [start(), {"timestamp_ms": 3000, "interact": {"prompt": "a", "image": PNG_URL}}, end(6000)], r"entry 1: 'interact' has unknown key\(s\) 'image'; it takes only 'prompt'"),
    ("interact as a string", [start(), {"timestamp_ms": 3000, "interact": "The cat jumps"}, end(6000)], r"entry 1: 'interact' must be a dict like \{'prompt': '...'\}, got str"),
    ("empty prompt", [start(), interact(3000, "   "), end(6000)], r"entry 1: interact.prompt is empty"),
    ("prompt not a string", [start(), {"timestamp_ms": 3000, "interact": {"prompt": 5}}, end(6000)], r"entry 1: interact.prompt must be a string, got int"),
    ("end with fields", [start(), {"timestamp_ms": 3000, "end": {"reason": "done"}}], r"entry 1: 'end' takes no fields"),
    ("image as a path", [start(image="/tmp/cat.png"), end(3000)], r"entry 0: start.image must be a 'data:image/...;base64,...' URL"),
    ("image not base64", [start(image="data:image/png,rawbytes"), end(3000)], r"entry 0: start.image must be base64-encoded"),
    ("image without data", [start(image="data:image/png;base64,"), end(3000)], r"entry 0: start.image has no data"),
]


@pytest.mark.parametrize(("script", "message"), [(s, m) for _, s, m in BAD_SCRIPTS], ids=[n for n, _, _ in BAD_SCRIPTS])
def test_bad_scripts_say_which_entry_and_what_to_do(script: Any, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        validate_script(script)


# -- validate_job_request -----------------------------------------------------------------------


def test_job_request_with_one_script() -> None:
    request = validate_job_request({"script": GOOD, "portrait": False, "output_video": True})
    assert request == JobRequest(form="script", scripts=[GOOD], portrait=False)
    assert request.to_json() == {"portrait": False, "output_video": True, "script": GOOD}


def test_job_request_defaults_and_bypass() -> None:
    request = validate_job_request({"script": GOOD, "bypass_vlm_expansion": True})
    assert request.portrait is True
    assert request.to_json() == {"portrait": True, "output_video": True, "bypass_vlm_expansion": True, "script": GOOD}
    assert "bypass_vlm_expansion" not in validate_job_request({"script": GOOD, "bypass_vlm_expansion": None}).to_json()


def test_job_request_with_a_batch() -> None:
    other = [start("A dog"), end(4000)]
    request = validate_job_request({"scripts": [GOOD, other]})
    assert request.form == "scripts"
    assert request.scripts == [GOOD, other]
    assert request.to_json()["scripts"] == [GOOD, other]


def test_job_request_with_a_script_url() -> None:
    request = validate_job_request({"script_url": " https://example.com/script.json "})
    assert (request.form, request.scripts, request.script_url) == ("script_url", [], "https://example.com/script.json")
    assert request.to_json() == {"portrait": True, "output_video": True, "script_url": "https://example.com/script.json"}


def test_job_request_ignores_unknown_keys_and_null_forms() -> None:
    request = validate_job_request({"script": GOOD, "scripts": None, "client_version": "9.9"})
    assert request.form == "script"
    assert "client_version" not in request.to_json()


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("not an object", [GOOD], r"body must be a JSON object, got list"),
    ("nothing", {"portrait": True}, r"Exactly one of script, scripts or script_url must be given \(got none\)"),
    ("two forms", {"script": GOOD, "script_url": "https://x/s.json"}, r"\(got script and script_url\)"),
    ("portrait string", {"script": GOOD, "portrait": "yes"}, r"portrait must be true or false"),
    ("output_video false", {"script": GOOD, "output_video": False}, r"output_video must be true"),
    ("bypass string", {"script": GOOD, "bypass_vlm_expansion": "no"}, r"bypass_vlm_expansion must be true, false or null"),
    ("scripts not a list", {"scripts": "abc"}, r"scripts must be a list of scripts"),
    ("scripts empty", {"scripts": []}, r"scripts is empty"),
    ("too many scripts", {"scripts": [GOOD] * (MAX_SCRIPTS_PER_JOB + 1)}, r"scripts has 11 scripts; one job takes at most 10"),
    ("bad script in a batch", {"scripts": [GOOD, GOOD, [start()]]}, r"^scripts\[2\] entry 0: the last entry must be"),
    ("bad single script", {"script": [interact(0), end(10)]}, r"^script entry 0: the first entry must be"),
    ("url not a string", {"script_url": 42}, r"script_url must be an http\(s\) URL string, got int"),
    ("url scheme", {"script_url": "file:///etc/passwd"}, r"script_url must be an http:// or https:// URL"),
    ("url without host", {"script_url": "https://"}, r"script_url must be an http:// or https:// URL"),
    ("url too long", {"script_url": "https://x.example/" + "a" * 3000}, r"script_url is \d+ characters"),
]


@pytest.mark.parametrize(("body", "message"), [(b, m) for _, b, m in BAD_BODIES], ids=[n for n, _, _ in BAD_BODIES])
def test_bad_job_requests(body: Any, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        validate_job_request(body)


# -- prompt_list_script ------------------------------------------------------------------------


def test_prompt_list_script() -> None:
    assert prompt_list_script(["A cat", "The cat is asleep"]) == [
        start("A cat"),
        interact(3000, "The cat is asleep"),
        end(6000),
    ]
    assert prompt_list_script(("A cat",), interval_ms=5000) == [start("A cat"), end(5000)]
    script = prompt_list_script([f"prompt {i}" for i in range(50)])
    assert script[-1] == end(MAX_SCRIPT_MS)
    assert validate_script(script) == script


@pytest.mark.parametrize(
    ("prompts", "kwargs", "exc", "message"),
    [
        ("A cat", {}, TypeError, r"prompts must be a list of strings"),
        (None, {}, TypeError, r"prompts must be a list of strings"),
        ([], {}, ScriptError, r"prompts is empty"),
        (["A cat"], {"interval_ms": 0}, ScriptError, r"interval_ms must be > 0"),
        (["A cat"], {"interval_ms": 1.5}, TypeError, r"interval_ms must be an int"),
        (["p"] * 51, {}, ScriptError, r"51 prompts 3000 ms apart make a 153000 ms video.*interval_ms <= 2941"),
        (["A cat", ""], {}, ScriptError, r"prompts entry 1: interact.prompt is empty"),
        (["A cat", 7], {}, ScriptError, r"prompts entry 1: interact.prompt must be a string"),
    ],
)
def test_prompt_list_script_errors(prompts: Any, kwargs: dict[str, Any], exc: type[Exception], message: str) -> None:
    with pytest.raises(exc, match=message):
        prompt_list_script(prompts, **kwargs)
