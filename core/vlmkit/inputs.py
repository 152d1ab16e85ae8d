"""A run's inputs: files, folders and globs expanded into items with stable keys.

A key names an input inside its run folder (the ledger, COCO ``file_name``, YOLO label paths).
It depends only on the argument that yielded the file, never on the other arguments, so adding
a folder or a file to a command line never re-keys what is already done:

* a folder argument: the file's path relative to that folder (``photos/`` → ``sub/a.jpg``);
* a glob: the path relative to the glob's folder part (``photos/**/*.jpg`` → ``sub/a.jpg``);
* a file argument: its name (``shots/a.jpg`` → ``a.jpg``).

Two different files with one key are refused before any request. The same file reached twice
(through two arguments, or a symbolic link) is one item, keyed by the first argument. Entries
that are not regular files — FIFOs, sockets, device files, broken links, symbolic-link loops —
are skipped with their reason, never read.
"""

from __future__ import annotations

import errno
import glob
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import attrs

from vlmkit.errors import ConfigError, MediaError
from vlmkit.media import is_image_path

__all__ = ["InputItem", "SkippedInput", "collect_inputs"]


def _text(path: str | os.PathLike[str]) -> str:
    return os.fspath(path)


@attrs.frozen(kw_only=True)
class InputItem:
    """One input of a run: its stable key (see the module's docs; ``/`` separators) and the
    file it is (an absolute path, symbolic links resolved).

    The path is held as its text, :attr:`file` (``InputItem(key=..., path=...)`` takes a
    ``Path`` or a string): a run holds every input from start to end, and a ``Path`` object
    costs several times its text (about 0.3 KiB more per item in CPython 3.11)."""

    key: str
    file: str = attrs.field(alias="path", converter=_text)

    @property
    def path(self) -> Path:
        """The file as a :class:`~pathlib.Path` (a new one each time)."""
        return Path(self.file)


@attrs.frozen(kw_only=True)
class SkippedInput:
    """An input left out, and why (not an image, not a regular file, a symbolic-link loop).

    Held as text like :class:`InputItem` (:attr:`file`; :attr:`path` gives a ``Path``): a
    folder of images may hold as many other files (labels, sidecars), each kept for the run's
    summary."""

    file: str = attrs.field(alias="path", converter=_text)
    reason: str

    @property
    def path(self) -> Path:
        """The input as a :class:`~pathlib.Path` (a new one each time)."""
        return Path(self.file)


def _kind(mode: int) -> str | None:
    """Why a file of this mode is no input, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file, not a regular file"
    return "not a regular file"


def _check_entry(path: Path) -> str | None:
    """Why ``path`` (found in a folder or by a glob) cannot be an input, or None."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        if path.is_symlink():
            if err.errno == errno.ELOOP:
                return "a symbolic-link loop"
            return "a broken symbolic link"
        return f"unreadable ({err.strerror or err})"
    return _kind(mode)


def _is_dir(path: Path) -> bool:
    """Whether ``path`` is a folder; False when that cannot be told (a link with a name too long
    for the system: :func:`_check_entry` then says why it is skipped)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _walk(folder: Path) -> Iterator[tuple[str, str, str, str | None]]:
    """Every entry under ``folder`` (following symbolic links to folders, each real folder
    once) in sorted order, hidden ones left out, as ``(path, key, resolved, reason)``: the
    entry as reached from ``folder``, its path under ``folder`` with ``/`` separators, its real
    path (symbolic links resolved), and why it is skipped, or None.

    Each folder is resolved once and a plain entry's real path is its folder's plus its name:
    only symbolic links are resolved on their own, and only what the directory listing cannot
    say (a link's target, a file of an unusual kind) is asked with ``stat``."""
    seen: set[tuple[int, int]] = set()
    base = os.fspath(folder)

    def visit(current: str, prefix: str, real: str) -> Iterator[tuple[str, str, str, str | None]]:
        try:
            info = os.stat(current)
        except OSError:
            return
        identity = (info.st_dev, info.st_ino)
        if identity in seen:
            reason = "a symbolic-link loop (this folder is already being read)"
            yield current, prefix.rstrip("/"), real, reason
            return
        seen.add(identity)
        try:
            entries = sorted(os.scandir(current), key=lambda entry: entry.name)
        except OSError as err:
            yield current, prefix.rstrip("/"), real, f"unreadable folder ({err.strerror or err})"
            return
        into = real.rstrip(os.sep) + os.sep  # the root folder ends with its separator
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            path = name if current == os.curdir else entry.path  # as Path("./a") reads
            try:
                linked = entry.is_symlink()
            except OSError:
                linked = True
            resolved = os.path.realpath(path) if linked else into + name
            try:
                is_dir = entry.is_dir()
            except OSError:  # a link loop, a name too long: _check_entry says which
                is_dir = False
            if is_dir:
                yield from visit(path, f"{prefix}{name}/", resolved)
            elif not linked and entry.is_file(follow_symlinks=False):  # the listing says so
                yield path, prefix + name, resolved, None
            else:
                yield path, prefix + name, resolved, _check_entry(Path(path))

    yield from visit(base, "", os.path.realpath(base))


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard (``photos/**/*.jpg`` → ``photos``)."""
    parts = Path(pattern).parts
    for index, part in enumerate(parts):
        if glob.has_magic(part):
            return Path(*parts[:index]) if index else Path(".")
    return Path(pattern).parent


def _expand(
    inputs: Iterable[str | os.PathLike[str]],
    exclude: Path | None = None,
    accept: Callable[[str], bool] = is_image_path,
    kind: str = "an image file",
) -> tuple[list[tuple[str, str, str]], list[SkippedInput]]:
    """``(key, path, resolved)`` of every input file in argument order, and what was
    skipped."""
    found: list[tuple[str, str, str]] = []
    skipped: list[SkippedInput] = []
    not_kind = f"not {kind}"  # one string for every file skipped so
    excluded = os.path.realpath(exclude) if exclude is not None else None
    under = excluded.rstrip(os.sep) + os.sep if excluded is not None else None

    def outside(resolved: str) -> bool:  # a run's own outputs are never its inputs
        return under is None or not (resolved == excluded or resolved.startswith(under))

    def consider(path: str, key: str, resolved: str, reason: str | None) -> None:
        if reason is None and not accept(path):
            reason = not_kind
        if reason is not None:
            skipped.append(SkippedInput(path=path, reason=reason))
        else:
            found.append((key, path, resolved))

    for raw in inputs:
        text = os.fspath(raw)
        path = Path(text).expanduser()
        if _is_dir(path):
            for entry, key, resolved, reason in _walk(path):
                if outside(resolved):
                    consider(entry, key, resolved, reason)
        elif os.path.lexists(path) and not glob.has_magic(text):
            reason = _check_entry(path)
            if reason is not None:
                skipped.append(SkippedInput(path=path, reason=reason))
            else:  # named explicitly: try it, a bad one fails with its reason
                found.append((path.name, os.fspath(path), os.path.realpath(path)))
        elif glob.has_magic(text):
            base = _glob_base(os.path.expanduser(text))
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(text), recursive=True))
            hits = [(m, os.path.realpath(m)) for m in matches]
            hits = [(m, real) for m, real in hits if outside(real) and not _is_dir(m)]
            if not hits:
                skipped.append(SkippedInput(path=path, reason="the pattern matched nothing"))
            for match, real in hits:
                key = match.relative_to(base).as_posix()
                consider(os.fspath(match), key, real, _check_entry(match))
        else:
            # a typo must fail before any model call, not show up as one skipped item
            raise MediaError(f"no such file or folder: {text}", source=text)
    return found, skipped


def collect_inputs(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    exclude: str | os.PathLike[str] | None = None,
    accept: Callable[[str], bool] = is_image_path,
    kind: str = "an image file",
) -> tuple[list[InputItem], list[SkippedInput]]:
    """Expand files, folders (recursively) and globs into items with stable keys.

    Returns the items (one per file, in argument order, each folder's files sorted) and the
    inputs skipped with a reason. Files under ``exclude`` (the run's output folder) are left
    out. Raises :class:`~vlmkit.ConfigError` when two different files would get one key.
    Folders and globs yield the files ``accept`` takes by name (it gets the path as text;
    images by default; ``kind`` says what those are in the reason others are skipped).
    """
    found, skipped = _expand(inputs, Path(exclude) if exclude is not None else None, accept, kind)
    items: list[InputItem] = []
    by_file: set[str] = set()
    by_key: dict[str, str] = {}
    for key, path, resolved in found:
        if resolved in by_file:
            continue  # the same file again (two arguments, a link): the first key holds
        if key in by_key:
            raise ConfigError(
                f"{by_key[key]} and {path} would both be keyed {key!r} in the run folder; "
                "pass their common parent folder (or a glob from it) instead, or label them "
                "into separate --out folders"
            )
        by_file.add(resolved)
        by_key[key] = path
        items.append(InputItem(key=key, path=resolved))
    return items, skipped
