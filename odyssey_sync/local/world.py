"""The procedural "world model" rendered by the local Odyssey-compatible server.

A :class:`World` stands in for the AI model: it turns a prompt (and an
optional seed image) into an endless, smoothly moving video. Everything
expensive is computed once per (prompt, seed image, size) and cached as a
horizontally periodic backdrop in YUV 4:2:0; rendering a frame then only
copies a scrolling window of that backdrop, draws a small moving object and,
for :meth:`World.render`, writes the :mod:`odyssey_sync.stamp`. No colour
conversion happens per frame.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import operator
import threading
from collections import OrderedDict
from dataclasses import dataclass

import av
import numpy as np
from av.video.plane import VideoPlane

from ..stamp import now_ms, write_stamp_chroma, write_stamp_luma

__all__ = ["World"]

_CACHE_SIZE = 4
_IDLE_SPEED = 1
_SEED_SPEED = 2
# Keep the world's colours off pure black/white (RGB scale).
_RGB_MIN = 24.0
_RGB_MAX = 232.0
# BT.601 limited range, the default swscale (and so PyAV) uses for yuv420p <-> rgb24.
_RGB_TO_YUV = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ],
    dtype=np.float32,
) / np.float32(255.0)
_YUV_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float32)
# Y range matching RGB 24..232 for greys; chroma within the legal video range.
_PLANE_RANGE = ((37.0, 215.0), (16.0, 240.0), (16.0, 240.0))
_SEED_TINT_LUMA = 0.2
_SEED_TINT_CHROMA = 0.55


@dataclass(frozen=True, slots=True)
class _Sprite:
    """A small object drawn on top of the backdrop; ``size`` is even."""

    size: int
    y: np.ndarray
    mask: np.ndarray
    u: np.uint8
    v: np.uint8
    chroma_mask: np.ndarray


@dataclass(frozen=True, slots=True)
class _Path:
    """Lissajous path of the sprite's top-left corner, in pixels; ``t`` is seconds."""

    x_min: int
    x_span: int
    y_min: int
    y_span: int
    freq_x: float
    freq_y: float
    phase_x: float
    phase_y: float

    def position(self, t: float) -> tuple[int, int]:
        """Return the even ``(x, y)`` of the sprite's top-left corner at time ``t``."""
        fx = 0.5 + 0.5 * math.sin(2.0 * math.pi * self.freq_x * t + self.phase_x)
        fy = 0.5 + 0.5 * math.sin(2.0 * math.pi * self.freq_y * t + self.phase_y)
        return (
            self.x_min + 2 * round(fx * self.x_span / 2),
            self.y_min + 2 * round(fy * self.y_span / 2),
        )


@dataclass(frozen=True, slots=True)
class _Scene:
    """Everything needed to render frames of one (prompt, seed, size).

    ``y`` is (height, width + period) and ``u``/``v`` are half that in both
    directions; column ``c`` equals column ``c + period``, so any window
    starting below ``period`` is a seamless view of an endless strip.
    """

    width: int
    height: int
    period: int
    speed: int
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    sprite: _Sprite
    path: _Path


class World:
    """Deterministic procedural world: the look is a pure function of (prompt, seed image, size, frame number).

    The scene scrolls horizontally (1 px per frame when idle, 2 over a seed
    image, 3-5 for a prompt) and a small object follows a smooth path whose
    position is a function of ``frame_number / fps``. A blank prompt gives a
    grey idle scene; any other prompt picks palette, terrain, object and
    speed from ``sha256(prompt)``. With a seed image the world pans over that
    picture (mirrored to make it endless) tinted by the prompt's palette.

    Thread-safe: prompt, seed and size may be changed from one thread while
    another renders; a frame always uses one consistent state.
    """

    def __init__(self, width: int = 1280, height: int = 704, *, fps: float = 20.0) -> None:
        """Create an idle world of ``width`` x ``height`` pixels (both even, at least 128x16)."""
        width, height = _check_size(width, height)
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self._width = width
        self._height = height
        self._fps = float(fps)
        self._prompt = ""
        self._seed: np.ndarray | None = None
        self._seed_token = 0
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, int, int, int], _Scene] = OrderedDict()

    @property
    def width(self) -> int:
        """Frame width in pixels."""
        return self._width

    @property
    def height(self) -> int:
        """Frame height in pixels."""
        return self._height

    @property
    def fps(self) -> float:
        """Frames per second; the object's position is a function of ``frame_number / fps``."""
        return self._fps

    @property
    def prompt(self) -> str:
        """The current prompt; ``""`` means the idle scene."""
        return self._prompt

    @property
    def has_seed_image(self) -> bool:
        """Whether a seed image is set."""
        return self._seed is not None

    def set_prompt(self, prompt: str) -> None:
        """Change the scene to ``prompt`` from the next rendered frame on.

        A blank (empty or whitespace-only) prompt selects the idle scene. The
        backdrop for a new prompt is built lazily by the next render (tens of
        milliseconds at 1280x704) and cached.
        """
        with self._lock:
            self._prompt = prompt

    def set_seed_image(self, rgb: np.ndarray | None) -> None:
        """Pan over ``rgb``, a ``(height, width, 3)`` uint8 RGB image, instead of the procedural backdrop.

        The pan is endless (the image alternates with its mirror image) and
        later prompts tint it and set the moving object, so an interaction
        stays visible. ``None`` returns to the procedural backdrop. The image
        is copied; after a :meth:`resize` it is scaled and centre-cropped to
        cover the new size. Raises ``ValueError`` on a wrong shape or dtype.
        """
        if rgb is not None:
            rgb = np.array(rgb, copy=True, order="C")
            rgb.flags.writeable = False
        with self._lock:
            if rgb is not None and (rgb.dtype != np.uint8 or rgb.shape != (self._height, self._width, 3)):
                raise ValueError(
                    f"seed image must be uint8 with shape {(self._height, self._width, 3)}, "
                    f"got {rgb.dtype} {rgb.shape}"
                )
            self._seed = rgb
            self._seed_token += 1

    def resize(self, width: int, height: int) -> None:
        """Change the frame size (e.g. landscape <-> portrait); both even, at least 128x16."""
        width, height = _check_size(width, height)
        with self._lock:
            self._width = width
            self._height = height

    def render_planes(self, frame_number: int) -> np.ndarray:
        """Render frame ``frame_number`` without a stamp as a new ``(height*3//2, width)`` uint8 yuv420p array.

        The layout (Y, then U, then V, each plane's rows back to back) is the
        one ``av.VideoFrame.from_ndarray(array, format="yuv420p")`` takes.
        """
        scene = self._current_scene()
        width, height = scene.width, scene.height
        out = np.empty((height * 3 // 2, width), dtype=np.uint8)
        flat = out.reshape(-1)
        luma = width * height
        chroma = luma // 4
        _compose(
            scene,
            frame_number,
            self._fps,
            flat[:luma].reshape(height, width),
            flat[luma : luma + chroma].reshape(height // 2, width // 2),
            flat[luma + chroma :].reshape(height // 2, width // 2),
        )
        return out

    def render(self, frame_number: int, *, stamp_time_ms: int | None = None) -> av.VideoFrame:
        """Render frame ``frame_number`` as a yuv420p ``av.VideoFrame`` carrying a stamp.

        The stamp holds ``frame_number`` and ``stamp_time_ms`` (default
        :func:`odyssey_sync.stamp.now_ms`, read after the frame is drawn),
        both modulo 2**32. ``pts`` and ``time_base`` are left for the caller
        to set.
        """
        scene = self._current_scene()
        frame = av.VideoFrame(scene.width, scene.height, "yuv420p")
        y, u, v = (_plane_view(plane) for plane in frame.planes)
        _compose(scene, frame_number, self._fps, y, u, v)
        write_stamp_luma(y, frame_number, now_ms() if stamp_time_ms is None else stamp_time_ms)
        write_stamp_chroma(u, v)
        return frame

    def render_rgb(self, frame_number: int, *, stamp_time_ms: int | None = None) -> np.ndarray:
        """Render frame ``frame_number`` with its stamp as a ``(height, width, 3)`` uint8 RGB array.

        Converts through PyAV (about half a millisecond at 1280x704): meant
        for tests and thumbnails, not the streaming path.
        """
        return self.render(frame_number, stamp_time_ms=stamp_time_ms).to_ndarray(format="rgb24")

    def _current_scene(self) -> _Scene:
        with self._lock:
            prompt = self._prompt if self._prompt.strip() else ""
            seed, width, height = self._seed, self._width, self._height
            key = (prompt, width, height, self._seed_token if seed is not None else 0)
            scene = self._cache.get(key)
            if scene is not None:
                self._cache.move_to_end(key)
                return scene
        # Built outside the lock so set_prompt() & co. never wait for it.
        scene = _build_scene(prompt, width, height, seed)
        with self._lock:
            self._cache[key] = scene
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return scene


def _check_size(width: int, height: int) -> tuple[int, int]:
    """Validate a frame size and return it as plain ints."""
    width, height = operator.index(width), operator.index(height)
    if width % 2 or height % 2 or width < 128 or height < 16:
        raise ValueError(f"width and height must be even and at least 128x16, got {width}x{height}")
    return width, height


def _plane_view(plane: VideoPlane) -> np.ndarray:
    """Writable (height, width) view of a frame plane, skipping the line padding."""
    buffer = np.frombuffer(memoryview(plane), dtype=np.uint8)
    view: np.ndarray = buffer[: plane.line_size * plane.height].reshape(plane.height, plane.line_size)[:, : plane.width]
    return view


def _compose(
    scene: _Scene, frame_number: int, fps: float, y: np.ndarray, u: np.ndarray, v: np.ndarray
) -> None:
    """Draw frame ``frame_number`` of ``scene`` into the given planes."""
    width = scene.width
    offset = (scene.speed * frame_number) % scene.period
    # Odd offsets put chroma half a chroma sample off luma: invisible, and allows the 1 px idle scroll.
    chroma_offset = offset // 2
    np.copyto(y, scene.y[:, offset : offset + width])
    np.copyto(u, scene.u[:, chroma_offset : chroma_offset + width // 2])
    np.copyto(v, scene.v[:, chroma_offset : chroma_offset + width // 2])

    sprite = scene.sprite
    x0, y0 = scene.path.position(frame_number / fps)
    size, half = sprite.size, sprite.size // 2
    np.copyto(y[y0 : y0 + size, x0 : x0 + size], sprite.y, where=sprite.mask)
    cx, cy = x0 // 2, y0 // 2
    np.copyto(u[cy : cy + half, cx : cx + half], sprite.u, where=sprite.chroma_mask)
    np.copyto(v[cy : cy + half, cx : cx + half], sprite.v, where=sprite.chroma_mask)


def _hash_floats(prompt: str, count: int) -> list[float]:
    """``count`` floats in [0, 1) derived from ``sha256(prompt)`` (extended in counter mode)."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    blocks = [digest]
    while len(blocks) * 8 < count:
        blocks.append(hashlib.sha256(digest + len(blocks).to_bytes(4, "big")).digest())
    data = b"".join(blocks)
    return [int.from_bytes(data[i : i + 4], "big") / 2**32 for i in range(0, 4 * count, 4)]


def _hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    """RGB (0-255 scale, float32) of an HSV colour, clamped away from black and white."""
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, min(max(saturation, 0.0), 1.0), min(max(value, 0.0), 1.0))
    colour: np.ndarray = np.clip(np.array([r, g, b], dtype=np.float32) * 255.0, _RGB_MIN, _RGB_MAX)
    return colour


def _rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """Convert ``(..., 3)`` RGB floats (0-255) to ``(..., 3)`` YUV floats (BT.601 limited range)."""
    yuv: np.ndarray = rgb @ _RGB_TO_YUV.T + _YUV_OFFSET
    return yuv


@dataclass(frozen=True, slots=True)
class _Look:
    """Palette, terrain and motion parameters of a procedural scene."""

    sky_top: np.ndarray
    sky_horizon: np.ndarray
    sun: np.ndarray
    far_hills: np.ndarray
    ground_far: np.ndarray
    ground_near: np.ndarray
    tint: np.ndarray
    object_colour: np.ndarray
    horizon: float
    far_waves: tuple[tuple[int, float, float], ...]
    near_waves: tuple[tuple[int, float, float], ...]
    sun_x: float
    sun_y: float
    sun_radius: float
    texture_cycles: int
    texture_depth: float
    texture_amount: float
    object_is_disc: bool
    object_scale: float
    speed: int
    path_freqs: tuple[float, float]
    path_phases: tuple[float, float]


_IDLE_LOOK = _Look(
    sky_top=_hsv(0.0, 0.0, 0.62),
    sky_horizon=_hsv(0.0, 0.0, 0.78),
    sun=_hsv(0.0, 0.0, 0.84),
    far_hills=_hsv(0.0, 0.0, 0.58),
    ground_far=_hsv(0.0, 0.0, 0.5),
    ground_near=_hsv(0.0, 0.0, 0.4),
    tint=_hsv(0.0, 0.0, 0.5),
    object_colour=_hsv(0.0, 0.0, 0.82),
    horizon=0.48,
    far_waves=((1, 0.05, 0.3), (3, 0.025, 1.9), (7, 0.01, 4.0)),
    near_waves=((2, 0.03, 2.2), (5, 0.012, 0.7)),
    sun_x=0.3,
    sun_y=0.2,
    sun_radius=0.06,
    texture_cycles=6,
    texture_depth=3.0,
    texture_amount=0.05,
    object_is_disc=True,
    object_scale=0.1,
    speed=_IDLE_SPEED,
    path_freqs=(0.03, 0.05),
    path_phases=(0.0, 1.0),
)


def _look_for(prompt: str) -> _Look:
    """The scene parameters for ``prompt`` (the fixed grey idle look for ``""``)."""
    if not prompt:
        return _IDLE_LOOK
    f = _hash_floats(prompt, 48)
    ground_hue = f[0]
    ground_sat = 0.45 + 0.45 * f[1]
    ground_val = 0.3 + 0.55 * f[2]
    sky_hue = ground_hue + 0.3 + 0.4 * f[3]
    sky_sat = 0.2 + 0.5 * f[4]
    sky_val = 0.55 + 0.35 * f[5]
    sky_horizon = _hsv(sky_hue, sky_sat, sky_val)
    ground_near = _hsv(ground_hue, ground_sat, ground_val)
    hills = _hsv(ground_hue + 0.15 * (f[6] - 0.5), 0.6 * ground_sat, 0.8 * ground_val + 0.1)

    def waves(start: int, base_amplitude: float) -> tuple[tuple[int, float, float], ...]:
        cycles = (1, 2, 3, 5, 8, 13)
        return tuple(
            (k, base_amplitude * (0.3 + f[start + i]) / k**0.7, 2.0 * math.pi * f[start + i + 6])
            for i, k in enumerate(cycles)
        )

    return _Look(
        sky_top=_hsv(sky_hue + 0.05, min(1.0, sky_sat * 1.4), sky_val * 0.7),
        sky_horizon=sky_horizon,
        sun=_hsv(sky_hue + 0.5, 0.35, 0.95),
        far_hills=0.5 * hills + 0.5 * sky_horizon,
        ground_far=0.7 * ground_near + 0.3 * sky_horizon,
        ground_near=ground_near,
        tint=ground_near,
        object_colour=_hsv(ground_hue + 0.5, 0.75, 0.9 if ground_val < 0.6 else 0.35),
        horizon=0.4 + 0.1 * f[7],
        far_waves=waves(8, 0.09),
        near_waves=waves(20, 0.05),
        sun_x=f[32],
        sun_y=0.1 + 0.15 * f[33],
        sun_radius=0.04 + 0.05 * f[34],
        texture_cycles=4 + int(12 * f[35]),
        texture_depth=1.0 + 5.0 * f[36],
        texture_amount=0.05 + 0.08 * f[37],
        object_is_disc=f[38] < 0.6,
        object_scale=0.09 + 0.06 * f[39],
        speed=3 + int(3 * f[40]),
        path_freqs=(0.04 + 0.06 * f[41], 0.06 + 0.08 * f[42]),
        path_phases=(2.0 * math.pi * f[43], 2.0 * math.pi * f[44]),
    )


def _procedural_plane(
    look: _Look, rows: int, cols: int, period: int, aspect_ratio: float, channels: tuple[int, ...]
) -> list[np.ndarray]:
    """One period of the procedural backdrop sampled on a ``rows`` x ``cols`` grid, as uint8 YUV planes.

    ``channels`` picks which of Y (0), U (1), V (2) to return; luma is
    sampled at full resolution and chroma on the half-resolution grid by the
    caller. ``aspect_ratio`` is the frame's width / height. Every colour in
    the scene is an RGB palette colour scaled by a per-pixel factor, and
    RGB -> YUV is linear, so the planes are computed from the palette's YUV
    coefficients without any per-pixel conversion.
    """
    ys = ((np.arange(rows, dtype=np.float32) + 0.5) / rows)[:, None]
    theta = ((np.arange(cols, dtype=np.float32) + 0.5) * np.float32(2.0 * math.pi / cols))[None, :]
    height_px = rows * period / cols  # frame height on this grid's horizontal pixel scale

    def ridge(base: float, waves: tuple[tuple[int, float, float], ...]) -> np.ndarray:
        line: np.ndarray = np.full_like(theta, base)
        for cycles, amplitude, phase in waves:
            line += np.float32(amplitude) * np.sin(np.float32(cycles) * theta + np.float32(phase))
        return line

    far = np.clip(ridge(look.horizon - 0.1, look.far_waves), 0.12, 0.7)
    near = np.clip(ridge(look.horizon, look.near_waves), 0.25, 0.75)
    hills = ys >= far
    ground = ys >= near
    hills_shade = np.clip((ys - far) * np.float32(-0.25 / 0.3) + np.float32(1.0), 0.75, 1.0)
    depth = np.clip((ys - near) / np.maximum(np.float32(1.0) - near, np.float32(0.05)), 0.0, 1.0)
    # Furrows that bunch up towards the horizon, for a hint of perspective.
    ground_shade = np.sin(
        theta * np.float32(look.texture_cycles) + np.float32(look.texture_depth * 6.0) / (depth + np.float32(0.15))
    )
    ground_shade *= np.float32(look.texture_amount)
    ground_shade += np.float32(1.0)

    # Sun: a soft disc in the sky, horizontally periodic like everything else; sized by the short side.
    sun_radius = look.sun_radius * min(1.0, aspect_ratio)
    aspect = np.float32(period / height_px)
    sun_x = (theta / np.float32(2.0 * math.pi)) * aspect
    dx = (sun_x - np.float32(look.sun_x) * aspect + aspect / 2) % aspect - aspect / 2
    sun_rows = slice(
        max(0, math.floor((look.sun_y - sun_radius) * rows) - 1),
        min(rows, math.ceil((look.sun_y + sun_radius) * rows) + 1),
    )
    sun_distance = np.sqrt(dx * dx + (ys[sun_rows] - np.float32(look.sun_y)) ** 2)
    sun = np.clip((np.float32(sun_radius) - sun_distance) * np.float32(height_px / 2.0), 0.0, 1.0)

    sky_t = np.clip(ys / np.float32(look.horizon), 0.0, 1.0)
    planes = []
    for channel in channels:
        def coefficient(colour: np.ndarray, channel: int = channel) -> np.float32:
            value: np.float32 = np.float32(_RGB_TO_YUV[channel] @ colour)
            return value

        offset = _YUV_OFFSET[channel]
        sky_top, sky_horizon = coefficient(look.sky_top), coefficient(look.sky_horizon)
        plane = np.broadcast_to(sky_top + sky_t * (sky_horizon - sky_top), (rows, cols)).copy()
        plane[sun_rows] += sun * (coefficient(look.sun) - plane[sun_rows])
        np.copyto(plane, hills_shade * coefficient(look.far_hills), where=hills)
        ground_far, ground_near = coefficient(look.ground_far), coefficient(look.ground_near)
        ground_value = depth * (ground_near - ground_far)
        ground_value += ground_far
        ground_value *= ground_shade
        np.copyto(plane, ground_value, where=ground)
        plane += offset
        low, high = _PLANE_RANGE[channel]
        planes.append(np.clip(np.rint(plane, out=plane), low, high, out=plane).astype(np.uint8))
    return planes


def _seed_yuv(seed: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seed image scaled/cropped to cover ``width`` x ``height``, as uint8 Y, U, V planes."""
    seed_height, seed_width = seed.shape[:2]
    if (seed_width, seed_height) != (width, height):
        if seed_width * height > width * seed_height:
            crop = max(1, round(seed_height * width / height))
            x0 = (seed_width - crop) // 2
            seed = seed[:, x0 : x0 + crop]
        else:
            crop = max(1, round(seed_width * height / width))
            y0 = (seed_height - crop) // 2
            seed = seed[y0 : y0 + crop]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(seed), format="rgb24")
    planes = frame.reformat(width=width, height=height, format="yuv420p").to_ndarray()
    flat = planes.reshape(-1)
    luma = width * height
    chroma = luma // 4
    return (
        flat[:luma].reshape(height, width),
        flat[luma : luma + chroma].reshape(height // 2, width // 2),
        flat[luma + chroma :].reshape(height // 2, width // 2),
    )


def _sprite(look: _Look, width: int, height: int) -> _Sprite:
    """The moving object: a shaded disc or a framed box, even-sized, about 10-15% of the short side."""
    size = max(4, 2 * round(min(width, height) * look.object_scale / 2))
    radius = size / 2.0
    grid = np.arange(size, dtype=np.float32) + 0.5 - np.float32(radius)
    gy, gx = grid[:, None], grid[None, :]
    object_y, object_u, object_v = (float(c) for c in _rgb_to_yuv(look.object_colour))
    if look.object_is_disc:
        mask = gx * gx + gy * gy <= radius * radius
        light_distance = (gx + 0.35 * radius) ** 2 + (gy + 0.35 * radius) ** 2
        highlight = np.clip(1.0 - light_distance / (1.6 * radius) ** 2, 0, 1)
        luma = object_y * (0.8 + 0.35 * highlight)
    else:
        mask = np.ones((size, size), dtype=bool)
        border = np.maximum(np.abs(gx), np.abs(gy)) > radius - max(2.0, size / 10.0)
        luma = np.where(border, object_y * 0.65, object_y)
    chroma_mask = mask.reshape(size // 2, 2, size // 2, 2).mean(axis=(1, 3)) >= 0.5
    return _Sprite(
        size=size,
        y=np.clip(np.rint(luma), 24, 226).astype(np.uint8),
        mask=mask,
        u=np.uint8(round(object_u)),
        v=np.uint8(round(object_v)),
        chroma_mask=chroma_mask,
    )


def _path(look: _Look, width: int, height: int, size: int) -> _Path:
    """The object's path: inside the frame and below its top eighth (clear of the stamp at usual sizes)."""
    y_min = min(height - size, 2 * round(height * 0.125))
    return _Path(
        x_min=0,
        x_span=width - size,
        y_min=y_min,
        y_span=height - size - y_min,
        freq_x=look.path_freqs[0],
        freq_y=look.path_freqs[1],
        phase_x=look.path_phases[0],
        phase_y=look.path_phases[1],
    )


def _extend(plane: np.ndarray, extra: int) -> np.ndarray:
    """Append the first ``extra`` columns, so every window of the frame width starting before the period fits."""
    result = np.concatenate([plane, plane[:, :extra]], axis=1)
    result.flags.writeable = False
    return result


def _build_scene(prompt: str, width: int, height: int, seed: np.ndarray | None) -> _Scene:
    """Precompute the backdrop, sprite and path for one (prompt, size, seed)."""
    look = _look_for(prompt)
    period = 2 * width
    if seed is None:
        (y,) = _procedural_plane(look, height, period, period, width / height, (0,))
        u, v = _procedural_plane(look, height // 2, period // 2, period, width / height, (1, 2))
        speed = look.speed
    else:
        seed_y, seed_u, seed_v = _seed_yuv(seed, width, height)
        # The mirrored copy makes the strip seamless: [image | image flipped left-right].
        y = np.concatenate([seed_y, seed_y[:, ::-1]], axis=1)
        u = np.concatenate([seed_u, seed_u[:, ::-1]], axis=1)
        v = np.concatenate([seed_v, seed_v[:, ::-1]], axis=1)
        if prompt:
            tint_y, tint_u, tint_v = (float(c) for c in _rgb_to_yuv(look.tint))
            y = _blend(y, tint_y, _SEED_TINT_LUMA)
            u = _blend(u, tint_u, _SEED_TINT_CHROMA)
            v = _blend(v, tint_v, _SEED_TINT_CHROMA)
        speed = _SEED_SPEED
    sprite = _sprite(look, width, height)
    return _Scene(
        width=width,
        height=height,
        period=period,
        speed=speed,
        y=_extend(y, width),
        u=_extend(u, width // 2),
        v=_extend(v, width // 2),
        sprite=sprite,
        path=_path(look, width, height, sprite.size),
    )


def _blend(plane: np.ndarray, target: float, amount: float) -> np.ndarray:
    """``plane`` moved ``amount`` of the way towards ``target``, as uint8."""
    blended = plane.astype(np.float32) * np.float32(1.0 - amount) + np.float32(target * amount)
    moved: np.ndarray = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return moved
