"""Atomic file writes and safe output paths.

Every file a sink writes goes through :func:`atomic_write_bytes`, :func:`atomic_write_text` or
:func:`atomic_open`: the data lands in a temporary file in the target's folder, is flushed and
fsynced, and is moved over the target with :func:`os.replace` (atomic on POSIX and Windows), then
the folder itself is fsynced where the platform allows it. A crash, a full disk or an exception
leaves either the old file or the new one — never half of one — and no temporary file.

Every path a sink derives from an input key goes through :func:`safe_join`, which refuses
anything that could land outside the output folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path, PurePath, PureWindowsPath
from typing import IO, Any

from vlmkit.errors import SinkError

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "safe_join"]

_DRIVE = re.compile(r"^[A-Za-z]:")


def _fsync_dir(folder: Path) -> None:
    """Persist a rename by fsyncing its folder (POSIX only; Windows cannot open folders)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str],
    mode: str = "w",
    *,
    encoding: str | None = None,
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """Open ``path`` for writing so that it appears complete or not at all.

    ``mode`` is ``"w"`` (text, UTF-8 unless ``encoding`` says otherwise) or ``"wb"``. The
    target is replaced only when the ``with`` block finishes without an exception; otherwise
    the temporary file is removed and the target is left as it was. Parent folders are created.
    The new file gets the usual permissions (``0o666`` less the umask).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports mode 'w' or 'wb', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_path(target)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        if mode == "wb":
            handle: IO[Any] = os.fdopen(fd, "wb")
        else:
            handle = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (no newline translation); return the path."""
    with atomic_open(path, "w", encoding=encoding, newline="") as handle:
        handle.write(text)
    return Path(path)


def safe_join(root: str | os.PathLike[str], relative: str | PurePath) -> Path:
    """Join ``relative`` under ``root`` or raise :class:`~vlmkit.SinkError`.

    ``relative`` is an input key such as ``"holiday/img 1.jpg"``; both ``/`` and ``\\`` count
    as separators. Refused: an empty path, NUL bytes, absolute paths, drive letters and UNC
    paths, ``..`` components, and any path that resolves outside ``root`` through a symlink.
    Empty and ``.`` components are dropped, so ``"a//./b"`` is ``root/a/b``.
    """
    text = relative.as_posix() if isinstance(relative, PurePath) else str(relative)
    if not text:
        raise SinkError("refusing an empty output path")
    if "\x00" in text:
        raise SinkError(f"refusing an output path with a NUL byte: {text!r}")
    if text.startswith(("/", "\\")) or _DRIVE.match(text) or PureWindowsPath(text).anchor:
        raise SinkError(f"refusing an absolute output path {text!r}; keys must be relative")
    parts = [part for part in re.split(r"[/\\]", text) if part not in ("", ".")]
    if not parts:
        raise SinkError(f"refusing output path {text!r}: it names no file")
    if ".." in parts:
        raise SinkError(f"refusing output path {text!r}: '..' components are not allowed")
    base = Path(root)
    joined = base.joinpath(*parts)
    resolved_root = base.resolve()
    resolved = joined.resolve()
    if resolved != resolved_root and not resolved.is_relative_to(resolved_root):
        raise SinkError(
            f"refusing output path {text!r}: it resolves to {resolved}, outside {resolved_root} "
            "(a symlink points out of the output folder)"
        )
    return joined
