"""Tests for odyssey_sync.images: input normalisation, sniffing, cover resize, errors."""

from __future__ import annotations

import base64
import io
import logging
import struct
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from odyssey_sync.images import (
    LANDSCAPE_SIZE,
    MAX_IMAGE_BYTES,
    PORTRAIT_SIZE,
    SUPPORTED_MIME_TYPES,
    centre_crop_box,
    decode_to_rgb,
    image_to_bytes,
    prepare_image,
    sniff_mime,
    target_size,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)

# codec name -> pixel format it is fed with
_STILL_CODECS = {"png": "rgb24", "mjpeg": "yuvj420p", "bmp": "bgr24", "gif": "rgb8", "libwebp": "yuv420p"}
_MIME_OF_CODEC = {
    "png": "image/png",
    "mjpeg": "image/jpeg",
    "bmp": "image/bmp",
    "gif": "image/gif",
    "libwebp": "image/webp",
}


def _has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


def encode(rgb: np.ndarray, codec: str = "png") -> bytes:
    """Encode an (H, W, 3) uint8 array as a still image with a PyAV encoder."""
    if not _has_encoder(codec):
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    pix_fmt = _STILL_CODECS[codec]
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height = rgb.shape[1], rgb.shape[0]
    ctx.pix_fmt = pix_fmt
    ctx.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format=pix_fmt)
    return b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])


def encode_animation(frames: list[np.ndarray], codec: str, fmt: str, pix_fmt: str) -> bytes:
    """Mux several frames into an animated image container."""
    if not _has_encoder(codec) or fmt not in av.formats_available:
        pytest.skip(f"this FFmpeg build cannot write {codec} in {fmt}")
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=5)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def solid(width: int, height: int, colour: tuple[int, int, int]) -> np.ndarray:
    arr = np.empty((height, width, 3), np.uint8)
    arr[:] = colour
    return arr


def gradient(width: int = 400, height: int = 300) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), np.full_like(x, 128)], -1).astype(
        np.uint8
    )


def decode_url(url: str) -> tuple[str, bytes, np.ndarray]:
    """Split a data URL and decode its image to RGB."""
    assert url.startswith("data:")
    header, payload = url.split(",", 1)
    assert header.endswith(";base64")
    mime = header[5:-7]
    data = base64.b64decode(payload, validate=True)
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
    return mime, data, frame.to_ndarray(format="rgb24")


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert a minimal big-endian EXIF APP1 with an Orientation tag after SOI."""
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff += struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


class FakePILImage:
    """Minimal object with PIL's save(fp, format=...) signature."""

    def __init__(self, png: bytes) -> None:
        self.png = png
        self.formats: list[str | None] = []

    def save(self, fp: io.BytesIO, format: str | None = None) -> None:
        self.formats.append(format)
        fp.write(self.png)


def is_colour(pixel: np.ndarray, colour: tuple[int, int, int], tol: int = 40) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(colour)) <= tol))


# --- geometry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [
        ((1280, 704), (1280, 704), (0, 0, 1280, 704)),
        ((2560, 1408), (1280, 704), (0, 0, 2560, 1408)),
        ((4000, 1000), (1280, 704), (1091, 0, 1818, 1000)),
        ((1000, 1000), (1280, 704), (0, 225, 1000, 550)),
        ((1000, 1000), (704, 1280), (225, 0, 550, 1000)),
        ((4000, 3000), (704, 1280), (1175, 0, 1650, 3000)),
        ((1, 1), (1280, 704), (0, 0, 1, 1)),
        ((1, 1000), (1280, 704), (0, 499, 1, 1)),
    ],
)
def test_centre_crop_box_values(
    src: tuple[int, int], dst: tuple[int, int], expected: tuple[int, int, int, int]
) -> None:
    assert centre_crop_box(*src, *dst) == expected


@pytest.mark.parametrize("src", [(4000, 3000), (3000, 4000), (1281, 705), (17, 931), (999, 1)])
@pytest.mark.parametrize("dst", [LANDSCAPE_SIZE, PORTRAIT_SIZE])
def test_centre_crop_box_properties(src: tuple[int, int], dst: tuple[int, int]) -> None:
    x, y, w, h = centre_crop_box(*src, *dst)
    assert 0 <= x and 0 <= y and 1 <= w and 1 <= h
    assert x + w <= src[0] and y + h <= src[1]
    assert w == src[0] or h == src[1]  # the largest box: one side is kept whole
    assert abs((src[0] - w - x) - x) <= 1 and abs((src[1] - h - y) - y) <= 1  # centred
    assert abs(w * dst[1] - h * dst[0]) <= max(dst) / 2  # aspect ratio as close as whole pixels allow


@pytest.mark.parametrize("bad", [(0, 10, 10, 10), (10, -1, 10, 10), (10, 10, 10, 0)])
def test_centre_crop_box_rejects_non_positive(bad: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError, match="positive"):
        centre_crop_box(*bad)


def test_centre_crop_box_rejects_non_int() -> None:
    with pytest.raises(TypeError):
        centre_crop_box(10.0, 10, 10, 10)  # type: ignore[arg-type]


def test_target_size_and_constants() -> None:
    assert target_size(False) == LANDSCAPE_SIZE == (1280, 704)
    assert target_size(True) == PORTRAIT_SIZE == (704, 1280)
    assert MAX_IMAGE_BYTES == 25 * 1024 * 1024
    assert set(SUPPORTED_MIME_TYPES) == {
        "image/jpeg", "image/png", "image/webp", "image/gif",
        "image/bmp", "image/heic", "image/heif", "image/avif",
    }  # fmt: skip
    with pytest.raises(TypeError, match="True or False"):
        target_size("portrait")  # type: ignore[arg-type]


# --- sniffing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"GIF87a\x01\x00", "image/gif"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"BM\x36\x00\x00\x00", "image/bmp"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (ftyp(b"heic", b"mif1", b"heic"), "image/heic"),
        (ftyp(b"heix", b"mif1"), "image/heic"),
        (ftyp(b"hevc", b"msf1"), "image/heic"),
        (ftyp(b"mif1", b"mif1", b"heic"), "image/heic"),
        (ftyp(b"mif1", b"mif1", b"miaf"), "image/heif"),
        (ftyp(b"msf1", b"iso8"), "image/heif"),
        (ftyp(b"heim"), "image/heif"),
        (ftyp(b"avif", b"avif", b"mif1", b"miaf"), "image/avif"),
        (ftyp(b"avis", b"msf1"), "image/avif"),
        (ftyp(b"mif1", b"avif", b"miaf"), "image/avif"),
        (ftyp(b"isom", b"iso2", b"mp41"), None),  # an MP4 video
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"II*\x00\x08\x00\x00\x00", None),  # TIFF
        (b"MM\x00*\x00\x00\x00\x08", None),
        (b"hello, world", None),
        (b"", None),
        (b"\xff\xd8", None),
    ],
)
def test_sniff_mime_magic_numbers(data: bytes, mime: str | None) -> None:
    assert sniff_mime(data) == mime


def test_sniff_mime_ignores_brands_beyond_ftyp_box() -> None:
    data = ftyp(b"isom", b"mp41") + struct.pack(">I", 16) + b"free" + b"heicavif"
    assert sniff_mime(data) is None


@pytest.mark.parametrize("codec", sorted(_STILL_CODECS))
def test_sniff_mime_real_files(codec: str) -> None:
    assert sniff_mime(encode(gradient(64, 48), codec)) == _MIME_OF_CODEC[codec]


# --- accepted inputs -------------------------------------------------------------------------


def _inputs(tmp_path: Path) -> dict[str, object]:
    rgb = gradient(400, 300)
    jpeg = encode(rgb, "mjpeg")
    path = tmp_path / "picture.bin"  # name says nothing: format comes from the bytes
    path.write_bytes(jpeg)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    return {
        "str path": str(path),
        "pathlib.Path": path,
        "bytes": jpeg,
        "bytearray": bytearray(jpeg),
        "memoryview": memoryview(jpeg),
        "data url": data_url("image/jpeg", jpeg),
        "numpy rgb": rgb,
        "numpy rgba": rgba,
        "numpy grey": rgb[:, :, 0].copy(),
        "numpy grey hw1": rgb[:, :, :1].copy(),
        "numpy non-contiguous": rgb[::2, ::2],
        "PIL-style object": FakePILImage(encode(rgb, "png")),
    }


_INPUT_KINDS = [
    "str path", "pathlib.Path", "bytes", "bytearray", "memoryview", "data url",
    "numpy rgb", "numpy rgba", "numpy grey", "numpy grey hw1", "numpy non-contiguous", "PIL-style object",
]  # fmt: skip


@pytest.mark.parametrize("kind", _INPUT_KINDS)
def test_image_to_bytes_accepts(kind: str, tmp_path: Path) -> None:
    image = _inputs(tmp_path)[kind]
    data, mime = image_to_bytes(image)
    assert isinstance(data, bytes) and data
    expected = "image/png" if kind.startswith(("numpy", "PIL")) else "image/jpeg"
    assert mime == expected == sniff_mime(data)
    if isinstance(image, FakePILImage):
        assert image.formats == ["PNG"]


def test_image_to_bytes_numpy_is_lossless() -> None:
    rgb = gradient(33, 17)
    data, _ = image_to_bytes(rgb)
    assert np.array_equal(decode_url(data_url("image/png", data))[2], rgb)
    rgba = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    assert np.array_equal(decode_url(data_url("image/png", image_to_bytes(rgba)[0]))[2], rgb)  # alpha dropped
    grey = rgb[:, :, 1]
    assert np.array_equal(decode_url(data_url("image/png", image_to_bytes(grey)[0]))[2], np.dstack([grey] * 3))


@pytest.mark.parametrize("kind", _INPUT_KINDS)
@pytest.mark.parametrize("portrait", [False, True])
def test_prepare_image_output_size(kind: str, portrait: bool, tmp_path: Path) -> None:
    url = prepare_image(_inputs(tmp_path)[kind], portrait=portrait)
    mime, data, rgb = decode_url(url)
    assert mime == "image/jpeg" and sniff_mime(data) == "image/jpeg"
    width, height = target_size(portrait)
    assert rgb.shape == (height, width, 3)


@pytest.mark.parametrize("codec", sorted(_STILL_CODECS))
def test_prepare_image_each_format(codec: str) -> None:
    url = prepare_image(encode(gradient(320, 240), codec), portrait=False)
    mime, _, rgb = decode_url(url)
    assert mime == "image/jpeg"
    assert rgb.shape == (704, 1280, 3)


def test_prepare_image_avif_if_encodable() -> None:
    for encoder in ("libsvtav1", "libaom-av1", "librav1e"):
        if _has_encoder(encoder):
            break
    else:
        pytest.skip("no AV1 encoder in this FFmpeg build")
    avif = encode_animation([solid(320, 240, RED)], encoder, "avif", "yuv420p")
    assert sniff_mime(avif) == "image/avif"
    mime, _, rgb = decode_url(prepare_image(avif, portrait=True))
    assert mime == "image/jpeg" and rgb.shape == (1280, 704, 3)
    assert is_colour(rgb[640, 352], RED)


def test_centre_crop_keeps_centre_landscape() -> None:
    wide = solid(2000, 400, BLUE)
    wide[:, 800:1200] = RED
    _, _, out = decode_url(prepare_image(encode(wide, "png"), portrait=False))
    assert out.shape == (704, 1280, 3)
    assert all(is_colour(out[y, 640], RED) for y in (0, 352, 703))
    blue = (out[:, :, 2] > 200) & (out[:, :, 0] < 60)
    assert blue.mean() < 0.5


def test_centre_crop_keeps_centre_portrait() -> None:
    tall = solid(300, 3000, BLUE)
    tall[1300:1700, :] = RED
    out = decode_to_rgb(tall, *PORTRAIT_SIZE)
    assert out.shape == (1280, 704, 3)
    assert is_colour(out[640, 0], RED) and is_colour(out[640, 703], RED)
    assert ((out[:, :, 2] > 200) & (out[:, :, 0] < 60)).mean() < 0.5


@pytest.mark.parametrize("codec", ["mjpeg", "png"])
def test_exact_size_jpeg_png_sent_unchanged(codec: str) -> None:
    data = encode(gradient(*LANDSCAPE_SIZE), codec)
    mime = _MIME_OF_CODEC[codec]
    assert prepare_image(data, portrait=False) == data_url(mime, data)
    assert prepare_image(data_url(mime, data), portrait=False) == data_url(mime, data)
    # the same file is resized for the other orientation
    assert decode_url(prepare_image(data, portrait=True))[2].shape == (1280, 704, 3)


def test_exact_size_other_format_is_reencoded() -> None:
    data = encode(solid(*LANDSCAPE_SIZE, RED), "bmp")
    mime, _, rgb = decode_url(prepare_image(data, portrait=False))
    assert mime == "image/jpeg" and rgb.shape == (704, 1280, 3)


def test_jpeg_output_quality() -> None:
    rgb = gradient(*LANDSCAPE_SIZE)
    _, data, out = decode_url(prepare_image(rgb, portrait=False))
    assert len(data) < 500_000
    assert np.abs(out.astype(int) - rgb).mean() < 2.5


def test_animated_gif_uses_first_frame() -> None:
    gif = encode_animation([solid(160, 120, RED), solid(160, 120, BLUE)], "gif", "gif", "rgb8")
    assert sniff_mime(gif) == "image/gif"
    out = decode_to_rgb(gif, 64, 36)
    assert is_colour(out[18, 32], RED)


def test_animated_webp_undecodable_is_passed_through(caplog: pytest.LogCaptureFixture) -> None:
    webp = encode_animation([solid(160, 120, RED), solid(160, 120, BLUE)], "libwebp_anim", "webp", "yuv420p")
    assert sniff_mime(webp) == "image/webp"
    with caplog.at_level(logging.WARNING, logger="odyssey_sync.images"):
        url = prepare_image(webp, portrait=False)
    if url.startswith("data:image/jpeg"):
        pytest.skip("this FFmpeg decodes animated WebP; nothing to pass through")
    assert url == data_url("image/webp", webp)
    assert any(r.name == "odyssey_sync.images" and r.levelno == logging.WARNING for r in caplog.records)


def test_undecodable_heic_is_passed_through(caplog: pytest.LogCaptureFixture) -> None:
    heic = ftyp(b"heic", b"mif1", b"heic") + struct.pack(">I", 24) + b"meta" + bytes(16) + b"\x00" * 200
    with caplog.at_level(logging.WARNING, logger="odyssey_sync.images"):
        url = prepare_image(heic, portrait=True)
    assert url == data_url("image/heic", heic)
    assert any("image/heic" in r.getMessage() for r in caplog.records if r.name == "odyssey_sync.images")
    with pytest.raises(ValueError, match="Convert it to JPEG or PNG"):
        decode_to_rgb(heic, 64, 64)


# EXIF orientation -> display corner of the stored top-left (red) and top-right (green) quadrants
_ORIENTATION_CORNERS = {
    1: ("TL", "TR"), 2: ("TR", "TL"), 3: ("BR", "BL"), 4: ("BL", "BR"),
    5: ("TL", "BL"), 6: ("TR", "BR"), 7: ("BR", "TR"), 8: ("BL", "TL"),
}  # fmt: skip


@pytest.mark.parametrize("orientation", sorted(_ORIENTATION_CORNERS))
def test_jpeg_exif_orientation_applied(orientation: int) -> None:
    stored = solid(200, 100, (255, 255, 255))
    stored[:50, :100] = RED
    stored[:50, 100:] = (0, 255, 0)
    stored[50:, :100] = BLUE
    jpeg = with_exif_orientation(encode(stored, "mjpeg"), orientation)
    width, height = (100, 200) if orientation >= 5 else (200, 100)
    out = decode_to_rgb(jpeg, width, height)
    assert out.shape == (height, width, 3)
    quadrant = {
        "TL": out[height // 4, width // 4], "TR": out[height // 4, 3 * width // 4],
        "BL": out[3 * height // 4, width // 4], "BR": out[3 * height // 4, 3 * width // 4],
    }  # fmt: skip
    red_corner, green_corner = _ORIENTATION_CORNERS[orientation]
    assert is_colour(quadrant[red_corner], RED)
    assert is_colour(quadrant[green_corner], (0, 255, 0))


def test_exact_size_jpeg_with_rotation_is_not_sent_unchanged() -> None:
    jpeg = with_exif_orientation(encode(gradient(*LANDSCAPE_SIZE), "mjpeg"), 6)
    url = prepare_image(jpeg, portrait=True)
    assert url != data_url("image/jpeg", jpeg)
    assert decode_url(url)[2].shape == (1280, 704, 3)


def test_jpeg_with_trailing_data_is_accepted() -> None:
    jpeg = encode(gradient(), "mjpeg")
    trailer = np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    assert decode_url(prepare_image(jpeg + trailer, portrait=False))[2].shape == (704, 1280, 3)


# --- decode_to_rgb ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", _INPUT_KINDS)
def test_decode_to_rgb_shape(kind: str, tmp_path: Path) -> None:
    out = decode_to_rgb(_inputs(tmp_path)[kind], 160, 90)
    assert out.shape == (90, 160, 3) and out.dtype == np.uint8


def test_decode_to_rgb_colours() -> None:
    out = decode_to_rgb(data_url("image/png", encode(solid(50, 70, (10, 200, 30)), "png")), 1280, 704)
    assert out.shape == (704, 1280, 3)
    assert np.abs(out.astype(int) - (10, 200, 30)).max() <= 2


def test_decode_to_rgb_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        decode_to_rgb(gradient(), 0, 10)
    with pytest.raises(TypeError):
        decode_to_rgb(gradient(), 10.5, 10)  # type: ignore[arg-type]


# --- rejections ------------------------------------------------------------------------------


def test_too_large_rejected_before_decode(tmp_path: Path) -> None:
    big = b"\xff\xd8\xff" + bytes(MAX_IMAGE_BYTES + 1 - 3)
    path = tmp_path / "big.jpg"
    path.write_bytes(big)
    for image in (big, path, data_url("image/jpeg", big)):
        start = time.perf_counter()
        with pytest.raises(ValueError, match="the limit is 25 MB") as info:
            prepare_image(image, portrait=False)
        assert time.perf_counter() - start < 2
        assert "Downscale or re-encode" in str(info.value)


def test_size_limit_is_inclusive() -> None:
    data, mime = image_to_bytes(b"\xff\xd8\xff" + bytes(MAX_IMAGE_BYTES - 3))
    assert len(data) == MAX_IMAGE_BYTES and mime == "image/jpeg"


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"II*\x00\x08\x00\x00\x00" + bytes(100), "TIFF"),
        (b"just some text, not an image", "text"),
        (b"%PDF-1.7\n", "PDF"),
        (b"\x00\x01\x02\x03", "not recognised"),
    ],
)
def test_unsupported_format_rejected(data: bytes, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase) as info:
        prepare_image(data, portrait=False)
    assert "Convert it to JPEG or PNG" in str(info.value)


def test_empty_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        image_to_bytes(b"")


@pytest.mark.parametrize("codec", ["mjpeg", "png"])
def test_truncated_image_rejected(codec: str) -> None:
    data = encode(gradient(), codec)
    for cut in (len(data) // 2, len(data) - 2, 40):
        with pytest.raises(ValueError, match="could not be decoded") as info:
            prepare_image(data[:cut], portrait=False)
        assert "re-save it" in str(info.value)
        with pytest.raises(ValueError, match="could not be decoded"):
            decode_to_rgb(data[:cut], 16, 16)


def test_garbage_with_image_magic_rejected() -> None:
    with pytest.raises(ValueError, match="could not be decoded"):
        prepare_image(b"BMW is a car maker, not a bitmap." * 10, portrait=False)


def test_missing_path_rejected(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_image.jpg"
    for image in (missing, str(missing)):
        with pytest.raises(ValueError, match="no_such_image.jpg") as info:
            prepare_image(image, portrait=False)
        assert "not found" in str(info.value) and "Check the path" in str(info.value)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [("", "empty string"), ("   ", "empty string"), ("https://example.com/cat.jpg", "not downloaded")],
)
def test_unusable_strings_rejected(text: str, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        prepare_image(text, portrait=False)


def test_directory_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="directory"):
        image_to_bytes(tmp_path)


@pytest.mark.parametrize("bad", [42, None, [1, 2, 3], 3.5, {"image": b""}, object()])
def test_wrong_types_rejected(bad: object) -> None:
    with pytest.raises(TypeError, match="Pass a file path") as info:
        prepare_image(bad, portrait=False)
    assert "bytes" in str(info.value) and "numpy" in str(info.value)
    with pytest.raises(TypeError):
        decode_to_rgb(bad, 10, 10)


def test_portrait_must_be_bool() -> None:
    with pytest.raises(TypeError, match="portrait"):
        prepare_image(gradient(), portrait="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64",  # no comma
        "data:image/png,rawbytes",  # not base64
        "data:image/png;base64,@@@@not*base64",
        "data:image/png;base64,iVBORw0KGgo=é",
    ],
)
def test_malformed_data_url_rejected(url: str) -> None:
    with pytest.raises(ValueError, match="data URL|Data URL") as info:
        prepare_image(url, portrait=False)
    assert "base64" in str(info.value)


def test_data_url_with_whitespace_and_missing_padding() -> None:
    png = encode(gradient(31, 17), "png")
    payload = base64.b64encode(png).decode().rstrip("=")
    wrapped = "\n".join(payload[i : i + 76] for i in range(0, len(payload), 76))
    assert image_to_bytes("data:image/png;base64," + wrapped) == (png, "image/png")


def test_data_url_mime_is_sniffed_not_trusted() -> None:
    png = encode(gradient(31, 17), "png")
    assert image_to_bytes(data_url("image/jpeg", png))[1] == "image/png"


@pytest.mark.parametrize(
    ("array", "phrase"),
    [
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((10, 10, 3), np.int64), "uint8"),
        (np.zeros((10, 10, 2), np.uint8), r"\(height, width, 3\)"),
        (np.zeros((3, 10, 10), np.uint8), "channels-last"),
        (np.zeros((10,), np.uint8), "shape"),
        (np.zeros((0, 10, 3), np.uint8), "no pixels"),
    ],
)
def test_bad_arrays_rejected(array: np.ndarray, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        prepare_image(array, portrait=False)
    with pytest.raises(ValueError, match=phrase):
        image_to_bytes(array)
    with pytest.raises(ValueError, match=phrase):
        decode_to_rgb(array, 8, 8)


def test_float_array_message_says_how_to_convert() -> None:
    with pytest.raises(ValueError, match=r"astype\(np.uint8\)"):
        prepare_image(np.zeros((4, 4, 3)), portrait=True)


def test_failing_save_object_rejected() -> None:
    class Broken:
        def save(self, fp: io.BytesIO, format: str | None = None) -> None:
            raise OSError("cannot write mode CMYK as PNG")

    with pytest.raises(ValueError, match="convert"):
        prepare_image(Broken(), portrait=False)


def test_real_pil_image_if_installed() -> None:
    pil_image = pytest.importorskip("PIL.Image")
    img = pil_image.new("RGB", (300, 200), RED)
    _, _, out = decode_url(prepare_image(img, portrait=False))
    assert out.shape == (704, 1280, 3) and is_colour(out[352, 640], RED)
