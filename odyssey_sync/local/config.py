"""Configuration of the local server: its API keys and its limits.

Every limit of the hosted service is a field here, with the hosted value as
the default, so tests can shrink them (a 1.5 s stream limit, a capacity of
one session) without touching the server's code.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from typing import Any, Mapping

import attrs

__all__ = ["ApiKey", "ServerConfig", "random_api_key"]

KEY_PREFIX = "ody_"
MIB = 1024 * 1024


def random_api_key() -> str:
    """A fresh key of the form ``ody_local_<hex>``."""
    return f"{KEY_PREFIX}local_{secrets.token_hex(16)}"


def _default_key_name(key: ApiKey) -> str:
    # A name derived from the key's hash identifies it in records without revealing it.
    return "key-" + hashlib.sha256(key.key.encode("utf-8")).hexdigest()[:8]


def _check_key(instance: ApiKey, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value.startswith(KEY_PREFIX):
        raise ValueError(f"an API key must be a string starting with {KEY_PREFIX!r}")


@attrs.frozen(repr=False)
class ApiKey:
    """An API key the server accepts, with the account properties the limits consult.

    ``name`` identifies the key in session records and logs (the key itself is
    never logged); ``bypass_privilege`` allows ``bypass_vlm_expansion``;
    ``suspended`` makes ``/auth/token`` answer 403; ``monthly_limit_reached``
    makes ``/sessions/request`` answer 429 ``MONTHLY_LIMIT_REACHED``.
    """

    key: str = attrs.field(validator=_check_key)
    name: str = attrs.field(default=attrs.Factory(_default_key_name, takes_self=True))
    bypass_privilege: bool = False
    suspended: bool = False
    monthly_limit_reached: bool = False

    def __repr__(self) -> str:
        return f"ApiKey(name={self.name!r}, key='{self.key[:4]}...')"


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"ServerConfig.{attribute.name} must be a number > 0, got {value!r}")


def _optional_positive_int(instance: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"ServerConfig.{attribute.name} must be None or an int >= 0, got {value!r}")


def _optional_positive(instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None:
        _positive(instance, attribute, value)


def _non_negative_int(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"ServerConfig.{attribute.name} must be an int >= 0, got {value!r}")


def _optional_path(value: Any) -> str | None:
    return None if value is None else os.fspath(value)


def _port(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"ServerConfig.port must be an int in 0..65535 (0 = a free port), got {value!r}")


def _ice_servers(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    servers = []
    for server in value:
        if not isinstance(server, Mapping) or not isinstance(server.get("urls"), (str, list)):
            raise ValueError(f"each ICE server must be a dict with 'urls', got {server!r}")
        servers.append(dict(server))
    return servers


@attrs.frozen
class ServerConfig:
    """Where the server listens and which limits it enforces.

    Broadcast: a stream started with ``broadcast: true`` takes at most
    ``max_spectators`` WHEP viewers (503 beyond); ``broadcast_hls`` also
    writes it as an HLS playlist (``broadcast_url``; ``None`` when off).
    A viewer whose peer has not connected ``spectator_join_timeout_s`` after
    its offer was answered is dropped and its slot freed; one spectator token
    may have at most ``max_joining_spectators`` such viewers at once (429 with
    ``Retry-After`` beyond), so no token holder can fill the slots with
    offers that never connect.

    ``port=0`` picks a free port. ``capacity`` bounds the sessions held at
    once over all keys (``None`` = unbounded; beyond it ``/sessions/request``
    answers 503); ``max_concurrent_per_key`` bounds them per key (429
    ``CONCURRENT_LIMIT_REACHED``). A session is held from ``/sessions/request``
    until its signaling socket closes, or for ``unclaimed_session_timeout_s``
    when no socket ever opens. ``max_stream_seconds`` ends a stream with
    ``session_timeout``; ``max_connection_seconds`` ends a connection with the
    signaling error ``duration_limit_reached``. ``ice_servers`` is what
    ``GET /config`` returns and what the server's own peers use.
    ``video_bitrate`` is the VP8/H.264 start bitrate in bits/s.

    Recordings and simulations: ``recording`` records every interactive
    stream; metadata and files live in ``data_dir`` (``None``: a temporary
    directory removed at stop; a path keeps them across restarts).
    Presigned file URLs last ``url_ttl_s``. A key may have ``max_queued_jobs``
    simulation jobs pending or running (429 beyond); ``simulation_workers``
    render them (0: jobs stay pending), at most ``simulation_speed`` times
    real time (``None``: as fast as possible). A job's ``script_url`` is
    fetched only from public addresses unless ``allow_private_script_urls``
    (loopback, private networks and link-local included: for trusted setups
    and tests).

    ``max_body_bytes`` is the largest request the server reads at all: the
    size of a simulation job or of a signaling message (a start image fits);
    smaller routes have smaller limits of their own.
    """

    host: str = "127.0.0.1"
    port: int = attrs.field(default=0, validator=_port)
    fps: float = attrs.field(default=20.0, validator=_positive)
    max_stream_seconds: float = attrs.field(default=150.0, validator=_positive)
    max_connection_seconds: float = attrs.field(default=3600.0, validator=_positive)
    max_concurrent_per_key: int = attrs.field(default=5, validator=_positive)
    capacity: int | None = attrs.field(default=None, validator=_optional_positive_int)
    image_to_video: bool = True
    max_spectators: int = attrs.field(default=50, validator=_positive)
    max_joining_spectators: int = attrs.field(default=10, validator=_positive)
    spectator_join_timeout_s: float = attrs.field(default=5.0, validator=_positive)
    broadcast_hls: bool = True
    ice_servers: list[dict[str, Any]] = attrs.field(factory=list, converter=_ice_servers)
    unclaimed_session_timeout_s: float = attrs.field(default=60.0, validator=_positive)
    max_body_bytes: int = attrs.field(default=40 * MIB, validator=_positive)
    video_bitrate: int = attrs.field(default=2_500_000, validator=_positive)
    access_token_lifetime_s: int = attrs.field(default=3600, validator=_positive)
    recording: bool = True
    data_dir: str | None = attrs.field(default=None, converter=_optional_path)
    url_ttl_s: float = attrs.field(default=3600.0, validator=_positive)
    max_queued_jobs: int = attrs.field(default=10, validator=_positive)
    simulation_workers: int = attrs.field(default=1, validator=_non_negative_int)
    simulation_speed: float | None = attrs.field(default=None, validator=_optional_positive)
    allow_private_script_urls: bool = False
