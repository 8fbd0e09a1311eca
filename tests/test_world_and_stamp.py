"""Tests for the frame stamp (odyssey_sync.stamp) and the local server's procedural world."""

from __future__ import annotations

import time
from fractions import Fraction

import av
import numpy as np
import pytest

from odyssey_sync.local.world import World
from odyssey_sync.stamp import (
    STAMP_HEIGHT,
    STAMP_WIDTH,
    Stamp,
    age_ms,
    now_ms,
    read_stamp,
    stamp_block_size,
    write_stamp_chroma,
    write_stamp_luma,
    write_stamp_rgb,
)

SMALL = (320, 176)
SIZES = [(1280, 704), (704, 1280), SMALL]
_RNG_VALUES = [int(x) for x in np.random.default_rng(1234).integers(0, 2**32, size=4, dtype=np.uint64)]
VALUES = [0, 1, 2**32 - 1, *_RNG_VALUES]


def _bottom_mean(rgb: np.ndarray) -> np.ndarray:
    return rgb[rgb.shape[0] // 2 :].reshape(-1, 3).mean(axis=0)


def _yuv_to_rgb(planes: np.ndarray) -> np.ndarray:
    return av.VideoFrame.from_ndarray(planes, format="yuv420p").to_ndarray(format="rgb24")


def _seed_image(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    checker = ((xx // 32 + yy // 32) % 2) * 150 + 40
    return np.stack([xx * 255 // width, yy * 255 // height, checker], axis=-1).astype(np.uint8)


# --- stamp -------------------------------------------------------------------


def test_stamp_constants() -> None:
    assert (STAMP_WIDTH, STAMP_HEIGHT) == (512, 48)
    assert stamp_block_size(1280, 704) == 16
    assert stamp_block_size(704, 1280) == 16
    assert stamp_block_size(320, 176) == 8
    assert stamp_block_size(100, 100) is None


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("frame_number", VALUES)
def test_stamp_round_trip_rgb(size: tuple[int, int], frame_number: int) -> None:
    width, height = size
    time_ms = (frame_number * 7919 + 12345) % 2**32
    rgb = np.full((height, width, 3), 90, dtype=np.uint8)
    write_stamp_rgb(rgb, frame_number, time_ms)
    assert read_stamp(rgb) == Stamp(frame_number, time_ms)
    assert read_stamp(np.ascontiguousarray(rgb[:, :, ::-1])) == Stamp(frame_number, time_ms)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("frame_number", VALUES)
def test_stamp_round_trip_luma(size: tuple[int, int], frame_number: int) -> None:
    width, height = size
    time_ms = (2**32 - 1 - frame_number) % 2**32
    luma = np.full((height, width), 120, dtype=np.uint8)
    write_stamp_luma(luma, frame_number, time_ms)
    assert set(np.unique(luma[:STAMP_HEIGHT, :STAMP_WIDTH])) <= {16, 235, 120}
    assert read_stamp(luma) == Stamp(frame_number, time_ms)


def test_stamp_values_reduced_modulo_2_32() -> None:
    luma = np.zeros((704, 1280), dtype=np.uint8)
    write_stamp_luma(luma, 2**32 + 5, 2**33 + 7)
    assert read_stamp(luma) == Stamp(5, 7)


def test_stamp_only_touches_its_corner() -> None:
    luma = np.full((704, 1280), 77, dtype=np.uint8)
    write_stamp_luma(luma, 123, 456)
    assert (luma[STAMP_HEIGHT:] == 77).all()
    assert (luma[:, STAMP_WIDTH:] == 77).all()


def test_write_stamp_chroma_neutralises_stamp_area() -> None:
    u = np.full((352, 640), 30, dtype=np.uint8)
    v = np.full((352, 640), 220, dtype=np.uint8)
    write_stamp_chroma(u, v)
    assert (u[:24, :256] == 128).all() and (v[:24, :256] == 128).all()
    assert (u[24:] == 30).all() and (u[:, 256:] == 30).all()
    assert (v[24:] == 220).all() and (v[:, 256:] == 220).all()


@pytest.mark.parametrize(
    "image",
    [
        np.random.default_rng(0).integers(0, 256, size=(704, 1280, 3), dtype=np.uint8),
        np.random.default_rng(1).integers(0, 256, size=(176, 320), dtype=np.uint8),
        np.full((704, 1280, 3), 128, dtype=np.uint8),
        np.full((704, 1280), 127, dtype=np.uint8),
        np.zeros((704, 1280, 3), dtype=np.uint8),
        np.full((704, 1280, 3), 255, dtype=np.uint8),
        np.zeros((8, 8), dtype=np.uint8),
    ],
    ids=["noise-rgb", "noise-luma-small", "grey-128", "grey-127", "black", "white", "too-small"],
)
def test_read_stamp_rejects_frames_without_stamp(image: np.ndarray) -> None:
    assert read_stamp(image) is None


def test_read_stamp_detects_a_flipped_bit() -> None:
    luma = np.full((704, 1280), 100, dtype=np.uint8)
    write_stamp_luma(luma, 42, 4242)
    for row, column in [(0, 31), (1, 0), (2, 17)]:
        damaged = luma.copy()
        block = damaged[row * 16 : row * 16 + 16, column * 16 : column * 16 + 16]
        block[:] = 251 - block  # swaps 16 <-> 235
        assert read_stamp(damaged) is None


def test_write_stamp_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        write_stamp_luma(np.zeros((10, 100), dtype=np.uint8), 1, 2)
    with pytest.raises(ValueError):
        write_stamp_rgb(np.zeros((704, 1280), dtype=np.uint8), 1, 2)


def test_now_ms_and_age_ms() -> None:
    before = int(time.time() * 1000) % 2**32
    now = now_ms()
    assert 0 <= now < 2**32
    assert (now - before) % 2**32 < 1000
    assert age_ms(Stamp(0, 1000), 1250) == 250
    assert age_ms(Stamp(0, 2**32 - 10), 5) == 15
    assert age_ms(Stamp(0, 5), 2**32 - 10) == -15
    assert -2**31 <= age_ms(Stamp(0, 0), 2**31) < 2**31
    assert 0 <= age_ms(Stamp(0, now_ms())) < 1000


@pytest.mark.parametrize(
    ("codec", "decoder", "options"),
    [
        ("libvpx", "vp8", {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}),
        ("libx264", "h264", {"preset": "ultrafast", "tune": "zerolatency"}),
    ],
)
def test_stamp_survives_lossy_encoding(codec: str, decoder: str, options: dict[str, str]) -> None:
    world = World(1280, 704)
    world.set_prompt("A stormy sea with a lighthouse")
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = 1280, 704, "yuv420p"
    encoder.time_base = Fraction(1, 20)
    encoder.framerate = Fraction(20, 1)
    encoder.bit_rate = 1_000_000
    encoder.options = options
    decoder_context = av.CodecContext.create(decoder, "r")

    written: list[Stamp] = []
    decoded: list[av.VideoFrame] = []
    for index in range(8):
        frame_number = 1000 + 37 * index
        stamp = Stamp(frame_number, (now_ms() + 1_000_003 * index) % 2**32)
        frame = world.render(frame_number, stamp_time_ms=stamp.time_ms)
        frame.pts = index
        written.append(stamp)
        for packet in encoder.encode(frame):
            decoded.extend(decoder_context.decode(packet))
    for packet in encoder.encode(None):
        decoded.extend(decoder_context.decode(packet))
    decoded.extend(decoder_context.decode(None))

    assert len(decoded) == len(written)
    for frame, stamp in zip(decoded, written):
        rgb = frame.to_ndarray(format="rgb24")
        assert read_stamp(rgb) == stamp
        assert read_stamp(rgb[:, :, ::-1]) == stamp
        assert read_stamp(frame.to_ndarray()[:704]) == stamp


# --- world -------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_world_shapes(size: tuple[int, int]) -> None:
    width, height = size
    world = World(width, height)
    assert (world.width, world.height, world.fps, world.prompt) == (width, height, 20.0, "")
    planes = world.render_planes(0)
    assert planes.shape == (height * 3 // 2, width) and planes.dtype == np.uint8
    frame = world.render(0)
    assert frame.format.name == "yuv420p" and (frame.width, frame.height) == (width, height)
    assert world.render_rgb(0).shape == (height, width, 3)


def test_world_is_deterministic() -> None:
    a, b = World(*SMALL), World(*SMALL)
    for world in (a, b):
        world.set_prompt("A cat")
    for frame_number in (0, 1, 17, 12345, 2**32 + 3):
        assert np.array_equal(a.render_planes(frame_number), b.render_planes(frame_number))
    assert np.array_equal(a.render_rgb(5, stamp_time_ms=99), b.render_rgb(5, stamp_time_ms=99))
    first = a.render_planes(9)
    a.set_prompt("A spaceship")
    a.render_planes(9)
    a.set_prompt("A cat")
    assert np.array_equal(a.render_planes(9), first)


def test_render_planes_returns_a_new_array_each_call() -> None:
    world = World(*SMALL)
    first = world.render_planes(3)
    second = world.render_planes(3)
    assert first is not second and not np.shares_memory(first, second)
    first[:] = 0
    assert np.array_equal(second, world.render_planes(3))


def test_render_matches_render_planes_outside_the_stamp() -> None:
    world = World(*SMALL)
    world.set_prompt("A cat")
    planes = world.render_planes(7)
    stamped = world.render(7, stamp_time_ms=1234).to_ndarray()
    height = SMALL[1]
    assert np.array_equal(stamped[24:height], planes[24:height])
    assert np.array_equal(stamped[:height, 256:], planes[:height, 256:])
    assert read_stamp(stamped[:height]) == Stamp(7, 1234)


def test_render_stamps_frame_number_and_current_time() -> None:
    world = World(*SMALL)
    before = now_ms()
    stamp = read_stamp(world.render_rgb(77))
    assert stamp is not None and stamp.frame_number == 77
    assert 0 <= (stamp.time_ms - before) % 2**32 < 1000


@pytest.mark.parametrize(("first", "second"), [("A cat", "A spaceship"), ("A cat", "The cat turns into a dragon")])
def test_prompts_change_the_colours(first: str, second: str) -> None:
    world = World(*SMALL)
    world.set_prompt(first)
    before = _bottom_mean(world.render_rgb(10))
    world.set_prompt(second)
    after = _bottom_mean(world.render_rgb(11))
    assert np.abs(before - after).max() > 20


def test_idle_scene_is_grey_and_prompted_scenes_are_not() -> None:
    world = World(*SMALL)
    idle = world.render_planes(4)
    height = SMALL[1]
    assert np.abs(idle[height:].astype(int) - 128).max() <= 1
    world.set_prompt("A cat")
    assert np.abs(world.render_planes(4)[height:].astype(int) - 128).mean() > 10
    world.set_prompt("   ")
    assert np.array_equal(world.render_planes(4), idle)


@pytest.mark.parametrize("prompt", ["", "A cat"])
def test_world_moves(prompt: str) -> None:
    world = World(*SMALL)
    world.set_prompt(prompt)
    for frame_number in (0, 100, 5000):
        a = world.render_planes(frame_number)
        b = world.render_planes(frame_number + 5)
        assert (a != b).mean() > 0.1


@pytest.mark.parametrize(("width", "height"), [(1280, 704), (704, 1280)])
def test_orientation_and_resize(width: int, height: int) -> None:
    world = World(width, height)
    world.set_prompt("A cat")
    assert world.render_rgb(0).shape == (height, width, 3)
    world.resize(height, width)
    assert (world.width, world.height) == (height, width)
    assert world.render_planes(1).shape == (width * 3 // 2, height)
    assert world.render_rgb(1).shape == (width, height, 3)
    assert read_stamp(world.render_rgb(2, stamp_time_ms=5)) == Stamp(2, 5)


@pytest.mark.parametrize(("width", "height"), [(321, 176), (320, 175), (64, 176), (320, 8)])
def test_invalid_sizes_are_rejected(width: int, height: int) -> None:
    with pytest.raises(ValueError):
        World(width, height)
    world = World(*SMALL)
    with pytest.raises(ValueError):
        world.resize(width, height)
    assert (world.width, world.height) == SMALL


@pytest.mark.parametrize("prompt", ["", "A cat"])
def test_seed_image_is_used(prompt: str) -> None:
    width, height = SMALL
    seed = _seed_image(width, height)
    world = World(width, height)
    world.set_prompt(prompt)
    procedural = world.render_rgb(3, stamp_time_ms=0).astype(int)
    world.set_seed_image(seed)
    seeded = world.render_rgb(3, stamp_time_ms=0).astype(int)
    to_seed = np.abs(seeded - seed).mean()
    assert to_seed < 0.6 * np.abs(procedural - seed).mean()
    assert (world.render_planes(3) != world.render_planes(8)).mean() > 0.1
    world.set_seed_image(None)
    assert np.array_equal(world.render_rgb(3, stamp_time_ms=0), procedural)


def test_seed_image_is_tinted_by_prompts() -> None:
    width, height = SMALL
    world = World(width, height)
    world.set_seed_image(_seed_image(width, height))
    world.set_prompt("A cat")
    cat = _bottom_mean(world.render_rgb(20))
    world.set_prompt("The cat turns into a dragon")
    dragon = _bottom_mean(world.render_rgb(20))
    assert np.abs(cat - dragon).max() > 20


def test_seed_image_validation_and_resize() -> None:
    width, height = SMALL
    world = World(width, height)
    with pytest.raises(ValueError):
        world.set_seed_image(np.zeros((height, width + 2, 3), dtype=np.uint8))
    with pytest.raises(ValueError):
        world.set_seed_image(np.zeros((height, width, 3), dtype=np.float32))
    seed = _seed_image(width, height)
    world.set_seed_image(seed)
    seed[:] = 0  # the world keeps its own copy
    assert np.abs(world.render_rgb(0).astype(int)).mean() > 40
    procedural = World(height, width).render_rgb(0).astype(int)
    world.resize(height, width)
    portrait = world.render_rgb(0)
    assert portrait.shape == (width, height, 3)
    assert np.abs(portrait.astype(int) - procedural).mean() > 10


def test_render_is_cheap() -> None:
    world = World(1280, 704)
    world.set_prompt("A cat")
    world.render(0)
    count = 20
    start = time.perf_counter()
    for frame_number in range(1, count + 1):
        world.render(frame_number)
    # Generous bound (the design target is < 2 ms); it catches accidental per-pixel Python work.
    assert (time.perf_counter() - start) / count < 0.02
