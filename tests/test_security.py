"""Secrets stay secret, TLS stays on, and the local server serves each caller only what is theirs.

* API keys, access tokens and session tokens never appear in log records (any
  logger, any level: the message, its arguments and any traceback), in
  ``repr``, in exception text or in logged URLs.
* No parameter turns TLS verification off, and empty ``REQUESTS_CA_BUNDLE`` /
  ``CURL_CA_BUNDLE`` variables do not either: a self-signed server is refused
  before a single HTTP request (so before the key is sent).
* The local server refuses missing, wrong, forged, expired and other-session
  JWTs on the signaling socket (401, no upgrade), other keys' sessions (404)
  and oversized bodies (413), while the victim keeps streaming and others
  keep connecting.
"""

from __future__ import annotations

import asyncio
import datetime
import http.server
import inspect
import ipaddress
import logging
import re
import ssl
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import jwt
import numpy as np
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from odyssey_sync import (
    AdvancedConfig,
    BroadcastInfo,
    ClientCredentials,
    Odyssey,
    OdysseyAuthError,
    OdysseyConnectionError,
    OdysseyError,
    protocol,
)
from odyssey_sync.local import ApiKey, LocalOdyssey
from odyssey_sync.rest import RestClient

pytestmark = pytest.mark.timeout(60)

VICTIM = ApiKey("ody_security_victim_key_4f1b2c", name="victim")
OTHER = ApiKey("ody_security_other_key_9d8e7a", name="other")
WRONG_KEY = "ody_security_wrong_key_000000"
BODY_LIMIT = 64 * 1024
FAST_RETRIES = AdvancedConfig(max_retries=1, initial_retry_delay_ms=50, max_retry_delay_ms=50)
LOGGERS = ("", "odyssey_sync", "aiortc", "aioice", "aiohttp", "urllib3", "asyncio")
TOKEN_IN_QUERY = re.compile(r"token=(?!<redacted>)[^\s&'\"<>]{4,}")


@pytest.fixture(scope="module")
def guarded() -> Iterator[LocalOdyssey]:
    """A server of its own: two keys, a small body limit, sessions no other test counts."""
    with LocalOdyssey(api_keys=[VICTIM, OTHER], max_concurrent_per_key=5, max_body_bytes=BODY_LIMIT) as server:
        yield server


class Capture(logging.Handler):
    """Every record of every logger, at DEBUG, kept whole (message, arguments, traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._lock_records = threading.Lock()
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock_records:
            self.records.append(record)

    def texts(self) -> list[str]:
        """Each record as every text it could print."""
        with self._lock_records:
            records = list(self.records)
        out = []
        for record in records:
            parts = [f"{record.name}: {record.getMessage()}", repr(record.msg), repr(record.args)]
            if record.exc_info:
                parts.append(self._formatter.formatException(record.exc_info))
            if record.stack_info:
                parts.append(record.stack_info)
            out.append("\n".join(parts))
        return out


@pytest.fixture
def captured() -> Iterator[Capture]:
    """Capture all logging at DEBUG for the test, restoring levels afterwards."""
    capture = Capture()
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(capture)
    package = logging.getLogger("odyssey_sync")
    own_handlers = list(package.handlers)
    yield capture
    logging.getLogger().removeHandler(capture)
    for handler in list(package.handlers):
        if handler not in own_handlers:  # the one debug=True adds
            package.removeHandler(handler)
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)


def _leaks(texts: list[str], secrets: dict[str, str]) -> list[str]:
    found = []
    for text in texts:
        for name, secret in secrets.items():
            if secret and secret in text:
                found.append(f"{name} in: {text[:300]!r}")
        match = TOKEN_IN_QUERY.search(text)
        if match:
            found.append(f"token query {match.group(0)[:20]}... in: {text[:300]!r}")
    return found


def _exception_texts(error: BaseException) -> list[str]:
    return [str(error), repr(error), "".join(traceback.format_exception(type(error), error, error.__traceback__))]


# -- secrets ------------------------------------------------------------------------------------


def test_no_secret_in_logs_reprs_or_errors(guarded: LocalOdyssey, captured: Capture, capfd: pytest.CaptureFixture[str]) -> None:
    secrets: dict[str, str] = {"api key": VICTIM.key, "wrong api key": WRONG_KEY}
    texts: list[str] = []

    # A full session on the API-key path, with debug=True (the SDK's own stderr handler too).
    with Odyssey(api_key=VICTIM.key, api_url=guarded.url, timeout=20, debug=True) as client:
        texts.append(repr(client))
        client.connect(on_error=lambda e, fatal: texts.extend(_exception_texts(e)))
        assert client._rest is not None and client._rest._token  # white-box: the cached access token
        secrets["access token"] = client._rest._token
        assert client._conn is not None and client._conn.session is not None
        secrets["session token"] = client._conn.session._token  # white-box: the JWT connect() minted
        texts += [repr(client), repr(client._rest), str(client.stats)]
        stream_id = client.start_stream("A red barn", portrait=False, image=np.full((90, 160, 3), (200, 30, 30), np.uint8))
        ack = client.interact("Snow starts to fall")
        client.wait_for_frame(after=ack, timeout=10)
        client.end_stream()
        texts += [repr(client), stream_id, ack]

    # The two-phase path: credentials minted by a backend, used by a keyless client.
    with Odyssey(api_key=VICTIM.key, api_url=guarded.url, timeout=20) as backend:
        credentials = backend.create_client_credentials()
        texts += [repr(backend), repr(credentials), str(credentials)]
    secrets["minted session token"] = credentials.session_token
    expired = ClientCredentials(
        credentials.signaling_url, guarded.mint_session_token(credentials.session_id, lifetime_s=-10)
    )
    secrets["expired session token"] = expired.session_token
    texts += [repr(expired)]
    with Odyssey(api_url=guarded.url, timeout=20, advanced=FAST_RETRIES) as keyless:
        with pytest.raises(OdysseyAuthError, match="expired") as refused:
            keyless.connect_with_credentials(expired)
        texts += _exception_texts(refused.value) + [repr(keyless)]
        keyless.connect_with_credentials(credentials)
        keyless.start_stream("A lighthouse", portrait=False)
        texts.append(repr(keyless))

    # A wrong key: refused, and not echoed anywhere.
    with Odyssey(api_key=WRONG_KEY, api_url=guarded.url, timeout=20) as wrong:
        with pytest.raises(OdysseyAuthError) as denied:
            wrong.connect()
        texts += _exception_texts(denied.value) + [repr(wrong)]

    texts += [repr(BroadcastInfo("https://hls.example/x.m3u8", "https://whep.example/s", "spectator-secret-0123456789"))]
    secrets["spectator token"] = "spectator-secret-0123456789"
    out, err = capfd.readouterr()
    records = captured.texts()
    assert any(r.startswith("odyssey_sync.") for r in records), "nothing was captured at DEBUG"
    assert any("aiortc" in r or "aioice" in r for r in records), "the WebRTC stack's debug logs were captured"
    assert "odyssey_sync" in err, "debug=True wrote its log lines to stderr"
    assert not _leaks(records + texts + [out, err], secrets)


def test_signaling_urls_are_logged_redacted() -> None:
    url = protocol.signaling_client_url("wss://signal.example/", "session-1", "eyJ.secret.part")
    assert "eyJ.secret.part" not in protocol.redact_url(url)
    text = f"Cannot connect to {url}: refused"
    assert "secret" not in protocol.scrub_urls(text)


# -- TLS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [Odyssey.__init__, Odyssey.connect, Odyssey.connect_with_credentials, RestClient.__init__])
def test_no_parameter_turns_tls_verification_off(target: Any) -> None:
    names = list(inspect.signature(target).parameters)
    assert not [n for n in names if re.search(r"verify|ssl|tls|insecure|cert|ca_bundle", n, re.IGNORECASE)], names


def test_empty_ca_bundle_variables_keep_verification_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "")
    monkeypatch.setenv("CURL_CA_BUNDLE", "")
    rest = RestClient("https://api.example", "ody_x")
    try:
        assert rest._session.verify is True
        merged = rest._session.merge_environment_settings("https://api.example/auth/token", {}, None, None, None)
        assert merged["verify"] is True
    finally:
        rest.close()


class _SelfSigned:
    """An HTTPS server with a self-signed certificate for 127.0.0.1; counts the requests it decodes."""

    def __init__(self, directory: Path) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256())
        )
        (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / "key.pem").write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
        self.requests: list[str] = []
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                self.send_response(200)
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the refused handshakes

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="self-signed-https", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def self_signed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_SelfSigned]:
    """A self-signed HTTPS server, with the CA-bundle variables set to the empty string."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "")
    monkeypatch.setenv("CURL_CA_BUNDLE", "")
    server = _SelfSigned(tmp_path)
    yield server
    server.close()


def test_a_self_signed_api_is_refused_before_the_key_is_sent(self_signed: _SelfSigned) -> None:
    with Odyssey(api_key=VICTIM.key, api_url=f"https://127.0.0.1:{self_signed.port}", timeout=10) as client:
        with pytest.raises(OdysseyConnectionError, match="TLS verification failed") as info:
            client.connect()
        assert VICTIM.key not in str(info.value)
    assert self_signed.requests == [], "an HTTP request got through an unverified TLS connection"


def test_a_self_signed_signaling_server_is_refused(self_signed: _SelfSigned) -> None:
    token = jwt.encode({"session_id": "s-1", "iat": 0, "exp": 2**31}, "k" * 32)
    credentials = ClientCredentials(f"wss://127.0.0.1:{self_signed.port}", token)
    with Odyssey(api_url="https://127.0.0.1:9", timeout=10, advanced=FAST_RETRIES) as client:
        with pytest.raises(OdysseyConnectionError, match="(?i)certificate|ssl") as info:
            client.connect_with_credentials(credentials)
        assert token not in str(info.value)
    assert self_signed.requests == [], "the ICE config or the socket was fetched over unverified TLS"


# -- the local server's gatekeeping ---------------------------------------------------------------


def _bearer(server: LocalOdyssey, key: ApiKey) -> dict[str, str]:
    token = requests.post(f"{server.url}/auth/token", json={"api_key": key.key}, timeout=10).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def _handshake(url: str) -> int:
    async with aiohttp.ClientSession() as http_session:
        try:
            async with http_session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=1.0)):
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


def test_the_server_refuses_intruders_and_keeps_serving_everyone_else(guarded: LocalOdyssey, captured: Capture) -> None:
    known = {record.session_id for record in guarded.sessions()}
    with Odyssey(api_key=VICTIM.key, api_url=guarded.url, timeout=20) as victim:
        victim.connect()
        victim.start_stream("A bank vault", portrait=False)
        victim_id = victim.current_session_id
        assert victim_id is not None
        base = protocol.signaling_ws_base(guarded.url) + f"/client/{victim_id}"

        # The other key holds a session of its own; its token opens only that one.
        other_bearer = _bearer(guarded, OTHER)
        own = requests.post(f"{guarded.url}/sessions/request", json={}, headers=other_bearer, timeout=10).json()
        own_token = requests.post(
            f"{guarded.url}/sessions/token", json={"session_id": own["session_id"]}, headers=other_bearer, timeout=10
        ).json()["session_token"]
        now = int(time.time())
        forged = jwt.encode({"session_id": victim_id, "iat": now, "exp": now + 600}, "not-the-server-secret" * 2)
        expired = guarded.mint_session_token(victim_id, lifetime_s=-30)
        attempts = {
            "missing": base,
            "empty": base + "?token=",
            "garbage": base + "?token=not.a.jwt",
            "forged": base + f"?token={forged}",
            "expired": base + f"?token={expired}",
            "other session's": base + f"?token={own_token}",
        }

        async def knock() -> dict[str, int]:
            return {name: await _handshake(url) for name, url in attempts.items()}

        statuses = asyncio.run(knock())
        assert statuses == {name: 401 for name in attempts}, statuses
        assert victim.is_connected and victim.get_frame(timeout=5)

        # Another key cannot mint tokens for the victim's session, nor read it as its own.
        stolen = requests.post(f"{guarded.url}/sessions/token", json={"session_id": victim_id}, headers=other_bearer, timeout=10)
        assert stolen.status_code == 404 and "token" not in stolen.json()

        # Oversized bodies: 413, before the handler reads them.
        huge = b'{"api_key": "' + b"x" * (BODY_LIMIT + 1) + b'"}'
        for path, headers in (("/auth/token", {}), ("/sessions/request", other_bearer), ("/sessions/token", other_bearer)):
            response = requests.post(
                f"{guarded.url}{path}", data=huge, headers={"Content-Type": "application/json", **headers}, timeout=10
            )
            assert response.status_code == 413 and str(BODY_LIMIT) in response.json()["detail"], path

        # The victim never noticed, and others still get served.
        ack = victim.interact("The vault door swings open")
        assert victim.wait_for_frame(after=ack, timeout=10).prompt == ack
        record = guarded.session(victim_id)
        assert record is not None and record.held and record.connected
        with Odyssey(api_key=OTHER.key, api_url=guarded.url, timeout=20) as bystander:
            bystander.connect()
            assert bystander.start_stream("A quiet street", portrait=False)
            assert bystander.get_frame(timeout=10)
        assert asyncio.run(_handshake(base + f"?token={guarded.mint_session_token(victim_id)}")) == 409
        assert victim.is_connected
    unclaimed = {own["session_id"]}  # held until the server's unclaimed timeout

    def released() -> bool:
        return all(not r.held for r in guarded.sessions() if r.session_id not in known | unclaimed)

    assert guarded.wait_until(released, 10)
    assert not _leaks(captured.texts(), {"forged": forged, "expired": expired, "other": own_token, "key": VICTIM.key})


def test_errors_from_refused_keys_do_not_echo_them(guarded: LocalOdyssey) -> None:
    for key in (WRONG_KEY, "not-even-an-ody-key-123456", "ody_" + "z" * 300):
        with Odyssey(api_key=key, api_url=guarded.url, timeout=10) as client:
            with pytest.raises(OdysseyError) as info:
                client.connect()
            assert not [t for t in _exception_texts(info.value) if key in t]
            assert key not in repr(client)
