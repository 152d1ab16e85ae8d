"""Reading an image file once: :func:`read_image` gives its bytes and its pixel size from the
header, nothing decoded (:class:`ImageBytes`); :func:`vlmkit.load_image` then decodes those
bytes without opening the file again.

A run reads each input this way: the size asks the run's pixel budget before anything is
decoded, and the same bytes are decoded and sent. Each file costs one open, one fstat, one read
and one close: on a busy run every system call is a point where a thread drops the GIL and
another takes it, so a second open per item cost more CPU than its own work (issue 16). A file
over :data:`READ_AHEAD_MAX_BYTES` is not read before the budget admits it (``hold_up_to``): a
worker waiting for the budget holds no large file's bytes, and next to decoding such an image
a second open costs nothing.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import overload

import attrs

from vlmkit.errors import MediaError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "READ_AHEAD_MAX_BYTES",
    "ImageBytes",
    "header_size",
    "read_file",
    "read_image",
]

#: :func:`vlmkit.load_image`'s default limit on a file's size.
DEFAULT_MAX_BYTES = 200 * 2**20
#: The largest file a run reads whole before its image is admitted by the pixel budget: the
#: workers waiting for the budget (at most twice the requests in flight) hold at most this each.
READ_AHEAD_MAX_BYTES = 2**20
_CHUNK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


@attrs.frozen(kw_only=True)
class ImageBytes:
    """An image file's bytes as read, and its ``(width, height)`` from its header.

    ``size`` is None when Pillow cannot read the header (not an image, a format that needs a
    plugin, a corrupt file): :func:`vlmkit.load_image` of it then says why. ``size`` is the
    stored size, before any EXIF rotation.
    """

    source: str
    data: bytes = attrs.field(eq=False, repr=lambda data: f"<{len(data):,} bytes>")
    size: tuple[int, int] | None

    @property
    def pixels(self) -> int:
        """Width × height from the header; 0 when unknown."""
        return self.size[0] * self.size[1] if self.size else 0


@overload
def read_image(
    path: str | os.PathLike[str], *, max_bytes: int = ..., hold_up_to: None = None
) -> ImageBytes: ...
@overload
def read_image(
    path: str | os.PathLike[str], *, max_bytes: int = ..., hold_up_to: int
) -> ImageBytes | None: ...
def read_image(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    hold_up_to: int | None = None,
) -> ImageBytes | None:
    """Read the image file at ``path`` once and its size from its header (nothing decoded);
    None, with nothing read, when ``hold_up_to`` is given and the file is larger.

    Raises :class:`~vlmkit.errors.MediaError` for a missing, unreadable or over-``max_bytes``
    file, or a folder. Pillow's decompression-bomb warning is left to the process's warning
    filters; a header beyond its error limit reads as an unknown size (loading refuses it).
    """
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    data = _read(Path(text), text, max_bytes=max_bytes, up_to=hold_up_to)
    if data is None:
        return None
    return ImageBytes(source=text, data=data, size=_header_size(data))


def header_size(source: object) -> tuple[int, int] | None:
    """``(width, height)`` from the header of an image file (a path), its bytes or an
    :class:`ImageBytes` (nothing decoded); None for anything else (pixels in memory, a URL),
    for what is not a readable image (loading it says why), and for a path that is not a
    regular file: a pipe's bytes can be read only once, by the load."""
    if isinstance(source, ImageBytes):
        return source.size
    if isinstance(source, bytes | bytearray | memoryview):
        return _header_size(source)
    if not isinstance(source, str | os.PathLike):
        return None
    try:
        if not stat.S_ISREG(os.stat(source).st_mode):
            return None
    except (OSError, ValueError):  # missing, unreadable, a NUL in the name: loading says why
        return None
    return _header_size(source)


def _header_size(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
) -> tuple[int, int] | None:
    from PIL import Image

    opened_from: str | os.PathLike[str] | io.BytesIO = (
        io.BytesIO(source) if isinstance(source, bytes | bytearray | memoryview) else source
    )
    try:
        with Image.open(opened_from) as opened:
            width, height = opened.size
    except Exception:  # not an image, a bomb beyond the error limit: loading says why
        return None
    return int(width), int(height)


def _a_directory(name: str) -> MediaError:
    return MediaError(
        f"{name}: is a directory, not an image; pass image files (or scan the folder for "
        "files with an image suffix)",
        source=name,
    )


def read_file(path: Path, name: str, *, max_bytes: int) -> bytes:
    """The bytes of the file at ``path`` (``name`` in errors): one open, one fstat, one read
    for a regular file, and a :class:`~vlmkit.errors.MediaError` that says what to do for a
    missing, unreadable, over-``max_bytes`` file or a folder."""
    data = _read(path, name, max_bytes=max_bytes, up_to=None)
    assert data is not None  # nothing is held back without up_to
    return data


def _read(path: Path, name: str, *, max_bytes: int, up_to: int | None) -> bytes | None:
    """:func:`read_file`, or None once the fstat shows a file over ``up_to`` bytes."""
    try:
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except (IsADirectoryError, PermissionError):
            if os.path.isdir(path):  # Windows cannot open a folder: permission denied
                raise _a_directory(name) from None
            raise
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise _a_directory(name)
            if info.st_size > max_bytes:
                raise MediaError(
                    f"{name}: {info.st_size:,} bytes is over max_bytes={max_bytes:,}; pass a "
                    "larger max_bytes if you trust this file",
                    source=name,
                )
            if up_to is not None and info.st_size > up_to:
                return None
            # a buffer of the file's size and one byte more (which shows that it grew): a
            # regular file is read whole by one call
            data = os.read(fd, info.st_size + 1)
            if len(data) != info.st_size:  # it changed, or is not a regular file: read on
                data = _read_on(fd, data, max_bytes)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise MediaError(f"{name}: no such file; check the path", source=name) from None
    except PermissionError as err:
        raise MediaError(
            f"{name}: permission denied; check the file's permissions", source=name
        ) from err
    except OSError as err:
        raise MediaError(
            f"{name}: could not read the file ({err.strerror or err})", source=name
        ) from err
    if len(data) > max_bytes:  # the file grew while we read it
        raise MediaError(f"{name}: file is over max_bytes={max_bytes:,}", source=name)
    return data


def _read_on(fd: int, first: bytes, max_bytes: int) -> bytes:
    """``first`` and the rest of the file up to one byte over ``max_bytes`` (then refused)."""
    chunks, total = [first], len(first)
    while total <= max_bytes and first:
        first = os.read(fd, min(_CHUNK, max_bytes + 1 - total))
        chunks.append(first)
        total += len(first)
    return b"".join(chunks)
