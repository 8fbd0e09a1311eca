"""The sans-I/O stream protocol: requests, replies, ordering, late replies, state. No sockets, no aiortc."""

from __future__ import annotations

from typing import Any

import pytest

from odyssey_sync import (
    OdysseyConnectionError,
    OdysseyStreamError,
    OdysseyTimeoutError,
    StreamDurationExceededError,
    protocol,
)
from odyssey_sync.stream_protocol import (
    BroadcastReady,
    EndRequest,
    InteractAcknowledged,
    MessageIgnored,
    Refusal,
    Request,
    RequestDone,
    StartRequest,
    StreamEnded,
    StreamErrorReceived,
    StreamProtocol,
    StreamStarted,
    UpdateRequest,
    parse_request,
    state_refusal,
)


def start(prompt: str = "A cat") -> Request:
    return Request(protocol.stream_start(prompt, portrait=False), "start_stream()")


def update(prompt: str) -> Request:
    return Request(protocol.update(prompt), "interact()")


def end() -> Request:
    return Request(protocol.stream_end(), "end_stream()")


def done(events: list[Any]) -> dict[int, RequestDone]:
    """The finished requests among ``events``, by request identity."""
    return {id(e.request): e for e in events if isinstance(e, RequestDone)}


def running(stream: StreamProtocol, stream_id: str = "s1") -> StreamProtocol:
    request = start()
    stream.submit(request)
    stream.requests_to_send()
    stream.receive(protocol.stream_started(stream_id, "A cat, expanded"), 1.0)
    stream.events_received()
    return stream


def test_a_start_is_sent_and_its_reply_resolves_it_with_the_stream_id() -> None:
    stream = StreamProtocol()
    request = start()
    stream.submit(request)
    assert stream.requests_to_send() == [request]
    assert stream.requests_to_send() == [], "each request leaves once"
    stream.receive(protocol.stream_started("s1", "A cat, in detail"), 12.5)
    events = stream.events_received()
    assert events[0] == StreamStarted("s1", "A cat, in detail")
    outcome = done(events)[id(request)]
    assert outcome.error is None and outcome.result == "s1" and outcome.result.received_at == 12.5
    assert (stream.stream_id, stream.prompt, stream.pending) == ("s1", "A cat, in detail", 0)


def test_requests_that_do_not_fit_the_state_are_refused_when_their_turn_comes() -> None:
    stream = StreamProtocol()
    early = update("Too early")
    nothing = end()
    stream.submit(early)
    stream.submit(nothing)
    assert stream.requests_to_send() == []
    outcomes = done(stream.events_received())
    assert isinstance(outcomes[id(early)].error, OdysseyStreamError) and "start_stream() before interact()" in str(
        outcomes[id(early)].error
    )
    assert outcomes[id(nothing)].error.reason == "no_active_stream"  # type: ignore[union-attr]
    running(stream)
    second = start("A dog")
    stream.submit(second)
    assert "already running (s1)" in str(done(stream.events_received())[id(second)].error)


def test_an_interact_submitted_with_the_start_waits_for_the_stream() -> None:
    stream = StreamProtocol()
    first, then = start(), update("The cat jumps")
    stream.submit(first)
    stream.submit(then)
    assert stream.requests_to_send() == [first], "nothing leaves while a start is in flight"
    stream.receive(protocol.stream_started("s1", "A cat"), 1.0)
    assert stream.requests_to_send() == [then]
    stream.receive(protocol.update_acknowledged("The cat jumps high"), 2.0)
    outcomes = done(stream.events_received())
    assert outcomes[id(then)].result == "The cat jumps high"


def test_interacts_are_pipelined_and_each_gets_its_own_acknowledgement() -> None:
    stream = running(StreamProtocol())
    requests = [update(p) for p in ("Rain", "Snow", "Sun")]
    for request in requests:
        stream.submit(request)
    assert stream.requests_to_send() == requests, "interacts do not wait for each other's replies"
    for i, text in enumerate(("Rain falls", "Snow drifts", "Sun shines")):
        stream.receive(protocol.update_acknowledged(text), 10.0 + i)
    outcomes = done(stream.events_received())
    assert [outcomes[id(r)].result for r in requests] == ["Rain falls", "Snow drifts", "Sun shines"]
    assert [outcomes[id(r)].result.received_at for r in requests] == [10.0, 11.0, 12.0]
    assert stream.prompt == "Sun shines"


def test_an_end_waits_for_interacts_in_flight_and_blocks_those_after_it() -> None:
    stream = running(StreamProtocol())
    before, finish, after = update("Rain"), end(), update("Too late")
    for request in (before, finish, after):
        stream.submit(request)
    assert stream.requests_to_send() == [before]
    stream.receive(protocol.update_acknowledged("Rain"), 2.0)
    assert stream.requests_to_send() == [finish]
    stream.receive(protocol.stream_ended(), 3.0)
    outcomes = done(stream.events_received())
    assert outcomes[id(finish)].error is None and outcomes[id(finish)].result is None
    assert outcomes[id(after)].error.reason == "no_active_stream"  # type: ignore[union-attr]
    assert stream.requests_to_send() == [] and stream.stream_id is None


def test_a_late_acknowledgement_of_a_timed_out_interact_is_not_taken_for_the_next() -> None:
    stream = running(StreamProtocol())
    lost = update("The sails turn")
    stream.submit(lost)
    stream.requests_to_send()
    stream.abandon(lost, OdysseyTimeoutError("interact() timed out after 1 s"))
    assert isinstance(done(stream.events_received())[id(lost)].error, OdysseyTimeoutError)
    nxt = update("The mill burns")
    stream.submit(nxt)
    assert stream.requests_to_send() == [nxt]
    stream.receive(protocol.update_acknowledged("The sails turn slowly"), 5.0)
    events = stream.events_received()
    assert id(nxt) not in done(events), "the late reply belongs to the abandoned request"
    assert InteractAcknowledged("The sails turn slowly") in events, "the prompt did change"
    stream.receive(protocol.update_acknowledged("The mill burns down"), 6.0)
    assert done(stream.events_received())[id(nxt)].result == "The mill burns down"


def test_a_request_abandoned_before_it_left_is_never_sent() -> None:
    stream = StreamProtocol()
    first, queued = start(), update("Later")
    stream.submit(first)
    stream.submit(queued)
    stream.requests_to_send()
    stream.abandon(queued, OdysseyConnectionError("abandoned"))
    stream.receive(protocol.stream_started("s1", "A cat"), 1.0)
    assert stream.requests_to_send() == []
    stream.abandon(queued, OdysseyConnectionError("twice"))  # already over: nothing happens
    assert [type(e) for e in stream.events_received()].count(RequestDone) == 2


def test_a_reply_that_matches_no_prompt_goes_to_the_oldest_interact() -> None:
    stream = running(StreamProtocol())
    first, second = update("Rain"), update("Snow")
    stream.submit(first)
    stream.submit(second)
    stream.requests_to_send()
    stream.receive(protocol.update_acknowledged("A rewritten prompt"), 2.0)
    assert done(stream.events_received())[id(first)].result == "A rewritten prompt"


def test_a_stream_error_fails_the_request_it_answers_and_the_connection_goes_on() -> None:
    stream = StreamProtocol()
    request = start()
    stream.submit(request)
    stream.requests_to_send()
    stream.receive(protocol.stream_error("moderation_failed", "Prompt refused"), 1.0)
    events = stream.events_received()
    assert isinstance(events[0], StreamErrorReceived) and not events[0].fatal
    error = done(events)[id(request)].error
    assert isinstance(error, OdysseyStreamError) and error.reason == "moderation_failed"
    again = start()
    stream.submit(again)
    assert stream.requests_to_send() == [again]


def test_the_duration_limit_ends_the_stream_then_fails_everything() -> None:
    stream = running(StreamProtocol())
    waiting = update("Rain")
    stream.submit(waiting)
    stream.requests_to_send()
    stream.receive(protocol.stream_error("session_timeout", protocol.SESSION_TIMEOUT_MESSAGE), 9.0)
    events = stream.events_received()
    assert isinstance(events[0], StreamEnded) and events[0].stream_id == "s1"
    assert isinstance(events[0].error, StreamDurationExceededError)
    assert isinstance(events[1], StreamErrorReceived) and events[1].fatal
    assert isinstance(done(events)[id(waiting)].error, StreamDurationExceededError)
    assert stream.stream_id is None and stream.error is events[0].error
    later = update("Snow")
    stream.submit(later)
    assert isinstance(done(stream.events_received())[id(later)].error, StreamDurationExceededError)


def test_the_server_ending_the_stream_fails_interacts_in_flight() -> None:
    stream = running(StreamProtocol())
    waiting = update("Rain")
    stream.submit(waiting)
    stream.requests_to_send()
    stream.receive(protocol.stream_ended(), 3.0)
    events = stream.events_received()
    assert StreamEnded("s1") in events
    assert done(events)[id(waiting)].error.reason == "stream_ended"  # type: ignore[union-attr]


def test_broadcast_ready_carries_the_stream_id() -> None:
    stream = running(StreamProtocol(), "s9")
    stream.receive(protocol.broadcast_ready(None, "http://127.0.0.1:1/broadcast/s9", "tok"), 2.0)
    (event,) = stream.events_received()
    assert isinstance(event, BroadcastReady) and event.info is not None
    assert (event.info.stream_id, event.info.webrtc_url) == ("s9", "http://127.0.0.1:1/broadcast/s9")
    stream.receive({"type": protocol.BROADCAST_READY, "webrtc_url": ""}, 3.0)
    assert stream.events_received() == [BroadcastReady(None)]


def test_a_bad_stream_started_is_ignored() -> None:
    stream = StreamProtocol()
    request = start()
    stream.submit(request)
    stream.requests_to_send()
    stream.receive({"type": protocol.STREAM_STARTED}, 1.0)
    (event,) = stream.events_received()
    assert isinstance(event, MessageIgnored)
    assert stream.pending == 1, "the start still waits for its real reply"


def test_the_end_of_the_connection_fails_what_waits_and_what_comes_after() -> None:
    stream = running(StreamProtocol())
    flying, queued = end(), update("Never")
    stream.submit(flying)
    stream.submit(queued)
    stream.requests_to_send()
    gone = OdysseyConnectionError("disconnect() was called")
    stream.fail(gone)
    outcomes = done(stream.events_received())
    assert outcomes[id(flying)].error is gone and outcomes[id(queued)].error is gone
    stream.fail(OdysseyConnectionError("again"))  # idempotent: the first error stays
    assert stream.error is gone and stream.events_received() == []


def test_only_stream_requests_are_accepted() -> None:
    with pytest.raises(ValueError, match="not a stream request"):
        StreamProtocol().submit(Request(protocol.keepalive(), "keepalive"))


# -- the streamer's side of the same rules ------------------------------------------------------------


def test_the_streamer_parses_requests_into_typed_values() -> None:
    start_request = parse_request(
        protocol.stream_start("A cat", portrait=False, image_data_url="data:image/png;base64,AAAA", broadcast=True)
    )
    assert start_request == StartRequest("A cat", False, "data:image/png;base64,AAAA", True, False)
    assert parse_request({"type": protocol.STREAM_START}) == StartRequest("", True, None, False, False)
    assert parse_request(protocol.update("Rain")) == UpdateRequest("Rain")
    assert parse_request(protocol.stream_end()) == EndRequest()


@pytest.mark.parametrize(
    ("message", "reason", "text"),
    [
        ({"type": protocol.UPDATE}, "invalid_request", "prompt must be a string, not null"),
        (protocol.update("x" * protocol.MAX_PROMPT_CHARS), "invalid_request", "keep it under 10000"),
        (protocol.update("Rain \ud800"), "invalid_request", "lone surrogate"),
        ({"type": protocol.STREAM_START, "portrait": "yes"}, "invalid_request", "portrait must be true or false"),
        ({"type": protocol.STREAM_START, "input_image_base64": "http://x/cat.png"}, "invalid_image", "data:<mime>"),
        ({"type": "dance"}, "invalid_request", "not a stream request"),
    ],
)
def test_malformed_requests_are_refused_with_a_reason(message: dict[str, Any], reason: str, text: str) -> None:
    refusal = parse_request(message)
    assert isinstance(refusal, Refusal) and refusal.reason == reason and text in refusal.message
    assert refusal.to_message() == {"type": protocol.STREAM_ERROR, "reason": reason, "message": refusal.message}


def test_one_state_rule_for_both_sides() -> None:
    assert state_refusal(protocol.STREAM_START, None) is None
    assert state_refusal(protocol.STREAM_START, "s1") == Refusal(
        "stream_already_active", "A stream is already running; end it with interactive_stream_end first"
    )
    assert state_refusal(protocol.UPDATE, "s1") is None
    assert state_refusal(protocol.UPDATE, None).reason == "no_active_stream"  # type: ignore[union-attr]
    assert state_refusal(protocol.STREAM_END, None) is None, "streamers answer an end with nothing to end"
    stream = running(StreamProtocol())  # the client refuses with the streamer's reason codes
    again = start("A dog")
    stream.submit(again)
    assert done(stream.events_received())[id(again)].error.reason == "stream_already_active"  # type: ignore[union-attr]
