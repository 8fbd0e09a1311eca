"""The Odyssey REST API over ``requests``, blocking, on the caller's thread.

:class:`RestClient` holds one HTTP session, the API key and the cached access
token. Every call takes ``timeout``, a total deadline in seconds that holds
whatever the server does (one sending a byte at a time included), and maps
every failure to an :class:`~odyssey_sync.errors.OdysseyError`: the status code
picks the class, and the text says what to do. Replies over
:data:`MAX_REPLY_BYTES` are refused. The API key and the access token never
appear in exception messages, logs or ``repr``.
"""

from __future__ import annotations

import email.utils
import importlib.metadata
import json as _json
import logging
import math
import re
import threading
import time
from typing import Any, Callable, Mapping

import attrs
import requests
import urllib3

from . import _deadline_http, protocol
from ._deadline import Deadline, TimeLimit
from .errors import (
    PORTAL_URL,
    ConcurrentLimitReachedError,
    OdysseyAuthError,
    OdysseyConnectionError,
    OdysseyError,
    OdysseyTimeoutError,
    OdysseyUsageError,
    RateLimitError,
    usage_error_from_body,
)
from .types import StreamerCapabilities

__all__ = ["MAX_REPLY_BYTES", "RestClient", "SessionGrant"]

_log = logging.getLogger("odyssey_sync.rest")

_TOKEN_REFRESH_MARGIN_S = 60.0
_DEFAULT_TOKEN_LIFETIME_S = 3600.0
_QUEUE_POLL_INTERVAL_S = 1.0
_REDACTED = "<redacted>"
_LEGACY_CONCURRENT = re.compile(r"maximum concurrent sessions \((\d+)\) reached", re.IGNORECASE)
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")
_USER_AGENT = f"odyssey-sync python-requests/{importlib.metadata.version('requests')}"
_READ_CHUNK = 65536

MAX_REPLY_BYTES = 8 * 1024 * 1024
"""Largest reply body read (after decompression); the API's replies are a few kilobytes to a few hundred."""


@attrs.frozen
class SessionGrant:
    """A streamer assigned by ``POST /sessions/request``.

    ``signalling_url`` keeps the wire's double-L spelling. ``capabilities`` is
    all-False when the server did not send it.
    """

    session_id: str
    signalling_url: str
    capabilities: StreamerCapabilities
    streamer_id: str | None = None
    model: str | None = None
    region: str | None = None


@attrs.frozen
class _Reply:
    status: int
    reason: str
    headers: Mapping[str, str]
    body: Any
    is_json: bool


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")
    return float(value)


def _detail_text(body: Any) -> str | None:
    """The server's error text, including FastAPI's validation lists."""
    text = protocol.error_detail(body)
    if text is not None:
        return text
    detail = body.get("detail") if isinstance(body, Mapping) else None
    if isinstance(detail, list):
        # FastAPI validation errors; their "input" may echo secrets, so only loc and msg are kept.
        parts = []
        for item in detail:
            if isinstance(item, Mapping) and isinstance(item.get("msg"), str):
                loc = item.get("loc")
                where = ".".join(str(p) for p in loc) if isinstance(loc, list) else ""
                parts.append(f"{where}: {item['msg']}" if where else item["msg"])
        return "; ".join(parts) or None
    return None


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_timeout(exc: Exception) -> bool:
    if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError)):
        return True
    # requests wraps a read timeout during body streaming in a plain ConnectionError.
    return any(isinstance(arg, urllib3.exceptions.TimeoutError) for arg in exc.args)


def _network_reason(exc: BaseException) -> str:
    text = str(exc)
    match = _ERRNO.search(text)
    if match:
        return match.group(0).strip()
    return text[:300] if text else type(exc).__name__


class RestClient:
    """Blocking client of the Odyssey REST API.

    Owns one ``requests.Session`` (TLS certificates are always verified) and
    caches the access token until 60 s before it expires. Safe to share between
    threads. ``timeout`` is the default budget, in seconds, of each call and the
    longest any single HTTP request may take (``None``: no limit). A call's
    own ``timeout=`` is seconds, ``math.inf`` to lift the call's budget (each
    request stays bounded by the client's ``timeout``), or the caller's
    :class:`~odyssey_sync._deadline.Deadline`. Budgets are total deadlines:
    reading the answer stops when they run out, however slowly the server sends it.
    """

    def __init__(self, api_url: str, api_key: str | None, *, timeout: float | None = 30.0) -> None:
        if not isinstance(api_url, str):
            raise TypeError(f"api_url must be a string, got {type(api_url).__name__}")
        url = api_url.strip().rstrip("/")
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"api_url must start with http:// or https://, got {api_url!r}")
        if api_key is not None and not isinstance(api_key, str):
            raise TypeError(f"api_key must be a string or None, got {type(api_key).__name__}")
        if timeout is not None and not 0 < _number("timeout", timeout) < math.inf:
            raise ValueError(f"timeout must be a finite number of seconds > 0 (or None for no limit), got {timeout!r}")
        self._api_url = url
        self._api_key = api_key.strip() if api_key and api_key.strip() else None
        self._timeout = None if timeout is None else float(timeout)
        self._session = requests.Session()
        adapter = _deadline_http.DeadlineAdapter()
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.verify = True
        self._session.headers.update({"User-Agent": _USER_AGENT, "Accept": "application/json"})
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_valid_until = 0.0
        self._closed = False

    @property
    def api_url(self) -> str:
        """The API base URL, without a trailing slash."""
        return self._api_url

    @property
    def timeout(self) -> float | None:
        """The default budget of a call, and the longest one HTTP request may take, in seconds (``None``: no limit)."""
        return self._timeout

    def __repr__(self) -> str:
        return f"RestClient(api_url={self._api_url!r})"

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the HTTP connections and forget the access token. Idempotent."""
        self._closed = True
        self._token = None
        self._token_valid_until = 0.0
        self._session.close()

    # -- endpoints ---------------------------------------------------------------------------

    def access_token(self, *, timeout: TimeLimit = None) -> str:
        """A Bearer token for the API key, from ``POST /auth/token`` or the cache.

        Raises :class:`OdysseyAuthError` when there is no key or the server
        refuses it.
        """
        return self._access_token(self._deadline(timeout))

    def regions(self, *, timeout: TimeLimit = None) -> list[tuple[str, str]]:
        """The ``(region_id, ping_url)`` pairs of ``GET /regions``.

        Never raises for server or network problems: region selection is
        optional, so any failure gives ``[]`` (logged at debug).
        """
        try:
            body = self.request_json("GET", "/regions", timeout=timeout)
        except OdysseyError as exc:
            _log.debug("GET /regions failed, continuing without region latencies: %s", exc)
            return []
        entries = body.get("regions") if isinstance(body, Mapping) else None
        if not isinstance(entries, list):
            _log.debug("GET /regions answered without a 'regions' list; ignoring it")
            return []
        return [
            (entry["id"], entry["ping_url"])
            for entry in entries
            if isinstance(entry, Mapping) and isinstance(entry.get("id"), str) and isinstance(entry.get("ping_url"), str)
        ]

    def request_session(
        self,
        region_latencies: Mapping[str, int] | None = None,
        *,
        queue_timeout_s: float = 30,
        timeout: TimeLimit = None,
    ) -> SessionGrant:
        """Ask ``POST /sessions/request`` for a streamer.

        While the service answers 503 (no streamer free) the request is repeated
        once a second for up to ``queue_timeout_s`` (0 fails at once); then
        :class:`OdysseyConnectionError`. The whole call, queueing included, is
        also bounded by ``timeout`` (:class:`OdysseyTimeoutError`); ``None``
        allows ``queue_timeout_s`` plus the client's default.
        """
        body: dict[str, Any] = {}
        if region_latencies:
            if not isinstance(region_latencies, Mapping):
                raise TypeError(f"region_latencies must be a dict of region id to ms, got {type(region_latencies).__name__}")
            for region, ms in region_latencies.items():
                if not isinstance(region, str) or isinstance(ms, bool) or not isinstance(ms, int):
                    raise TypeError(f"region_latencies must map region ids (str) to whole milliseconds (int), got {region!r}: {ms!r}")
            body["region_latencies"] = dict(region_latencies)
        queue_s = _number("queue_timeout_s", queue_timeout_s)
        default = None if self._timeout is None else queue_s + self._timeout
        deadline = self._deadline(default if timeout is None else timeout)
        queue = Deadline(queue_s, "queueing")
        path = "/sessions/request"
        while True:
            reply = self._authed("POST", path, json=body, params=None, deadline=deadline)
            if reply.status != 503:
                break
            if queue_s == 0:
                raise OdysseyConnectionError(
                    "No streamer is free right now (503); try again later, or set "
                    "AdvancedConfig.queue_timeout_s to wait in the queue"
                )
            if queue.expired():
                raise self._queue_expired(queue_s)
            if deadline.expired():
                raise self._timed_out("POST", path, waiting="for a free streamer")
            time.sleep(min(deadline.within(_QUEUE_POLL_INTERVAL_S), queue.left()))
            if deadline.expired():
                if queue.at <= deadline.at:
                    raise self._queue_expired(queue_s)
                raise self._timed_out("POST", path, waiting="for a free streamer")
        data = self._checked(reply, "POST", path, not_found=None)
        if not isinstance(data, Mapping):
            raise OdysseyConnectionError(f"Invalid response to POST {path}: expected a JSON object; check api_url")
        session_id = data.get("session_id")
        signalling_url = data.get("signalling_url") or data.get("signaling_url")
        if not isinstance(session_id, str) or not session_id or not isinstance(signalling_url, str) or not signalling_url:
            raise OdysseyConnectionError(
                f"Invalid response to POST {path}: missing session_id or signalling_url; check api_url points at the Odyssey API"
            )

        def optional(name: str) -> str | None:
            value = data.get(name)
            return value if isinstance(value, str) else None

        return SessionGrant(
            session_id=session_id,
            signalling_url=signalling_url,
            capabilities=StreamerCapabilities.from_dict(data.get("capabilities")),
            streamer_id=optional("streamer_id"),
            model=optional("model"),
            region=optional("region"),
        )

    def session_token(self, session_id: str, *, timeout: TimeLimit = None) -> tuple[str, int]:
        """``(JWT, expires_in)`` from ``POST /sessions/token`` for a granted session.

        The JWT opens the signaling socket; ``expires_in`` defaults to 600 s.
        May be called more than once per session.
        """
        if not isinstance(session_id, str) or not session_id:
            raise ValueError("session_id must be a non-empty string from request_session()")

        def not_found(detail: str) -> OdysseyError:
            return OdysseyConnectionError(
                "Session not found or not yours (404): it may have expired; connect again to get a new session"
            )

        data = self.request_json(
            "POST", "/sessions/token", json={"session_id": session_id}, timeout=timeout, not_found=not_found
        )
        token = data.get("session_token") if isinstance(data, Mapping) else None
        if not isinstance(token, str) or not token:
            raise OdysseyConnectionError(
                "Invalid response to POST /sessions/token: missing session_token; check api_url points at the Odyssey API"
            )
        expires_in = data.get("expires_in")
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or expires_in <= 0:
            expires_in = protocol.SESSION_TOKEN_LIFETIME_S
        return token, int(expires_in)

    def send_telemetry(self, events: list[dict[str, Any]], *, timeout: float = 5.0) -> None:
        """``POST /telemetry`` (no auth header, as the official client). Errors are logged at debug and dropped."""
        try:
            self.request_json("POST", "/telemetry", json={"events": list(events)}, auth=False, timeout=timeout)
        except OdysseyError as exc:
            _log.debug("telemetry not sent: %s", exc)

    def request_json(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
        timeout: TimeLimit = None,
        not_found: Callable[[str], OdysseyError] | None = None,
    ) -> Any:
        """Call ``method path`` on the API and return the parsed JSON body (``None`` for 204).

        ``path`` starts with ``/`` and is already URL-quoted. ``auth`` adds the
        Bearer token. Non-2xx answers raise the :class:`OdysseyError` their status
        stands for; a 404 raises ``not_found(server_detail)`` when given.
        """
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        method = method.upper()
        deadline = self._deadline(timeout)
        if auth:
            reply = self._authed(method, path, json=json, params=params, deadline=deadline)
        else:
            reply = self._send(method, path, json=json, params=params, token=None, deadline=deadline)
        return self._checked(reply, method, path, not_found=not_found)

    # -- internals ---------------------------------------------------------------------------

    def _deadline(self, timeout: TimeLimit) -> Deadline:
        """A call's deadline: the caller's, or ``timeout`` seconds (``None``: the client's; ``inf``: none)."""
        if isinstance(timeout, Deadline):
            return timeout
        seconds = self._timeout if timeout is None else _number("timeout", timeout)
        return Deadline(None if seconds is None or math.isinf(seconds) else seconds, "request")

    def _access_token(self, deadline: Deadline) -> str:
        if self._api_key is None:
            raise OdysseyAuthError(
                "No API key: pass api_key= to Odyssey() or set ODYSSEY_API_KEY "
                f"(keys start with 'ody_'; create one at {PORTAL_URL})"
            )
        if not self._token_lock.acquire(timeout=-1 if not deadline.bounded else max(0.0, deadline.left())):
            raise self._timed_out("POST", "/auth/token", waiting="for another thread's token request")
        try:
            if self._token is not None and time.monotonic() < self._token_valid_until:
                return self._token
            reply = self._send("POST", "/auth/token", json={"api_key": self._api_key}, params=None, token=None, deadline=deadline)
            data = self._checked(reply, "POST", "/auth/token", not_found=None)
            token = data.get("access_token") if isinstance(data, Mapping) else None
            if not isinstance(token, str) or not token:
                raise OdysseyAuthError(
                    "Invalid response to POST /auth/token: missing access_token; check api_url points at the Odyssey API"
                )
            lifetime = data.get("expires_in")
            if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)):
                lifetime = _DEFAULT_TOKEN_LIFETIME_S
            self._token = token
            self._token_valid_until = time.monotonic() + float(lifetime) - _TOKEN_REFRESH_MARGIN_S
            return token
        finally:
            self._token_lock.release()

    def _forget_token(self, token: str) -> None:
        with self._token_lock:
            if self._token == token:
                self._token = None
                self._token_valid_until = 0.0

    def _authed(
        self, method: str, path: str, *, json: Any, params: Mapping[str, Any] | None, deadline: Deadline
    ) -> _Reply:
        """Send with the Bearer token; a 401 on a cached token fetches a fresh one and retries once."""
        fresh = self._token is None or time.monotonic() >= self._token_valid_until
        token = self._access_token(deadline)
        reply = self._send(method, path, json=json, params=params, token=token, deadline=deadline)
        if reply.status == 401 and not fresh:
            _log.debug("%s %s: cached access token refused, fetching a new one", method, path)
            self._forget_token(token)
            token = self._access_token(deadline)
            reply = self._send(method, path, json=json, params=params, token=token, deadline=deadline)
        return reply

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        params: Mapping[str, Any] | None,
        token: str | None,
        deadline: Deadline,
    ) -> _Reply:
        if self._closed:
            raise OdysseyConnectionError("This RestClient is closed; create a new client")
        if deadline.expired():
            raise self._timed_out(method, path)
        # One request takes at most what is left of the call, and at most the client's timeout.
        left = min(deadline.left(), math.inf if self._timeout is None else self._timeout)
        request = Deadline(None if math.isinf(left) else left, f"{method} {path}")
        per_request = request.remaining()
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            with _deadline_http.deadline(request.at if request.bounded else None):
                response = self._session.request(
                    method,
                    self._api_url + path,
                    json=json,
                    params=params,
                    headers=headers,
                    timeout=None if per_request is None else (per_request, per_request),
                    allow_redirects=False,
                    stream=True,
                )
                try:
                    content = self._read_body(response, method, path, request)
                finally:
                    response.close()
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            elapsed_ms = request.elapsed_ms()
            _log.debug("%s %s failed after %.0f ms: %s", method, path, elapsed_ms, type(exc).__name__)
            if _is_timeout(exc) or request.expired():
                raise self._timed_out(method, path) from exc
            if isinstance(exc, requests.exceptions.SSLError):
                raise OdysseyConnectionError(
                    f"TLS verification failed for {self._api_url}: {self._scrub(_network_reason(exc))}; "
                    "check api_url and the system's CA certificates"
                ) from exc
            raise OdysseyConnectionError(
                f"Could not reach {self._api_url}: {self._scrub(_network_reason(exc))}; "
                "check the network connection and api_url (or ODYSSEY_API_URL)"
            ) from exc
        _log.debug("%s %s -> %d in %.0f ms", method, path, response.status_code, request.elapsed_ms())
        body: Any = None
        is_json = True
        if content.strip():
            try:
                body = _json.loads(content)
            except (ValueError, RecursionError):  # RecursionError: nested too deeply to parse
                is_json = False
        return _Reply(response.status_code, response.reason or "", response.headers, body, is_json)

    def _read_body(self, response: requests.Response, method: str, path: str, deadline: Deadline) -> bytes:
        """The whole body, at most :data:`MAX_REPLY_BYTES`, by the deadline even if the server trickles bytes."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_REPLY_BYTES:
            raise self._too_large(method, path)
        body = bytearray()
        for chunk in response.iter_content(_READ_CHUNK):
            body += chunk
            if len(body) > MAX_REPLY_BYTES:
                raise self._too_large(method, path)
            if deadline.expired():
                raise self._timed_out(method, path)
        return bytes(body)

    def _too_large(self, method: str, path: str) -> OdysseyConnectionError:
        return OdysseyConnectionError(
            f"{method} {path} answered with more than {MAX_REPLY_BYTES} bytes, far more than the Odyssey API "
            f"sends; check api_url ({self._api_url})"
        )

    def _checked(
        self, reply: _Reply, method: str, path: str, *, not_found: Callable[[str], OdysseyError] | None
    ) -> Any:
        """The body of a 2xx reply; otherwise raise the error its status stands for."""
        if 200 <= reply.status < 300:
            if not reply.is_json:
                content_type = reply.headers.get("Content-Type", "unknown type")
                raise OdysseyConnectionError(
                    f"{method} {path} answered {reply.status} with a non-JSON body ({content_type}); "
                    "check api_url points at the Odyssey API"
                )
            return reply.body
        raise self._error_for(reply, method, path, not_found)

    def _error_for(
        self, reply: _Reply, method: str, path: str, not_found: Callable[[str], OdysseyError] | None
    ) -> OdysseyError:
        """The one status-to-exception mapping, shared by every endpoint."""
        status = reply.status
        body = self._scrub_json(reply.body)
        detail = _detail_text(body)
        where = f"{method} {path}"
        if path == "/auth/token":
            if status == 401:
                return OdysseyAuthError(
                    f"API key was rejected (401): check the key at {PORTAL_URL} or set ODYSSEY_API_KEY to a current one"
                )
            if status == 403:
                return OdysseyAuthError(f"API key access denied (403): {detail or 'contact Odyssey support'}")
            if status == 422:
                return OdysseyAuthError(
                    f"API key is malformed (422): Odyssey keys start with 'ody_'; copy it again from {PORTAL_URL}"
                )
        if status == 401:
            return OdysseyAuthError(
                f"Not authorized (401) on {where}: {detail or 'the access token was refused'}; check the API key"
            )
        if status == 403:
            return OdysseyAuthError(f"Access denied (403) on {where}: {detail or 'this key may not do that'}")
        if status == 404:
            if not_found is not None:
                return not_found(detail or "Not found")
            return OdysseyError(f"Not found (404) on {where}: {detail or 'check the id'}")
        if status == 429:
            return self._usage_error(body, reply.headers, detail)
        if status in (400, 422):
            return OdysseyError(f"{detail or 'The request was rejected'} ({status} on {where})")
        if 300 <= status < 400:
            location = reply.headers.get("Location", "elsewhere")
            return OdysseyConnectionError(
                f"{where} was redirected ({status}) to {protocol.redact_url(location)}; set api_url to the final address"
            )
        text = detail or reply.reason or "no detail"
        if status >= 500:
            return OdysseyConnectionError(f"Odyssey API error {status} on {where}: {text}")
        return OdysseyError(f"Odyssey API error {status} on {where}: {text}")

    @staticmethod
    def _usage_error(body: Any, headers: Mapping[str, str], detail: str | None) -> OdysseyUsageError:
        retry_after = _retry_after_seconds(headers)
        error = usage_error_from_body(body)
        if error is not None:
            if isinstance(error, RateLimitError) and retry_after is not None:
                error.details.setdefault("retry_after_seconds", retry_after)
            return error
        legacy = _LEGACY_CONCURRENT.search(detail or "")
        if legacy:
            return ConcurrentLimitReachedError(
                "CONCURRENT_LIMIT_REACHED",
                detail or "Concurrent session limit reached",
                "End another stream (disconnect idle clients) and try again",
                f"{PORTAL_URL}/dashboard",
                {"limit": int(legacy.group(1))},
            )
        if retry_after is not None:
            return RateLimitError(
                "RATE_LIMITED",
                detail or "Request limit exceeded",
                "Wait and retry",
                details={"retry_after_seconds": retry_after},
            )
        return OdysseyUsageError("UNKNOWN", detail or "Request limit exceeded", "Wait and retry")

    def _queue_expired(self, queue_s: float) -> OdysseyConnectionError:
        return OdysseyConnectionError(
            f"No streamer became free within {queue_s:g} s; try again later or raise AdvancedConfig.queue_timeout_s"
        )

    def _timed_out(self, method: str, path: str, *, waiting: str = "") -> OdysseyTimeoutError:
        what = f"waiting {waiting}" if waiting else "with no answer"
        return OdysseyTimeoutError(
            f"{method} {path} timed out {what} from {self._api_url}; retry, or pass a larger timeout="
        )

    def _secrets(self) -> list[str]:
        return [s for s in (self._api_key, self._token) if s]

    def _scrub(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, _REDACTED)
        return text

    def _scrub_json(self, value: Any) -> Any:
        """Server bodies can echo the key (FastAPI 422 does); hide it before any text is built from them."""
        if isinstance(value, str):
            return self._scrub(value)
        if isinstance(value, list):
            return [self._scrub_json(v) for v in value]
        if isinstance(value, dict):
            return {k: self._scrub_json(v) for k, v in value.items()}
        return value
