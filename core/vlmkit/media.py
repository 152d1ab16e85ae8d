"""Loading images safely and encoding them explicitly for a model.

:func:`load_image` turns a path, URL, bytes, ``PIL.Image`` or numpy array into a
:class:`LoadedImage`: checked by decoding it, upright (EXIF orientation applied), in mode RGB, RGBA
or L, with decompression bombs and unreadable files refused as
:class:`~vlmkit.errors.MediaError`.
:func:`encode_image` turns it into the exact bytes sent to a model (:class:`EncodedImage`),
optionally resized by a :class:`ResizePolicy`, and records the :class:`~vlmkit.geometry.Transform`
from the original image to the encoded pixels so answers can be mapped back. No global state:
Pillow's ``Image.MAX_IMAGE_PIXELS`` is never touched.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, TypeAlias, cast

import attrs
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from vlmkit.errors import ConfigError, MediaError
from vlmkit.geometry import Transform
from vlmkit.imagefile import DEFAULT_MAX_BYTES, ImageBytes, header_size, read_file
from vlmkit.jpegcheck import checked_upright_jpeg, reducible, resized_jpeg

if TYPE_CHECKING:
    import urllib.request

__all__ = [
    "IMAGE_SUFFIXES",
    "MIME_TYPES",
    "EncodedImage",
    "ImageSource",
    "LoadedImage",
    "ResizePolicy",
    "content_hash",
    "encode_image",
    "is_image_path",
    "load_image",
]

logger = logging.getLogger(__name__)

#: MIME type of each image format vlmkit reads, by Pillow format name.
MIME_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "PNG": "image/png",
        "JPEG": "image/jpeg",
        "MPO": "image/jpeg",  # multi-picture JPEG written by many phone cameras
        "WEBP": "image/webp",
        "GIF": "image/gif",
        "BMP": "image/bmp",
        "TIFF": "image/tiff",
        "HEIC": "image/heic",
        "HEIF": "image/heif",
        "AVIF": "image/avif",
    }
)

#: File suffixes (lower case, with the dot) that :func:`is_image_path` accepts.
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".webp",
        ".gif",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".hif",
        ".avif",
    }
)

# Pillow plugins load_image lets Image.open try; nothing else (no EPS/Ghostscript, no PSD, ...).
_OPEN_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_SUPPORTED = "PNG, JPEG, WEBP, GIF, BMP, TIFF or HEIC/HEIF"
_UPRIGHT_MODES = ("RGB", "RGBA", "L")
_ALPHA_MODES = ("LA", "La", "PA", "RGBa")
_ORIENTATION_TAG = 0x0112
_URL_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+):")
_NAMED_SCHEMES = {"file", "data", "ftp", "ftps", "gs", "s3", "blob", "javascript", "sftp", "ssh"}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1"}
_HEIF_BRANDS |= {b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}
_SMALL_PIXELS = 1024 * 1024  # "auto" keeps small grayscale / few-colour images lossless (PNG)
_CHUNK = 64 * 1024


def content_hash(data: bytes | bytearray | memoryview) -> str:
    """Hex SHA-256 of ``data``: the key for caches, deduplication and Files API reuse."""
    return hashlib.sha256(data).hexdigest()


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has an image suffix vlmkit reads (by name only; the file is not opened)."""
    name = os.path.basename(os.fspath(path).rstrip("/" + os.sep))
    if name in ("", ".", ".."):  # a name ending in "/." or "/..": as Path reads it
        name = Path(path).name
    dot = name.rfind(".")
    return 0 < dot < len(name) - 1 and name[dot:].lower() in IMAGE_SUFFIXES


def _check_orientation(_instance: object, _attribute: object, value: int) -> None:
    if value not in range(1, 9):
        raise ConfigError(f"orientation must be an EXIF orientation 1–8, got {value!r}")


def _check_upright_mode(_instance: object, _attribute: object, value: Image.Image) -> None:
    if not isinstance(value, Image.Image) or value.mode not in _UPRIGHT_MODES:
        raise ConfigError(
            f"LoadedImage.image must be a PIL image in mode RGB, RGBA or L, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class LoadedImage:
    """A checked, upright image and where it came from.

    ``image`` has its EXIF orientation applied (``orientation`` records which one) and is in mode
    RGB, RGBA or L; loaded with ``decode="on_use"``, an upright JPEG's pixels are decoded the
    first time they are used. ``sha256`` identifies the source bytes (or the pixels, for
    in-memory inputs).
    """

    image: Image.Image = attrs.field(eq=False, validator=_check_upright_mode)
    source: str
    format: str | None = None
    orientation: int = attrs.field(default=1, validator=_check_orientation)
    sha256: str
    #: the encoded source bytes, when loaded from a file, URL or bytes (lets an unchanged JPEG,
    #: PNG or WEBP be sent as it is instead of being re-encoded)
    data: bytes | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the upright image."""
        return self.image.size

    @property
    def mode(self) -> str:
        return self.image.mode

    @property
    def mime_type(self) -> str | None:
        """MIME type of the source format, ``None`` for in-memory pixels without a format."""
        return MIME_TYPES.get(self.format) if self.format else None

    @property
    def transform(self) -> Transform:
        """The identity transform of this image, carrying its EXIF orientation."""
        return Transform.identity(self.size, orientation=self.orientation)


#: Everything :func:`load_image` accepts.
ImageSource: TypeAlias = (
    str
    | os.PathLike[str]
    | bytes
    | bytearray
    | memoryview
    | ImageBytes
    | Image.Image
    | np.ndarray
    | LoadedImage
)


# ---------------------------------------------------------------------------------------------
# load_image
# ---------------------------------------------------------------------------------------------


def load_image(
    source: ImageSource,
    *,
    max_pixels: int = 100_000_000,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = 30.0,
    decode: Literal["full", "on_use"] = "full",
) -> LoadedImage:
    """Load an image from a path, http(s) URL, bytes, ``PIL.Image``, numpy array, or a file
    read already by :func:`vlmkit.imagefile.read_image` (not read again).

    The image is decoded here (corruption surfaces now, not later), turned upright, and
    converted to RGB, RGBA or L. With ``decode="on_use"`` — for a caller that may send the file
    as it is, as a Session does for a backend that declares ``sends_image_files`` — an upright
    RGB or grayscale JPEG is decoded at one eighth of its size, which reads every byte of it as
    a full decode does, and its full pixels are decoded the first time they are used (once, safe
    from several threads; :mod:`vlmkit.jpegcheck`). Any other image is decoded in full either
    way.

    Images over ``max_pixels`` are refused from their header, before decoding; files and
    downloads over ``max_bytes`` are refused too. Every failure is a
    :class:`~vlmkit.errors.MediaError` that names the source and says what to do.
    """
    _check_positive("max_pixels", max_pixels)
    _check_positive("max_bytes", max_bytes)
    _check_positive("timeout", timeout)
    if decode not in ("full", "on_use"):
        raise ConfigError(f"decode must be 'full' or 'on_use', got {decode!r}")
    on_use = decode == "on_use"
    if isinstance(source, LoadedImage):
        return source
    if isinstance(source, Image.Image):
        return _from_pil(source, "<PIL.Image>", max_pixels=max_pixels)
    if isinstance(source, np.ndarray):
        image = _array_to_pil(source, max_pixels=max_pixels)
        return _finish(image, source="<numpy>", fmt=None, orientation=1, sha256=None)
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if len(data) > max_bytes:
            raise MediaError(
                f"<bytes>: {len(data):,} bytes is over max_bytes={max_bytes:,}; "
                "pass a larger max_bytes if you trust this data",
                source="<bytes>",
            )
        return _from_bytes(data, "<bytes>", max_pixels=max_pixels, on_use=on_use)
    if isinstance(source, ImageBytes):  # a file read already (vlmkit.imagefile.read_image)
        if len(source.data) > max_bytes:
            raise MediaError(
                f"{source.source}: {len(source.data):,} bytes is over max_bytes={max_bytes:,}; "
                "pass a larger max_bytes if you trust this file",
                source=source.source,
            )
        return _from_bytes(source.data, source.source, max_pixels=max_pixels, on_use=on_use)
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        if isinstance(text, bytes):
            text = os.fsdecode(text)
        if isinstance(source, str):
            scheme = _url_scheme(text)
            if scheme in ("http", "https"):
                data, name = _fetch(text, max_bytes=max_bytes, timeout=timeout)
                return _from_bytes(data, name, max_pixels=max_pixels, on_use=on_use)
            if scheme is not None:
                name = _display_url(text)
                raise MediaError(
                    f"{name}: {scheme}: URLs are not supported; use an http(s) URL or a local "
                    "path (download the file first)",
                    source=name,
                )
        data = read_file(Path(text), text, max_bytes=max_bytes)
        return _from_bytes(data, text, max_pixels=max_pixels, on_use=on_use)
    kind = type(source).__name__
    raise MediaError(
        f"cannot load an image from a {kind}; pass a path, an http(s) URL, bytes, a PIL.Image "
        "or a numpy array",
        source=f"<{kind}>",
    )


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


def _url_scheme(text: str) -> str | None:
    """The URL scheme of ``text``, or None when it reads as a local path."""
    match = _URL_SCHEME.match(text)
    if not match:
        return None
    scheme = match["scheme"].lower()
    if text[match.end() :].startswith("//") or scheme in _NAMED_SCHEMES:
        return scheme
    return None


def _from_bytes(data: bytes, name: str, *, max_pixels: int, on_use: bool) -> LoadedImage:
    if not data:
        raise MediaError(
            f"{name}: the file is empty (0 bytes); re-export or re-download it", source=name
        )
    kind = _sniff(data)
    formats = list(_OPEN_FORMATS)
    if kind == "heif":
        _require_heif(name)
        formats.append("HEIF")
    elif kind == "avif":
        if not features.check_module("avif"):
            raise MediaError(
                f"{name}: is an AVIF image and this Pillow was built without AVIF support; "
                "upgrade Pillow or convert the image to PNG or JPEG",
                source=name,
            )
        formats.append("AVIF")
    elif kind in _NOT_AN_IMAGE:
        raise MediaError(f"{name}: {_NOT_AN_IMAGE[kind]}", source=name)
    image: Image.Image | None = None
    fmt: str | None
    try:
        opened = Image.open(io.BytesIO(data), formats=formats)
        try:
            _check_pixels(opened.size, max_pixels, name)
            image = checked_upright_jpeg(opened, data, name) if on_use else None
            if image is not None:  # checked in full; its pixels are decoded on first use
                fmt, orientation = "JPEG", 1
            else:
                opened.load()
                fmt = opened.format
                if fmt == "HEIF" and opened.get_format_mimetype() == "image/heic":
                    fmt = "HEIC"
                image, orientation = _upright(opened, owned=True)
        finally:
            if image is not opened:  # closing it would release the pixels handed over
                opened.close()
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise MediaError(
            f"{name}: refused by Pillow's decompression-bomb limit ({err}); if you trust this "
            "file, raise PIL.Image.MAX_IMAGE_PIXELS in your application",
            source=name,
        ) from err
    except UnidentifiedImageError as err:
        raise MediaError(
            f"{name}: not a supported image ({_SUPPORTED}); convert it to PNG or JPEG",
            source=name,
        ) from err
    # Pillow's decoders raise OSError, SyntaxError, ValueError, EOFError, struct.error, ...
    except Exception as err:
        raise MediaError(
            f"{name}: the image is corrupt or truncated ({type(err).__name__}: {err}); "
            "re-export or re-download it",
            source=name,
        ) from err
    return _finish(
        image, source=name, fmt=fmt, orientation=orientation, sha256=content_hash(data), data=data
    )


_NOT_AN_IMAGE = {
    "pdf": "is a PDF document, not an image; render its pages to PNG first (e.g. with pypdfium2)",
    "svg": "is an SVG (vector) image; rasterize it to PNG first (e.g. with cairosvg)",
    "html": "is an HTML page, not an image; check that the link points at the image itself",
    "video": "looks like a video, not an image; use vlmkit.video (probe_video, sample_frames) "
    "or a video task",
}


def _sniff(data: bytes) -> str | None:
    """Recognise the containers Pillow cannot read, to give a useful error or pick a plugin."""
    head = data[:64]
    if head[4:8] == b"ftyp":
        box_size = int.from_bytes(head[:4], "big")
        brands = {head[8:12]} | {data[i : i + 4] for i in range(16, min(max(box_size, 16), 256), 4)}
        if brands & _AVIF_BRANDS:
            return "avif"
        if brands & _HEIF_BRANDS:
            return "heif"
        return "video"
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"\x1a\x45\xdf\xa3") or (head[:4] == b"RIFF" and head[8:12] == b"AVI "):
        return "video"
    text = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "svg"
    if text.startswith((b"<!doctype html", b"<html")):
        return "html"
    return None


def _require_heif(name: str) -> None:
    """Make Pillow able to open HEIC/HEIF, or explain how to install support."""
    try:
        import pillow_heif
    except ImportError as err:
        raise MediaError(
            f"{name}: is a HEIC/HEIF image and pillow-heif is not installed; "
            'pip install "vlmkit[heif]"',
            source=name,
        ) from err
    if "HEIF" not in Image.OPEN:
        pillow_heif.register_heif_opener()
        logger.debug("registered the pillow-heif opener with Pillow")


def _check_pixels(size: tuple[int, int], max_pixels: int, name: str) -> None:
    width, height = size
    if width * height > max_pixels:
        raise MediaError(
            f"{name}: {width}×{height} = {width * height / 1e6:.1f} megapixels is over "
            f"max_pixels={max_pixels:,} (a possible decompression bomb); pass a larger "
            "max_pixels if you trust this image",
            source=name,
        )


def _upright(opened: Image.Image, *, owned: bool = False) -> tuple[Image.Image, int]:
    """Apply the EXIF orientation and convert to RGB/RGBA/L. Returns a new image, or with
    ``owned`` (an image decoded here from bytes, which nobody else holds) ``opened`` itself
    when it needs no rotation or conversion: no copy of the decoded pixels, which for a 12 MP
    photo is 36 MB and milliseconds per image (issue 16)."""
    if opened.format == "HEIF":  # libheif already rotated the pixels and reset the EXIF tag
        orientation = opened.info.get("original_orientation") or 1
        image = opened.copy()
    else:
        orientation = opened.getexif().get(_ORIENTATION_TAG, 1)
        if owned and orientation not in range(2, 9):
            image = opened  # what exif_transpose returns for it, without its copy
        else:
            image = ImageOps.exif_transpose(opened)
    if orientation not in range(1, 9):
        orientation = 1
    return _normalize_mode(image), int(orientation)


def _normalize_mode(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB, RGBA or L, keeping alpha and scaling high bit depths."""
    mode = image.mode
    if mode in _UPRIGHT_MODES and not (mode != "RGBA" and image.has_transparency_data):
        return image
    if mode == "1":
        converted = image.convert("L")
    elif mode.startswith("I") or mode == "F":
        converted = Image.fromarray(_to_uint8(np.asarray(image), mode))
    elif mode in _ALPHA_MODES or image.has_transparency_data:
        converted = image.convert("RGBA")
    else:  # P, CMYK, YCbCr, LAB, HSV, RGBX, ...
        converted = image.convert("RGB")
    if converted.mode != mode:
        converted.info.pop("icc_profile", None)  # the profile described the old colour space
    return converted


def _to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    """Scale a 16/32-bit integer or float single-channel array to 8 bits."""
    if mode == "F":
        values = np.nan_to_num(array.astype(np.float64), nan=0.0)
        if values.size and values.min() >= 0.0 and values.max() <= 1.0:
            values = values * 255.0
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    values = array.astype(np.int64)
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if mode == "I" and low >= 0 and high <= 255:
        return values.astype(np.uint8)
    if low >= 0 and high <= 65535:  # 16-bit samples (I;16*, or a 16-bit file opened as "I")
        return ((values * 255 + 32767) // 65535).astype(np.uint8)
    span = max(high - low, 1)
    return ((values - low) * 255 // span).astype(np.uint8)


def _from_pil(image: Image.Image, name: str, *, max_pixels: int) -> LoadedImage:
    _check_pixels(image.size, max_pixels, name)
    try:
        image.load()
        upright, orientation = _upright(image)
    except Exception as err:
        raise MediaError(
            f"{name}: the image could not be decoded ({type(err).__name__}: {err})", source=name
        ) from err
    return _finish(upright, source=name, fmt=image.format, orientation=orientation, sha256=None)


def _array_to_pil(array: np.ndarray, *, max_pixels: int) -> Image.Image:
    name = "<numpy>"
    shape = array.shape
    ok_shape = (array.ndim == 2) or (array.ndim == 3 and shape[2] in (3, 4))
    if not ok_shape or array.size == 0:
        raise MediaError(
            f"{name}: unsupported array shape {shape}; use H×W (grayscale), H×W×3 (RGB) or "
            "H×W×4 (RGBA)",
            source=name,
        )
    _check_pixels((shape[1], shape[0]), max_pixels, name)
    if array.dtype == np.bool_ and array.ndim == 2:
        pixels = array.astype(np.uint8) * 255
    elif array.dtype == np.uint8:
        pixels = array
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            raise MediaError(
                f"{name}: float arrays must hold values in [0, 1]; scale them or convert to "
                "uint8 (0–255)",
                source=name,
            )
        pixels = np.rint(array * 255.0).astype(np.uint8)
    else:
        raise MediaError(
            f"{name}: unsupported array dtype {array.dtype} for shape {shape}; use uint8 "
            "(0–255), float in [0, 1], or bool (H×W masks)",
            source=name,
        )
    return Image.fromarray(np.ascontiguousarray(pixels))


def _finish(
    image: Image.Image,
    *,
    source: str,
    fmt: str | None,
    orientation: int,
    sha256: str | None,
    data: bytes | None = None,
) -> LoadedImage:
    if sha256 is None:  # in-memory pixels: hash what the model will see
        digest = hashlib.sha256(f"{image.width}x{image.height}:{image.mode}\n".encode())
        digest.update(image.tobytes())
        sha256 = digest.hexdigest()
    return LoadedImage(
        image=image, source=source, format=fmt, orientation=orientation, sha256=sha256, data=data
    )


# ---------------------------------------------------------------------------------------------
# URLs
# ---------------------------------------------------------------------------------------------


def _display_url(url: str) -> str:
    """``url`` without userinfo, query string or fragment: safe to show and log."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = parts.port
    except ValueError:
        return "<url>"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, "", ""))


def _fetch(url: str, *, max_bytes: int, timeout: float) -> tuple[bytes, str]:
    """Download ``url`` over http(s), capped at ``max_bytes`` and ``timeout`` seconds in total."""
    import base64
    import time
    import urllib.error
    import urllib.request
    from http.client import HTTPException
    from urllib.parse import unquote, urlsplit, urlunsplit

    name = _display_url(url)
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = parts.netloc.rpartition("@")[2]
    clean = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    secrets = [s for s in (url, clean, parts.query, parts.fragment, userinfo) if s]
    headers = {"User-Agent": "vlmkit", "Accept": "image/*,*/*;q=0.5"}
    if parts.username is not None:
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode("ascii")
    opener = urllib.request.build_opener(_redirect_handler())
    deadline = time.monotonic() + timeout

    def fail(what: str) -> MediaError:
        return MediaError(f"{name}: {_scrub(what, secrets, name)}", source=name)

    try:
        with opener.open(urllib.request.Request(clean, headers=headers), timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise fail(
                    f"the server reports {int(length):,} bytes, over max_bytes={max_bytes:,}; "
                    "pass a larger max_bytes if you trust this URL"
                )
            chunks: list[bytes] = []
            total = 0
            while chunk := resp.read(_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise fail(
                        f"download is over max_bytes={max_bytes:,}; pass a larger max_bytes "
                        "if you trust this URL"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunks.append(chunk)
    except MediaError:
        raise
    except urllib.error.HTTPError as err:
        err.close()
        raise fail(f"HTTP {err.code} {err.reason}; check the URL and its access rights") from None
    except TimeoutError:
        raise fail(f"timed out after {timeout:g} s; try again or raise timeout") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            raise fail(f"timed out after {timeout:g} s; try again or raise timeout") from None
        raise fail(f"could not connect ({err.reason}); check the URL and the network") from None
    except (OSError, HTTPException, ValueError) as err:
        raise fail(f"download failed ({type(err).__name__}: {err})") from None
    return b"".join(chunks), name


def _scrub(text: str, secrets: list[str], name: str) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, name if secret.startswith(("http:", "https:")) else "***")
    return text


def _redirect_handler() -> urllib.request.HTTPRedirectHandler:
    """A redirect handler that stays on http(s) and drops credentials when the host changes."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    class _SafeRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
            target = urlsplit(newurl)
            if target.scheme.lower() not in ("http", "https"):
                raise urllib.error.HTTPError(
                    req.full_url, code, f"redirect to a {target.scheme}: URL refused", headers, fp
                )
            new = super().redirect_request(req, fp, code, msg, headers, newurl)
            if new is not None and target.hostname != urlsplit(req.full_url).hostname:
                new.remove_header("Authorization")
            return new

    return _SafeRedirects()


# ---------------------------------------------------------------------------------------------
# Resizing
# ---------------------------------------------------------------------------------------------

ResizeKind = Literal["none", "fit", "max_pixels", "exact", "letterbox"]
_RESIZE_KINDS = ("none", "fit", "max_pixels", "exact", "letterbox")


def _optional_positive_int(_instance: object, attribute: attrs.Attribute, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ConfigError(
            f"ResizePolicy.{attribute.name} must be a positive integer, got {value!r}"
        )


def _check_kind(_instance: object, _attribute: object, value: object) -> None:
    if value not in _RESIZE_KINDS:
        raise ConfigError(f"ResizePolicy.kind must be one of {_RESIZE_KINDS}, got {value!r}")


def _fill_converter(value: object) -> tuple[int, int, int]:
    items: list[object] = []
    if isinstance(value, int) and not isinstance(value, bool):
        items = [value, value, value]
    elif isinstance(value, Iterable) and not isinstance(value, str | bytes):
        items = list(value)
    try:
        fill = [int(v) for v in items]  # type: ignore[call-overload]
    except (TypeError, ValueError):
        fill = []
    if len(fill) != 3 or not all(0 <= v <= 255 for v in fill):
        raise ConfigError(f"letterbox fill must be an RGB triple of 0–255 integers, got {value!r}")
    return (fill[0], fill[1], fill[2])


@attrs.frozen(kw_only=True)
class ResizePolicy:
    """How to resize an image before sending it; build one with a constructor.

    ``ResizePolicy.none()``, ``.fit(max_side)`` (shrink so the longer side ≤ ``max_side``),
    ``.max_pixels(n)`` (shrink to at most ``n`` pixels), ``.exact(width, height)`` (stretch) and
    ``.letterbox(width, height, fill=(0, 0, 0))`` (scale to fit, pad centred). :meth:`apply`
    returns the new pixels and the :class:`~vlmkit.geometry.Transform` that produced them.
    """

    kind: ResizeKind = attrs.field(default="none", validator=_check_kind)
    max_side: int | None = attrs.field(default=None, validator=_optional_positive_int)
    pixels: int | None = attrs.field(default=None, validator=_optional_positive_int)
    width: int | None = attrs.field(default=None, validator=_optional_positive_int)
    height: int | None = attrs.field(default=None, validator=_optional_positive_int)
    fill: tuple[int, int, int] = attrs.field(default=(0, 0, 0), converter=_fill_converter)

    def __attrs_post_init__(self) -> None:
        needs = {
            "fit": ("max_side",),
            "max_pixels": ("pixels",),
            "exact": ("width", "height"),
            "letterbox": ("width", "height"),
        }.get(self.kind, ())
        missing = [field for field in needs if getattr(self, field) is None]
        if missing:
            raise ConfigError(f"ResizePolicy(kind={self.kind!r}) needs {', '.join(missing)}")

    @classmethod
    def none(cls) -> ResizePolicy:
        """Send the image at its own size."""
        return cls(kind="none")

    @classmethod
    def fit(cls, max_side: int) -> ResizePolicy:
        """Shrink so the longer side is at most ``max_side``, keeping the aspect; never enlarge."""
        return cls(kind="fit", max_side=max_side)

    @classmethod
    def max_pixels(cls, pixels: int) -> ResizePolicy:
        """Shrink to at most ``pixels`` pixels in total, keeping the aspect; never enlarge."""
        return cls(kind="max_pixels", pixels=pixels)

    @classmethod
    def exact(cls, width: int, height: int) -> ResizePolicy:
        """Resize to exactly ``width`` × ``height``, changing the aspect if needed."""
        return cls(kind="exact", width=width, height=height)

    @classmethod
    def letterbox(
        cls, width: int, height: int, fill: tuple[int, int, int] | int = (0, 0, 0)
    ) -> ResizePolicy:
        """Scale (up or down) to fit ``width`` × ``height`` keeping the aspect, pad centred."""
        return cls(kind="letterbox", width=width, height=height, fill=fill)

    def apply(self, image: LoadedImage | Image.Image) -> tuple[Image.Image, Transform]:
        """Resize ``image``; return the new pixels and the transform original → new pixels.

        A :class:`LoadedImage` contributes its EXIF orientation to the transform; a bare
        ``PIL.Image`` is taken as already upright.
        """
        if isinstance(image, LoadedImage):
            pixels, orientation = image.image, image.orientation
        else:
            pixels, orientation = image, 1
        if self.kind == "letterbox":
            return self._letterbox(pixels, orientation)
        size = pixels.size
        target = self._target_size(size)
        if target == size:
            return pixels, Transform.identity(size, orientation=orientation)
        resized = None
        if isinstance(image, LoadedImage):  # an undecoded JPEG: from a reduced-scale decode
            resized = resized_jpeg(pixels, image.data, target)
        if resized is None:
            resized = _resize(pixels, target)
        return resized, Transform.resize(size, target, orientation=orientation)

    def changes(self, size: tuple[int, int]) -> bool:
        """Whether :meth:`apply` makes new pixels for an upright image of ``size`` (a resize,
        or a letterbox's canvas) rather than handing the image back as it is."""
        return self.kind == "letterbox" or self._target_size(size) != size

    def decodes_reduced(self, size: tuple[int, int]) -> bool:
        """Whether :meth:`apply` resizes an upright image of ``size`` to half of it or less
        (and to 16 pixels or more), so that a JPEG loaded with ``decode="on_use"`` is resized
        from a decode at reduced scale, never decoded at full size for it."""
        return self.kind != "letterbox" and reducible(size, self._target_size(size))

    def _target_size(self, size: tuple[int, int]) -> tuple[int, int]:
        width, height = size
        if self.kind == "fit" and self.max_side is not None and max(size) > self.max_side:
            factor = self.max_side / max(size)
            return (max(1, round(width * factor)), max(1, round(height * factor)))
        if self.kind == "max_pixels" and self.pixels is not None and width * height > self.pixels:
            factor = math.sqrt(self.pixels / (width * height))  # floor keeps w×h ≤ pixels
            return (max(1, math.floor(width * factor)), max(1, math.floor(height * factor)))
        if self.kind == "exact" and self.width is not None and self.height is not None:
            return (self.width, self.height)
        return size

    def _letterbox(self, pixels: Image.Image, orientation: int) -> tuple[Image.Image, Transform]:
        width, height = pixels.size
        canvas_w, canvas_h = self.width, self.height
        assert canvas_w is not None and canvas_h is not None
        factor = min(canvas_w / width, canvas_h / height)
        content = (
            min(canvas_w, max(1, round(width * factor))),
            min(canvas_h, max(1, round(height * factor))),
        )
        left, top = (canvas_w - content[0]) // 2, (canvas_h - content[1]) // 2
        if pixels.mode == "L":
            r, g, b = self.fill
            fill: int | tuple[int, ...] = round(0.299 * r + 0.587 * g + 0.114 * b)
        elif pixels.mode == "RGBA":
            fill = (*self.fill, 255)
        else:
            fill = self.fill
        canvas = Image.new(pixels.mode, (canvas_w, canvas_h), fill)
        resized = pixels if content == pixels.size else _resize(pixels, content)
        canvas.paste(resized, (left, top))
        if icc := pixels.info.get("icc_profile"):
            canvas.info["icc_profile"] = icc
        transform = Transform(
            original_size=(width, height),
            sent_size=(canvas_w, canvas_h),
            scale=(content[0] / width, content[1] / height),
            offset=(left, top),
            orientation=orientation,
        )
        return canvas, transform


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


# ---------------------------------------------------------------------------------------------
# encode_image
# ---------------------------------------------------------------------------------------------

_ENCODE_FORMATS = {"JPEG": "JPEG", "JPG": "JPEG", "PNG": "PNG", "WEBP": "WEBP", "AUTO": "AUTO"}


@attrs.frozen(kw_only=True)
class EncodedImage:
    """The exact bytes sent to a model, their MIME type, and how they relate to the original.

    ``size`` is the encoded pixel size; ``transform`` maps original-image pixels to them.
    """

    data: bytes = attrs.field(repr=lambda data: f"<{len(data):,} bytes>")
    mime_type: str
    format: str
    size: tuple[int, int]
    transform: Transform
    sha256: str


def encode_image(
    image: LoadedImage | ImageSource,
    *,
    format: str = "auto",
    quality: int = 90,
    resize: ResizePolicy | None = None,
) -> EncodedImage:
    """Encode an image for a model as JPEG, PNG or WEBP, optionally resized first.

    ``"auto"`` sends an upright, unresized JPEG, PNG or WEBP file as it is (no re-encoding, no
    quality loss); otherwise it picks PNG for images with transparency and for small grayscale
    or few-colour images, JPEG otherwise. JPEG flattens transparency onto white. EXIF is never
    written: the pixels are already upright. Anything :func:`load_image` accepts may be passed.
    """
    fmt = _ENCODE_FORMATS.get(str(format).strip().upper()) if isinstance(format, str) else None
    if fmt is None:
        raise ConfigError(f"format must be 'auto', 'jpeg', 'png' or 'webp', got {format!r}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ConfigError(f"quality must be an integer from 1 to 100, got {quality!r}")
    if resize is not None and not isinstance(resize, ResizePolicy):
        raise ConfigError(f"resize must be a ResizePolicy or None, got {resize!r}")
    if isinstance(image, LoadedImage):
        loaded = image
    else:  # a JPEG that ``resize`` halves or more is resized from a decode at reduced scale
        size = header_size(image) if resize is not None else None
        reduced = size is not None and resize is not None and resize.decodes_reduced(size)
        loaded = load_image(image, decode="on_use" if reduced else "full")
    pixels, transform = (resize or ResizePolicy.none()).apply(loaded)
    if (
        loaded.data is not None
        and pixels is loaded.image
        and loaded.orientation == 1
        and loaded.format in ("JPEG", "PNG", "WEBP")
        and fmt in ("AUTO", loaded.format)
    ):
        return EncodedImage(
            data=loaded.data,
            mime_type=MIME_TYPES[loaded.format],
            format=loaded.format,
            size=loaded.size,
            transform=transform,
            sha256=loaded.sha256,
        )
    has_alpha = pixels.mode == "RGBA" and _min_alpha(pixels) < 255
    if pixels.mode == "RGBA" and not has_alpha:
        pixels = pixels.convert("RGB")
    if fmt == "AUTO":
        fmt = "PNG" if has_alpha or _palette_like(pixels) else "JPEG"
    icc = loaded.image.info.get("icc_profile") or None
    if fmt == "JPEG" and pixels.mode == "RGBA":
        pixels = _flatten(pixels)
    elif fmt == "WEBP" and pixels.mode == "L":
        pixels = pixels.convert("RGB")
    data = _jpeg_opencv(pixels, quality) if fmt == "JPEG" and not icc else None
    if data is None:
        copy = pixels is loaded.image  # Image.save sets attributes: keep the caller's image as is
        data = _encode_pillow(pixels, fmt, quality, icc=icc, source=loaded.source, copy=copy)
    return EncodedImage(
        data=data,
        mime_type=MIME_TYPES[fmt],
        format=fmt,
        size=pixels.size,
        transform=transform,
        sha256=content_hash(data),
    )


def _encode_pillow(
    pixels: Image.Image, fmt: str, quality: int, *, icc: bytes | None, source: str, copy: bool
) -> bytes:
    """Encode with Pillow (PNG, WEBP, JPEG with an ICC profile or without OpenCV)."""
    params: dict[str, object] = {"icc_profile": icc} if icc else {}
    if fmt == "JPEG":
        params.update(quality=quality)
    elif fmt == "WEBP":
        params.update(quality=quality, method=4)
    else:
        params.update(compress_level=6)
    if copy:  # so that threads sharing one image never save it at the same time
        pixels = pixels.copy()
    buffer = io.BytesIO()
    try:
        pixels.save(buffer, fmt, **params)
    except (OSError, ValueError) as err:
        raise MediaError(f"{source}: could not encode as {fmt} ({err})", source=source) from err
    return buffer.getvalue()


def _jpeg_opencv(image: Image.Image, quality: int) -> bytes | None:
    """JPEG bytes by OpenCV when it is installed and the image is RGB or grayscale, else None.

    The same libjpeg(-turbo) encoding as Pillow's, but OpenCV releases the GIL while it
    encodes, so threads sending images to a model encode in parallel; Pillow holds the GIL.
    (Neither optimizes the Huffman tables: that triples the time to save about 6 % of the
    bytes, and models bill images by pixels, not bytes.)
    """
    if image.mode not in ("RGB", "L"):
        return None
    try:
        import cv2
    except ImportError:
        return None
    array = np.asarray(image)
    if image.mode == "RGB":
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return buffer.tobytes() if ok else None


def _palette_like(image: Image.Image) -> bool:
    """Small and grayscale or with at most 256 colours (diagrams, masks, screenshots)."""
    if image.width * image.height > _SMALL_PIXELS:
        return False
    return image.mode == "L" or image.getcolors(maxcolors=256) is not None


def _min_alpha(image: Image.Image) -> int:
    low, _high = cast(tuple[int, int], image.getchannel("A").getextrema())
    return low


def _flatten(image: Image.Image) -> Image.Image:
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image.getchannel("A"))
    return background
