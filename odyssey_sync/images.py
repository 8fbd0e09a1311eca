"""Image input handling for image-to-video streams.

``client.start_stream(prompt, image=...)`` sends the start image as a
``data:<mime>;base64,...`` URL inside a JSON message. The hosted API accepts
JPEG, PNG, WebP, GIF, BMP, HEIC, HEIF and AVIF up to 25 MB and works on
1280x704 (landscape) or 704x1280 (portrait) frames. This module validates an
image locally, before any network I/O, and centre-crops ("cover") and resizes
it to the target frame with PyAV so that what the model sees is predictable
and the upload is small.

Every error is a :class:`TypeError` (wrong kind of object) or a
:class:`ValueError` (unusable value) whose message says what is wrong and
what to do about it.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Callable, Literal

import av
import numpy as np

__all__ = [
    "LANDSCAPE_SIZE",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "PORTRAIT_SIZE",
    "SUPPORTED_MIME_TYPES",
    "TooManyPixelsError",
    "centre_crop_box",
    "check_image",
    "decode_to_rgb",
    "image_dimensions",
    "image_to_bytes",
    "prepare_image",
    "sniff_mime",
    "target_size",
]

logger = logging.getLogger("odyssey_sync.images")

MAX_IMAGE_BYTES: int = 25 * 1024 * 1024
"""Largest accepted image, in bytes, measured on the encoded input."""

MAX_IMAGE_PIXELS: int = 50_000_000
"""Most pixels (width x height) an image may have to be decoded: a 48-megapixel camera photo fits.

Checked from the file's header before anything is decoded, so a small file
that would inflate to gigabytes (a decompression bomb) is refused cheaply.
"""

SUPPORTED_MIME_TYPES: tuple[str, ...] = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/bmp",
    "image/heic",
    "image/heif",
    "image/avif",
)
"""MIME types the hosted API accepts, as detected by :func:`sniff_mime`."""

LANDSCAPE_SIZE: tuple[int, int] = (1280, 704)
"""(width, height) of a landscape stream."""

PORTRAIT_SIZE: tuple[int, int] = (704, 1280)
"""(width, height) of a portrait stream."""

class TooManyPixelsError(ValueError):
    """An image whose header gives more than :data:`MAX_IMAGE_PIXELS` pixels; it is refused undecoded."""


_ACCEPTED_TYPES_HINT = (
    "Pass a file path (str or os.PathLike), the encoded file contents "
    "(bytes, bytearray or memoryview), a 'data:image/...;base64,...' URL, "
    "a numpy uint8 array of shape (height, width, 3), or a PIL.Image"
)
_FORMATS_HINT = "JPEG, PNG, WebP, GIF, BMP, HEIC, HEIF or AVIF"

# Lossy re-encode settings: FFmpeg's mjpeg encoder at qscale 2 produces
# quantisation tables close to libjpeg quality ~90.
_JPEG_QSCALE = 2
_FF_QP2LAMBDA = 118
_RESIZE_INTERPOLATION = "LANCZOS"
# Favour speed when encoding numpy/PIL input to PNG (level 9 is ~6x slower).
_PNG_COMPRESSION_LEVEL = 3

# Demuxer per sniffed MIME type, so probing never guesses a non-image format.
_DEMUXERS: dict[str, str] = {
    "image/jpeg": "jpeg_pipe",
    "image/png": "png_pipe",
    "image/gif": "gif",
    "image/bmp": "bmp_pipe",
    "image/webp": "webp_pipe",
    "image/heic": "mov",
    "image/heif": "mov",
    "image/avif": "mov",
}
_ISOBMFF_MIME_TYPES = frozenset({"image/heic", "image/heif", "image/avif"})

_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"heim", b"heis"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})

# In JPEG entropy-coded data 0xFF is followed by 0x00 (stuffing) or an RST
# marker; anything else starts a real marker. Extra 0xFF bytes are fill.
_JPEG_MARKER_RE = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_STANDALONE_MARKERS = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})


def target_size(portrait: bool) -> tuple[int, int]:
    """Return the (width, height) the API works at: 704x1280 if ``portrait``, else 1280x704."""
    if not isinstance(portrait, (bool, np.bool_)):
        raise TypeError(
            f"portrait must be True or False, not {type(portrait).__name__}; "
            "pass portrait=True for a 704x1280 stream or portrait=False for 1280x704."
        )
    return PORTRAIT_SIZE if portrait else LANDSCAPE_SIZE


def centre_crop_box(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[int, int, int, int]:
    """Return the centred ``(x, y, w, h)`` region of a ``src_w`` x ``src_h`` image
    with the aspect ratio of ``dst_w`` x ``dst_h``.

    This is the largest such region ("cover" semantics): scaling it to the
    destination size fills the destination exactly, cutting off equal amounts
    from both sides of the dimension that is too long.
    """
    src_w, src_h = _pixel_count("src_w", src_w), _pixel_count("src_h", src_h)
    dst_w, dst_h = _pixel_count("dst_w", dst_w), _pixel_count("dst_h", dst_h)
    if src_w * dst_h > src_h * dst_w:
        # Source is wider than the destination: keep full height, trim the sides.
        h = src_h
        w = min(src_w, max(1, (src_h * dst_w + dst_h // 2) // dst_h))
    else:
        w = src_w
        h = min(src_h, max(1, (src_w * dst_h + dst_w // 2) // dst_w))
    return (src_w - w) // 2, (src_h - h) // 2, w, h


def sniff_mime(data: bytes) -> str | None:
    """Return the MIME type of encoded image ``data`` from its magic numbers.

    Only the formats in :data:`SUPPORTED_MIME_TYPES` are recognised; anything
    else (including empty data) gives ``None``. File names are never consulted.
    """
    head = bytes(data[:4096])
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"BM"):
        return "image/bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return _sniff_isobmff(head)
    return None


def _sniff_isobmff(head: bytes) -> str | None:
    """Classify an ISO-BMFF ``ftyp`` box by its major, then compatible, brands."""
    box_size = int.from_bytes(head[0:4], "big")
    end = len(head) if box_size < 16 else min(box_size, len(head))
    major = head[8:12]
    compatible = [head[i : i + 4] for i in range(16, end - 3, 4)]

    def specific(brand: bytes) -> str | None:
        if brand in _HEIC_BRANDS:
            return "image/heic"
        if brand in _AVIF_BRANDS:
            return "image/avif"
        return None

    # A generic HEIF major brand (mif1) is often paired with a compatible
    # brand naming the codec, so prefer a codec-specific brand if present.
    for brand in (major, *compatible):
        found = specific(brand)
        if found is not None:
            return found
    if major in _HEIF_BRANDS or any(b in _HEIF_BRANDS for b in compatible):
        return "image/heif"
    return None


def image_to_bytes(image: object) -> tuple[bytes, str]:
    """Normalise any accepted image input to ``(encoded bytes, mime type)``.

    Accepted inputs:

    * a file path (``str`` or :class:`os.PathLike`);
    * encoded file contents as ``bytes``, ``bytearray`` or ``memoryview``;
    * a ``data:<mime>;base64,...`` URL string;
    * a numpy ``uint8`` array of shape (H, W, 3) RGB, (H, W, 4) RGBA (alpha is
      dropped) or (H, W) greyscale, encoded losslessly as PNG;
    * any object with a PIL-style ``save(fp, format=...)`` method, saved as PNG.

    The format is sniffed from the bytes (never from a file name) and must be
    one of :data:`SUPPORTED_MIME_TYPES`; the bytes must be non-empty and at
    most :data:`MAX_IMAGE_BYTES`. Nothing is decoded here.

    Raises:
        TypeError: ``image`` is not one of the accepted types.
        ValueError: the path, data URL, array or bytes cannot be used.
    """
    if isinstance(image, str):
        text = image.strip()
        if text[:5].lower() == "data:":
            data = _decode_data_url(text)
        elif text[:8].lower().startswith(("http://", "https://")):
            raise ValueError(
                f"Image URLs are not downloaded ({_short(text)}). Fetch the image yourself and pass "
                "its bytes or a local file path."
            )
        elif not text:
            raise ValueError("Image path is an empty string. Pass the path of an image file, its bytes, or a data URL.")
        else:
            data = _read_path(image)
    elif isinstance(image, os.PathLike):
        data = _read_path(image)
    elif isinstance(image, (bytes, bytearray)):
        data = bytes(image)
    elif isinstance(image, memoryview):
        data = image.tobytes()
    elif isinstance(image, np.ndarray):
        data = _encode_png(_array_to_rgb(image))
    elif callable(getattr(image, "save", None)):
        data = _save_as_png(image)
    else:
        raise TypeError(f"Unsupported image type {type(image).__name__}. {_ACCEPTED_TYPES_HINT}.")
    return data, _check_bytes(data)


def prepare_image(image: object, *, portrait: bool) -> str:
    """Return ``image`` as the data URL to send to the API.

    The image (any input accepted by :func:`image_to_bytes`) is decoded with
    PyAV (first frame of an animation, JPEG EXIF orientation applied),
    centre-cropped to the aspect ratio of :func:`target_size` and resized to
    exactly that size, then re-encoded as JPEG (quality ~90):
    ``"data:image/jpeg;base64,..."``.

    A JPEG or PNG that already has exactly the target size (and no EXIF
    rotation) is sent unchanged with its own MIME type. A supported format
    that this PyAV/FFmpeg build cannot decode (typically HEIC) is sent
    unchanged as well, with a warning logged on ``odyssey_sync.images``; the
    hosted service resizes it.

    Raises:
        TypeError: ``image`` or ``portrait`` has the wrong type.
        ValueError: the image is too large, not a supported format, or corrupt.
    """
    width, height = target_size(portrait)
    if isinstance(image, np.ndarray):
        # The array already holds the pixels; skip the PNG round trip.
        frame = _cover_resize(_array_to_rgb(image), width, height, "yuvj420p")
        return _data_url("image/jpeg", _encode_jpeg(frame))

    data, mime = image_to_bytes(image)
    decoded = _decode_first_frame(data, mime)
    if decoded is None:
        logger.warning(
            "This PyAV/FFmpeg build cannot decode this %s image; sending the original "
            "%d bytes unresized (the service resizes it). Convert it to JPEG or PNG "
            "to control the crop locally.",
            mime,
            len(data),
        )
        return _data_url(mime, data)

    orientation = _jpeg_orientation(data) if mime == "image/jpeg" else 1
    if mime in ("image/jpeg", "image/png") and orientation == 1 and (decoded.width, decoded.height) == (width, height):
        return _data_url(mime, data)
    rgb = _apply_orientation(_frame_to_rgb(decoded), orientation)
    return _data_url("image/jpeg", _encode_jpeg(_cover_resize(rgb, width, height, "yuvj420p")))


def decode_to_rgb(image: object, width: int, height: int) -> np.ndarray:
    """Decode ``image`` to a ``(height, width, 3)`` uint8 RGB array.

    Accepts every input :func:`image_to_bytes` accepts (a data URL included).
    The image is centre-cropped to the aspect ratio of ``width`` x ``height``
    and resized to exactly that size, as :func:`prepare_image` does.

    Raises:
        TypeError: ``image``, ``width`` or ``height`` has the wrong type.
        ValueError: the image is invalid or cannot be decoded by this PyAV build.
    """
    width, height = _pixel_count("width", width), _pixel_count("height", height)

    if isinstance(image, np.ndarray):
        rgb = _array_to_rgb(image)
    else:
        data, mime = image_to_bytes(image)
        frame = _decode_first_frame(data, mime)
        if frame is None:
            raise ValueError(
                f"This {mime} image cannot be decoded by the installed PyAV/FFmpeg build. "
                "Convert it to JPEG or PNG and try again."
            )
        orientation = _jpeg_orientation(data) if mime == "image/jpeg" else 1
        rgb = _apply_orientation(_frame_to_rgb(frame), orientation)
    return _cover_resize(rgb, width, height, "rgb24").to_ndarray(format="rgb24")


def check_image(image: object) -> tuple[int, int] | None:
    """Check ``image`` as a start image without decoding its pixels; its ``(width, height)``.

    Applies what :func:`decode_to_rgb` would check first (type, 25 MB, format,
    header, :data:`MAX_IMAGE_PIXELS`), cheaply enough for a server to run on
    every submitted image. ``None``: a HEIC/HEIF/AVIF file without a readable
    size, which is left for the decoder to refuse.

    Raises:
        TypeError: ``image`` is not an accepted type.
        TooManyPixelsError: the header gives more than :data:`MAX_IMAGE_PIXELS` pixels.
        ValueError: the image is too large, not a supported format, or its header is unusable.
    """
    data, mime = image_to_bytes(image)
    if mime == "image/jpeg" and not _jpeg_is_complete(data):
        raise _corrupt(mime, "it is truncated (the end-of-image marker is missing)")
    size = image_dimensions(data, mime)
    if size is None:
        if mime in _ISOBMFF_MIME_TYPES:
            return None
        raise _corrupt(mime, "its header does not give the picture's width and height")
    if size[0] <= 0 or size[1] <= 0:
        raise _corrupt(mime, f"its header gives a size of {size[0]}x{size[1]}")
    _check_pixels(*size)
    return size


def _pixel_count(name: str, value: object) -> int:
    """Validate a width or height argument and return it as an int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}; pass a whole number of pixels.")
    if value <= 0:
        raise ValueError(f"{name} must be a positive pixel count, got {value}; pass a size of at least 1.")
    return int(value)


def _check_bytes(data: bytes) -> str:
    """Apply the size limit and format check to encoded bytes; return the MIME type."""
    size = len(data)
    if size == 0:
        raise ValueError("Image is empty (0 bytes). Check that the file or buffer holds a saved image and try again.")
    if size > MAX_IMAGE_BYTES:
        raise _too_large(size)
    mime = sniff_mime(data)
    if mime is None:
        raise ValueError(
            f"Image format not recognised{_unsupported_hint(data)}; supported formats are "
            f"{_FORMATS_HINT}. Convert it to JPEG or PNG and try again."
        )
    return mime


def _too_large(size: int) -> ValueError:
    """The error for an image of ``size`` bytes, over :data:`MAX_IMAGE_BYTES`."""
    return ValueError(
        f"Image is {size / (1024 * 1024):.1f} MB ({size:,} bytes); the limit is 25 MB "
        f"({MAX_IMAGE_BYTES:,} bytes). Downscale or re-encode it (JPEG quality 90 is "
        "usually < 2 MB) and try again."
    )


def _unsupported_hint(data: bytes) -> str:
    """Name a well-known unsupported format, or say the data looks like text."""
    head = data[:64]
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return " (it looks like TIFF)"
    if head.startswith(b"%PDF"):
        return " (it looks like a PDF document)"
    if head.lstrip().startswith(b"<"):
        return " (it looks like SVG/XML or HTML text)"
    if all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return " (the data looks like text, not an image file's contents)"
    return ""


def _short(value: object, limit: int = 120) -> str:
    """repr() of ``value`` shortened for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_path(path: str | os.PathLike[str] | os.PathLike[bytes]) -> bytes:
    """Read an image file, checking existence and size before reading."""
    p = Path(os.fsdecode(path))
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ValueError(
            f"Image file not found: {_short(str(p))}. Check the path; to pass image data "
            "instead, use bytes or a 'data:image/...;base64,...' URL."
        ) from None
    except OSError as exc:
        raise ValueError(
            f"Image path {_short(str(p))} cannot be accessed ({exc.strerror or exc}). "
            "Check the path; to pass image data instead, use bytes or a "
            "'data:image/...;base64,...' URL."
        ) from exc
    if p.is_dir():
        raise ValueError(f"Image path {_short(str(p))} is a directory. Pass the path of an image file inside it.")
    if st.st_size > MAX_IMAGE_BYTES:
        raise _too_large(st.st_size)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise ValueError(
            f"Image file {_short(str(p))} could not be read ({exc.strerror or exc}). "
            "Check its permissions and try again."
        ) from exc


def _decode_data_url(url: str) -> bytes:
    """Decode a ``data:[<mime>][;...];base64,<payload>`` URL to bytes.

    The payload may be tens of megabytes: it is encoded once and decoded
    once, without the intermediate copies a partition and a strip would make.
    """
    comma = url.find(",")
    if comma < 0:
        raise ValueError(
            "Malformed data URL: there is no ',' after the 'data:...' header. "
            "Use the form 'data:image/jpeg;base64,<base64 data>'."
        )
    header = url[:comma]
    params = header[5:].split(";")
    if params[-1].strip().lower() != "base64":
        raise ValueError(
            f"Data URL header {_short(header + ',')} is not base64-encoded. "
            "Use the form 'data:image/jpeg;base64,<base64 data>'."
        )
    try:
        encoded = url.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(
            "Malformed data URL: the payload contains non-ASCII characters, so it is not base64. "
            "Encode the image bytes with base64.b64encode and try again."
        ) from None
    raw: bytes | memoryview = memoryview(encoded)[comma + 1 :]
    if any(encoded.find(space, comma + 1) >= 0 for space in (b" ", b"\t", b"\r", b"\n")):
        raw = bytes(raw).translate(None, b" \t\r\n")
    if len(raw) % 4:
        raw = bytes(raw) + b"=" * (-len(raw) % 4)
    decoded_size = len(raw) // 4 * 3 - bytes(raw[-2:]).count(b"=")
    if decoded_size > MAX_IMAGE_BYTES:
        raise _too_large(decoded_size)
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error as exc:
        raise ValueError(
            f"Malformed data URL: the payload is not valid base64 ({exc}). "
            "Encode the image bytes with base64.b64encode and try again."
        ) from None


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    """Validate a numpy image and return it as a C-contiguous (H, W, 3) uint8 RGB array."""
    expected = (
        "expected a uint8 array of shape (height, width, 3) RGB, (height, width, 4) RGBA "
        "or (height, width) greyscale"
    )
    if array.dtype != np.uint8:
        advice = (
            " Convert it first, e.g. (np.clip(a, 0, 1) * 255).round().astype(np.uint8) for floats in [0, 1]."
            if np.issubdtype(array.dtype, np.floating)
            else " Convert it first, e.g. a.astype(np.uint8) if its values are in 0..255."
        )
        raise ValueError(f"Image array has dtype {array.dtype}; {expected}.{advice}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        rgb = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] in (3, 4):
        rgb = array[:, :, :3]
    else:
        channels_first = array.ndim == 3 and array.shape[0] in (1, 3, 4)
        advice = " Pass it channels-last, e.g. a.transpose(1, 2, 0)." if channels_first else ""
        raise ValueError(f"Image array has shape {array.shape}; {expected}.{advice}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"Image array has shape {array.shape}, which holds no pixels; pass an image of at least 1x1.")
    return np.ascontiguousarray(rgb)


def _encode_png(rgb: np.ndarray) -> bytes:
    """Encode an (H, W, 3) uint8 RGB array as PNG with PyAV."""
    codec = av.CodecContext.create("png", "w")
    codec.width = rgb.shape[1]
    codec.height = rgb.shape[0]
    codec.pix_fmt = "rgb24"
    codec.time_base = Fraction(1, 1)
    codec.options = {"compression_level": str(_PNG_COMPRESSION_LEVEL)}
    return _encode_one(codec, av.VideoFrame.from_ndarray(rgb, format="rgb24"))


def _encode_jpeg(frame: av.VideoFrame) -> bytes:
    """Encode a yuvj420p frame as a baseline JPEG of quality ~90."""
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width = frame.width
    codec.height = frame.height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 1)
    codec.qscale = True
    codec.global_quality = _JPEG_QSCALE * _FF_QP2LAMBDA
    return _encode_one(codec, frame)


def _encode_one(codec: av.VideoCodecContext, frame: av.VideoFrame) -> bytes:
    """Encode a single frame with ``codec`` and return the concatenated packets."""
    packets = [*codec.encode(frame), *codec.encode(None)]
    return b"".join(bytes(packet) for packet in packets)


def _save_as_png(image: object) -> bytes:
    """Save a PIL-style image object to PNG bytes via its ``save(fp, format=...)``."""
    buffer = io.BytesIO()
    try:
        image.save(buffer, format="PNG")  # type: ignore[attr-defined]  # a PIL-style object, known only by its save()
    except Exception as exc:
        raise ValueError(
            f"Could not save the {type(image).__name__} object as PNG ({type(exc).__name__}: {exc}). "
            "Convert it to RGB first (e.g. image.convert('RGB')) or pass the image as a file path or bytes."
        ) from exc
    return buffer.getvalue()


def _decode_first_frame(data: bytes, mime: str) -> av.VideoFrame | None:
    """Decode the first frame of validated image bytes.

    Returns ``None`` when the data is a supported format that this FFmpeg
    build cannot decode (so the caller may pass it through), and raises
    :class:`ValueError` when the data is corrupt.
    """
    # Opening the container already decodes (FFmpeg probes the stream), so the size is checked first.
    if check_image(data) is None:
        return None  # HEIC/HEIF/AVIF without an 'ispe' size: treated as undecodable, never opened
    try:
        with av.open(io.BytesIO(data), mode="r", format=_DEMUXERS[mime]) as container:
            streams = container.streams.video
            if mime in _ISOBMFF_MIME_TYPES and len(streams) != 1:
                # Tiled HEIC/AVIF (one stream per tile), alpha or thumbnail
                # items: FFmpeg's first stream is not the whole picture.
                return None
            frame: av.VideoFrame | None = next(container.decode(streams[0]), None) if streams else None
    except Exception as exc:
        error: Exception = exc
    else:
        if frame is not None:
            return frame
        error = EOFError("it contains no picture")
    if mime in _ISOBMFF_MIME_TYPES or (mime == "image/webp" and _webp_is_animated(data)):
        return None
    if isinstance(error, (av.error.PatchWelcomeError, av.error.DecoderNotFoundError, NotImplementedError)):
        # A valid file using a feature FFmpeg lacks, e.g. arithmetic-coded JPEG.
        return None
    reason = error.strerror if isinstance(error, av.FFmpegError) and error.strerror else str(error)
    raise _corrupt(mime, reason[:1].lower() + reason[1:]) from error


def image_dimensions(data: bytes, mime: str) -> tuple[int, int] | None:
    """``(width, height)`` of encoded image ``data`` read from its header, without decoding; ``None`` if unreadable.

    ``mime`` is what :func:`sniff_mime` found. JPEG: the first frame header
    (SOFn); PNG: IHDR; GIF: the logical screen; BMP: the info header; WebP:
    the VP8/VP8L/VP8X header; HEIC/HEIF/AVIF: the largest ``ispe`` property.
    """
    try:
        if mime == "image/png":
            return (_be(data, 16, 4), _be(data, 20, 4)) if data[12:16] == b"IHDR" else None
        if mime == "image/jpeg":
            return _jpeg_dimensions(data)
        if mime == "image/gif":
            return _le(data, 6, 2), _le(data, 8, 2)
        if mime == "image/bmp":
            header = _le(data, 14, 4)
            if header == 12:  # BITMAPCOREHEADER: 16-bit sizes
                return _le(data, 18, 2), _le(data, 20, 2)
            if header not in _BMP_INFO_HEADER_SIZES:
                return None
            return abs(_le(data, 18, 4, signed=True)), abs(_le(data, 22, 4, signed=True))
        if mime == "image/webp":
            return _webp_dimensions(data)
        if mime in _ISOBMFF_MIME_TYPES:
            return _ispe_dimensions(data)
    except IndexError:
        return None
    return None


def _be(data: bytes, at: int, size: int) -> int:
    if at + size > len(data):
        raise IndexError(at)
    return int.from_bytes(data[at : at + size], "big")


def _le(data: bytes, at: int, size: int, *, signed: bool = False) -> int:
    if at + size > len(data):
        raise IndexError(at)
    return int.from_bytes(data[at : at + size], "little", signed=signed)


# BITMAPINFOHEADER and its successors (and OS/2's), by their size field.
_BMP_INFO_HEADER_SIZES = frozenset({16, 40, 52, 56, 64, 108, 124})

# Start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic).
_JPEG_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height from the first SOFn segment, walking segments up to the first scan."""
    pos, end = 2, len(data)
    while pos < end:
        if data[pos] != 0xFF:
            return None
        while pos < end and data[pos] == 0xFF:
            pos += 1
        if pos >= end:
            return None
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE_MARKERS:
            continue
        if marker == 0xDA or marker == 0xD9:
            return None  # a scan (or the end) before any frame header
        length = _be(data, pos, 2)
        if marker in _JPEG_SOF_MARKERS:
            height, width = _be(data, pos + 3, 2), _be(data, pos + 5, 2)
            return (width, height) if height else None  # height 0 (set later by DNL) is not supported
        pos += length
    return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X":
        return _le(data, 24, 3) + 1, _le(data, 27, 3) + 1
    if kind == b"VP8L":
        if data[20] != 0x2F:
            return None
        bits = _le(data, 21, 4)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        return _le(data, 26, 2) & 0x3FFF, _le(data, 28, 2) & 0x3FFF
    return None


def _ispe_dimensions(data: bytes) -> tuple[int, int] | None:
    """The largest image spatial extent (``ispe``) property of a HEIF/AVIF file, if any."""
    best: tuple[int, int] | None = None
    at = data.find(b"ispe")
    while at >= 4:
        width, height = _be(data, at + 8, 4), _be(data, at + 12, 4)
        if best is None or width * height > best[0] * best[1]:
            best = (width, height)
        at = data.find(b"ispe", at + 4)
    return best


def _check_pixels(width: int, height: int) -> None:
    """Refuse a picture of more than :data:`MAX_IMAGE_PIXELS` before it is decoded."""
    if width * height > MAX_IMAGE_PIXELS:
        raise TooManyPixelsError(
            f"The image is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); the limit is "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels. Downscale it (it is resized to 1280x704 or 704x1280 "
            "anyway) and try again."
        )


def _corrupt(mime: str, reason: str) -> ValueError:
    """The error for image bytes of a recognised format that cannot be decoded."""
    kind = mime.split("/", 1)[1].upper()
    return ValueError(
        f"The {kind} image could not be decoded: {reason}. The file is probably corrupt or "
        "incomplete; re-save it (or re-export it from the original) and try again."
    )


def _webp_is_animated(data: bytes) -> bool:
    """Whether a WebP has the VP8X animation flag (FFmpeg cannot decode animated WebP)."""
    return data[12:16] == b"VP8X" and len(data) > 20 and bool(data[20] & 0x02)


def _jpeg_segments(data: bytes) -> tuple[bool, bytes | None]:
    """Walk the JPEG marker structure of the first image in ``data``.

    Returns whether an end-of-image marker was reached (trailing data after
    it, such as a motion-photo video, is ignored) and the payload of the
    first ``Exif`` APP1 segment, if any.
    """
    exif: bytes | None = None
    pos, end = 2, len(data)
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0:
            return False, exif
        while pos < end and data[pos] == 0xFF:
            pos += 1
        if pos >= end:
            return False, exif
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            return True, exif
        if marker in _JPEG_STANDALONE_MARKERS or marker == 0x00:
            continue
        if pos + 2 > end:
            return False, exif
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > end:
            return False, exif
        if marker == 0xE1 and exif is None and data[pos + 2 : pos + 8] == b"Exif\x00\x00":
            exif = data[pos + 8 : pos + length]
        pos += length
        if marker == 0xDA:
            match = _JPEG_MARKER_RE.search(data, pos)
            if match is None:
                return False, exif
            pos = match.start()


def _jpeg_is_complete(data: bytes) -> bool:
    """Whether the first JPEG image in ``data`` ends with an end-of-image marker."""
    return _jpeg_segments(data)[0]


def _jpeg_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) of a JPEG; 1 if absent or unreadable."""
    tiff = _jpeg_segments(data)[1]
    if not tiff or tiff[:2] not in (b"II", b"MM"):
        return 1
    order: Literal["little", "big"] = "little" if tiff[:2] == b"II" else "big"

    def u16(offset: int) -> int:
        return int.from_bytes(tiff[offset : offset + 2], order)

    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return 1
    for i in range(u16(ifd)):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(tiff):
            break
        if u16(entry) == 0x0112 and u16(entry + 2) == 3:
            value = u16(entry + 8)
            return value if 1 <= value <= 8 else 1
    return 1


def _apply_orientation(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Transform stored pixels to display orientation per EXIF ``orientation`` (returns a view)."""
    transforms: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, k=1),
    }
    transform = transforms.get(orientation)
    return rgb if transform is None else transform(rgb)


def _frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Convert a decoded frame of any pixel format to (H, W, 3) uint8 RGB; alpha is dropped."""
    return frame.to_ndarray(format="rgb24")


def _cover_resize(rgb: np.ndarray, width: int, height: int, pix_fmt: str) -> av.VideoFrame:
    """Centre-crop ``rgb`` to the aspect of ``width`` x ``height`` and scale to exactly that size."""
    x, y, w, h = centre_crop_box(rgb.shape[1], rgb.shape[0], width, height)
    crop = np.ascontiguousarray(rgb[y : y + h, x : x + w])
    frame = av.VideoFrame.from_ndarray(crop, format="rgb24")
    return frame.reformat(width=width, height=height, format=pix_fmt, interpolation=_RESIZE_INTERPOLATION)


def _data_url(mime: str, data: bytes) -> str:
    """Build a ``data:<mime>;base64,...`` URL."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
