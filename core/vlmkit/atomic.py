"""Atomic file writes, staged groups of files, and safe output paths.

Single files: :func:`atomic_write_bytes`, :func:`atomic_write_text` and :func:`atomic_open`
write the data to a hidden temporary file in the target's folder, flush and fsync it, and move
it over the target with :func:`os.replace` (atomic on POSIX and Windows); then the folder itself
is fsynced where the platform allows it. A crash, a full disk or an exception leaves either the
old file or the new one, never half of one; an exception also leaves no temporary file (a
process killed mid-write may leave a hidden ``.NAME.*.tmp`` next to the target).

Groups of files: :class:`Staging` writes every file of a group in full under such temporary
names first and moves them all into place only at :meth:`Staging.commit`, a quick burst of
renames in the order the files were staged, after fsyncing the staged files together (in
parallel, so a file system can commit them as one group; from :data:`SYNCFS_FROM` files on, on
Linux, with one ``syncfs`` per file system instead, which also flushes whatever else is
waiting to be written there). Until then no target changes, and
:meth:`Staging.discard` drops everything. The built-in sinks stage all their files this way so
that an export that fails half-way changes nothing.

Every path a sink derives from an input key goes through :func:`safe_join`, which refuses
anything that could land outside the output folder (or cannot be a file name at all).
Text for dataset files goes through :func:`utf8_safe`, so a string that UTF-8 cannot encode (a
lone surrogate from model output) never crashes a writer.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import re
import secrets
import shutil
import stat
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePath
from typing import IO, Any

from vlmkit.errors import SinkError
from vlmkit.filelist import FileList

__all__ = [
    "Staging",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "safe_join",
    "sweep_stale_files",
    "utf8_safe",
]

_FSYNC_THREADS = 8  # concurrent fsyncs at a commit: file systems batch them into one flush
#: From this many staged files a commit on Linux flushes each file system once (``syncfs``)
#: instead of opening and fsyncing every file: a YOLO export has one label file per image.
SYNCFS_FROM = 32
_DRIVE = re.compile(r"^[A-Za-z]:")
_SURROGATE = re.compile("[\ud800-\udfff]")
_O_BINARY = getattr(os, "O_BINARY", 0)
_TOKEN = (1 << 48) - 1  # the random part of a staged file's number (12 hex digits)
_WRITTEN = 1 << 48  # set in a staged file's number: written by us, so fsynced at the commit


def utf8_safe(text: str) -> str:
    """``text`` made encodable as UTF-8: surrogate pairs are joined into the character they
    stand for, lone surrogates become U+FFFD. Text without surrogates is returned unchanged."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


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
    # A short prefix of the name keeps the temporary name within NAME_MAX for long names; the
    # process id says whose file it is (see _sweep_stale).
    return target.with_name(f".{target.name[:40]}.{os.getpid()}-{secrets.token_hex(6)}.tmp")


_TEMP_NAME = re.compile(r"\..+\.(\d+)-[0-9a-f]{12}\.tmp")  # what _temp_path makes


def _process_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs (POSIX; elsewhere every process counts as running)."""
    if os.name != "posix" or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's), or we cannot tell
        return False
    return False


def _sweep_stale(folder: Path) -> None:
    """Remove the temporary files that processes which no longer run (a killed run or export)
    left in ``folder``. Files of running processes, this one included, are never touched."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    gone: dict[int, bool] = {}
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match is None:
            continue
        pid = int(match[1])
        if pid not in gone:
            gone[pid] = _process_gone(pid)
        if gone[pid]:
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)


def sweep_stale_files(root: str | os.PathLike[str]) -> int:
    """Remove the hidden temporary files (``.NAME.PID-XXXXXXXXXXXX.tmp``) that processes which
    no longer run left anywhere under ``root``; return how many were removed. A run calls this
    on its folder once it holds the folder's lock (:mod:`vlmkit.runlock`)."""
    removed = 0
    for folder, _dirs, names in os.walk(root):
        if any(_TEMP_NAME.fullmatch(name) for name in names):
            before = sum(1 for name in names if _TEMP_NAME.fullmatch(name))
            _sweep_stale(Path(folder))
            after = sum(1 for name in os.listdir(folder) if _TEMP_NAME.fullmatch(name))
            removed += before - after
    return removed


def _fsync_file(path: str | os.PathLike[str]) -> None:
    # POSIX fsyncs through a read-only descriptor; Windows needs one open for writing.
    flags = os.O_RDWR | getattr(os, "O_BINARY", 0) if os.name == "nt" else os.O_RDONLY
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(folder: Path) -> bool:
    """Flush the whole file system holding ``folder`` in one call (Linux ``syncfs(2)``, which
    also reports write-back errors since 5.8); False where the platform has no such call."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    call = getattr(libc, "syncfs", None)
    if call is None:
        return False
    fd = os.open(folder, os.O_RDONLY)
    try:
        if call(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"syncfs failed: {os.strerror(errno)}", str(folder))
    finally:
        os.close(fd)
    return True


def _fsync_files(paths: list[str]) -> None:
    """Make ``paths`` durable: many files by flushing each file system that holds them once
    (``syncfs``, Linux), otherwise one fsync each, several at once (fsync releases the GIL)."""
    if len(paths) >= SYNCFS_FROM:
        devices: dict[int, Path] = {}
        for folder in dict.fromkeys(os.path.dirname(path) for path in paths):
            devices.setdefault(os.stat(folder).st_dev, Path(folder))
        if all([_syncfs(folder) for folder in devices.values()]):
            return
    if len(paths) <= 2:
        for path in paths:
            _fsync_file(path)
        return
    with ThreadPoolExecutor(min(_FSYNC_THREADS, len(paths))) as pool:
        for _ in pool.map(_fsync_file, paths):
            pass


@contextlib.contextmanager
def _temp_file(
    target: Path,
    mode: str,
    encoding: str | None,
    newline: str | None,
    *,
    sync: bool = True,
    temp: Path | None = None,
) -> Iterator[tuple[IO[Any], Path]]:
    """A new temporary file next to ``target`` (named ``temp``, else a new random name),
    flushed (and fsynced, with ``sync``) when the block ends cleanly, and removed when it
    raises."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic writes support mode 'w' or 'wb', got {mode!r}")
    temp = temp or _temp_path(target)
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
            yield handle, temp
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise


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
    with _temp_file(target, mode, encoding, newline) as (handle, temp):
        yield handle
    try:
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
    """Write ``text`` to ``path`` atomically (no newline translation); return the path.

    Text the encoding cannot hold raises :class:`UnicodeEncodeError` before the target is
    touched; pass ``utf8_safe(text)`` where replacing such characters is acceptable.
    """
    with atomic_open(path, "w", encoding=encoding, newline="") as handle:
        handle.write(text)
    return Path(path)


class Staging:
    """A group of files written now and moved into place together by :meth:`commit`.

    Each ``write_*``/``open``/``place`` call writes one file in full under a hidden temporary
    name next to its target, creating folders as needed; the target itself is not touched.
    :meth:`commit` then fsyncs the written files (together), renames every staged file over its
    target in staging order and fsyncs the folders: only a crash during that burst of renames
    can leave some targets new and others old. :meth:`discard` removes the staged files and the
    folders staging created (when empty). Staging a target again replaces its staged content but
    keeps its position. Thread-safe.

    A sink stages one or two files per image, so the per-file work and memory are kept to the
    file itself: a folder is looked up once until the commit, a written file is one create, one
    write and one close, and what is held per file until the commit is its target (as text)
    and a number, from which its temporary name follows (``.NAME.PID-NUMBER.tmp``). The numbers
    come from a generator seeded once: the operating system's randomness cost more than the
    file, and an ``O_EXCL`` create or a link never replaces a file, whatever its name. A
    staging belongs to the process that made it (its temporary names carry that process's id).
    """

    def __init__(self) -> None:
        # target -> number of its temporary file (see _temp); _WRITTEN set: written by us, so
        # fsynced at the commit (a link holds the source's data)
        self._files: dict[str, int] = {}
        self._pid = os.getpid()
        self._made: list[str] = []  # folders created for staged files, parents first
        # Folders already made or found since the last commit/discard: a sink staging one file
        # per image into one folder checks that folder once, not once per file.
        self._ready: set[str] = set()
        self._new: set[str] = set()  # the folders of _made, for made()
        self._names = random.Random(os.urandom(16))
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._files)

    @property
    def targets(self) -> list[Path]:
        """The targets staged so far, in commit order."""
        with self._lock:
            return [Path(target) for target in self._files]

    def target_names(self) -> list[str]:
        """The targets staged so far, in commit order, as the text they were staged under."""
        with self._lock:
            return list(self._files)

    def made(self, folder: str | os.PathLike[str]) -> bool:
        """Whether this staging created ``folder`` since the last commit or discard. Such a
        folder holds nothing but staged temporary files, so no target in it exists yet: a sink
        need not look for one there."""
        return os.fspath(folder) in self._new

    def _temp(self, target: str, number: int) -> str:
        """The hidden temporary file ``number`` of ``target``, next to it (the pattern of
        :func:`_temp_path`; :func:`sweep_stale_files` knows it)."""
        folder, name = os.path.split(target)
        token = number & _TOKEN
        return os.path.join(folder, f".{name[:40]}.{self._pid}-{token:012x}.tmp")

    def _number(self, *, written: bool) -> int:
        return self._names.getrandbits(48) | (_WRITTEN if written else 0)

    def read_bytes(self, path: str | os.PathLike[str]) -> bytes:
        """What is staged for ``path`` (read back from its temporary file); raises
        :class:`KeyError` when nothing is."""
        target = os.fspath(path)
        with self._lock:
            number = self._files[target]
        with open(self._temp(target, number), "rb") as handle:
            return handle.read()

    def _make_parent(self, folder: str) -> None:
        if folder in self._ready:
            return
        # Looked up, made and recorded under the lock: two threads making sibling folders
        # under one new folder must record the parent before either child (a discard
        # removes them in reverse).
        with self._lock:
            missing: list[str] = []
            current = folder
            while current and not os.path.exists(current) and current != os.path.dirname(current):
                missing.append(current)
                current = os.path.dirname(current)
            if missing:  # (a file where a folder should be fails at the file's creation)
                os.makedirs(folder, exist_ok=True)
            self._made.extend(reversed(missing))
            self._new.update(missing)
            self._ready.add(folder)

    def _register(self, target: str, number: int) -> None:
        with self._lock:
            previous = self._files.get(target)
            self._files[target] = number
        if previous is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temp(target, previous))

    @contextlib.contextmanager
    def open(
        self,
        path: str | os.PathLike[str],
        mode: str = "wb",
        *,
        encoding: str | None = None,
        newline: str | None = None,
    ) -> Iterator[IO[Any]]:
        """Stage ``path``: like :func:`atomic_open`, but the target changes only at commit."""
        target = os.fspath(path)
        self._make_parent(os.path.dirname(target))
        number = self._number(written=True)
        temp = Path(self._temp(target, number))
        opened = _temp_file(Path(target), mode, encoding, newline, sync=False, temp=temp)
        with opened as (handle, _same):
            yield handle
        self._register(target, number)

    def write_bytes(self, path: str | os.PathLike[str], data: bytes) -> Path:
        """Stage ``data`` as the file ``path``: one create, one write, one close."""
        target = os.fspath(path)
        self._make_parent(os.path.dirname(target))
        number = self._number(written=True)
        temp = self._temp(target, number)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666)
        try:
            written = os.write(fd, data)
            if written < len(data):  # a short write (a signal, a nearly full disk): go on
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        try:
            os.close(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        self._register(target, number)
        return Path(path)

    def write_text(self, path: str | os.PathLike[str], text: str) -> Path:
        """Stage ``text`` as UTF-8 (no newline translation). Run it through
        :func:`utf8_safe` first where it may hold lone surrogates."""
        return self.write_bytes(path, text.encode("utf-8"))

    def place(
        self, path: str | os.PathLike[str], source: str | os.PathLike[str], *, link: bool
    ) -> bool:
        """Stage a copy of the file ``source`` at ``path``: a hard link when ``link`` and the
        file system allows it, else a byte copy. Returns whether it was linked. Raises
        :class:`OSError` when ``source`` cannot be found (or, for a copy, read)."""
        target = os.fspath(path)
        folder = os.path.dirname(target)
        if link and folder in self._ready:  # the common case: one link, nothing looked up
            number = self._number(written=False)  # the source's own data: nothing to fsync
            try:
                os.link(source, self._temp(target, number))
            except OSError:
                pass  # the careful way below finds out why
            else:
                self._register(target, number)
                return True
        with open(source, "rb"):  # a missing or unreadable source fails before any folder is made
            pass
        self._make_parent(folder)
        if link:
            number = self._number(written=False)
            temp = self._temp(target, number)
            try:
                os.link(source, temp)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                if not os.path.isfile(source):
                    raise
            else:
                self._register(target, number)
                return True
        with self.open(target, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        return False

    def commit(self) -> FileList:
        """fsync the staged files, move every one into place (staging order); return the
        targets (a :class:`~vlmkit.FileList`: read it as a list of paths).

        If an fsync or a rename fails, the files not yet moved are discarded (with the folders
        staging created, when empty) and the error is raised."""
        with self._lock:
            files, self._files = self._files, {}
            made, self._made = self._made, []
            self._ready, self._new = set(), set()
        done: list[str] = []
        temps = {target: self._temp(target, number) for target, number in files.items()}
        try:
            _fsync_files([temps[t] for t, number in files.items() if number & _WRITTEN])
            for target, temp in temps.items():
                os.replace(temp, target)
                done.append(target)
        except BaseException:
            _remove(list(temps.values())[len(done) :])  # moved in order: the rest
            _remove_empty(made)
            raise
        for folder in dict.fromkeys(os.path.dirname(target) for target in done):
            _fsync_dir(Path(folder))
            _sweep_stale(Path(folder))  # left by a run or export that was killed
        return FileList(done)

    def discard(self) -> None:
        """Remove every staged file and the folders created for them (when empty)."""
        with self._lock:
            files, self._files = self._files, {}
            made, self._made = self._made, []
            self._ready, self._new = set(), set()
        _remove(self._temp(target, number) for target, number in files.items())
        _remove_empty(made)


def _remove(paths: Iterable[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _remove_empty(folders: list[str]) -> None:
    """Remove ``folders`` (parents listed first) that are empty, deepest first."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def _is_junction(info: os.stat_result) -> bool:
    """A Windows junction (a link that ``S_ISLNK`` does not report)."""
    tag = getattr(stat, "IO_REPARSE_TAG_MOUNT_POINT", None)
    return tag is not None and getattr(info, "st_reparse_tag", None) == tag


@functools.lru_cache(maxsize=64)
def _resolved_root(root: str) -> Path:
    # Sinks join thousands of keys under one root: resolve the root once, not per key.
    return Path(root).resolve()


def relative_parts(relative: str | PurePath) -> list[str]:
    """The components of an input key as an output path, checked as text only (no file system
    access): the rules of :func:`safe_join` without its symlink check. Raises
    :class:`~vlmkit.SinkError`. For names that are recorded but never written (a COCO
    ``file_name``)."""
    text = relative.as_posix() if isinstance(relative, PurePath) else str(relative)
    if not text:
        raise SinkError("refusing an empty output path")
    if "\x00" in text:
        raise SinkError(f"refusing an output path with a NUL byte: {text!r}")
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        raise SinkError(
            f"refusing output path {text!r}: it holds characters no file name can have"
        ) from None
    # A root (a leading separator, which also starts every UNC path) or a drive letter: what
    # ``PureWindowsPath(text).anchor`` finds, without parsing a path per key (issue 16).
    if text.startswith(("/", "\\")) or _DRIVE.match(text):
        raise SinkError(f"refusing an absolute output path {text!r}; keys must be relative")
    parts = [part for part in re.split(r"[/\\]", text) if part not in ("", ".")]
    if not parts:
        raise SinkError(f"refusing output path {text!r}: it names no file")
    if ".." in parts:
        raise SinkError(f"refusing output path {text!r}: '..' components are not allowed")
    return parts


def safe_join(root: str | os.PathLike[str], relative: str | PurePath) -> Path:
    """Join ``relative`` under ``root`` or raise :class:`~vlmkit.SinkError`.

    ``relative`` is an input key such as ``"holiday/img 1.jpg"``; both ``/`` and ``\\`` count
    as separators. Refused: an empty path, NUL bytes, text the file system cannot encode (a lone
    surrogate), absolute paths, drive letters and UNC paths, ``..`` components, and any path
    that resolves outside ``root`` through a symlink. Empty and ``.`` components are dropped,
    so ``"a//./b"`` is ``root/a/b``.
    """
    text = relative.as_posix() if isinstance(relative, PurePath) else str(relative)
    parts = relative_parts(relative)
    base = Path(root)
    joined = base.joinpath(*parts)
    resolved_root = _resolved_root(os.path.abspath(base))
    # Only a link under the root can lead out of it: look at the components that exist (one
    # lstat each, stopping at the first missing one) rather than resolving every path.
    current = os.path.abspath(base)
    for part in parts:
        current = os.path.join(current, part)
        try:
            info = os.lstat(current)
        except OSError:
            break  # nothing below a missing component exists yet
        if stat.S_ISLNK(info.st_mode) or _is_junction(info):
            resolved = Path(current).resolve()
            if resolved != resolved_root and not resolved.is_relative_to(resolved_root):
                raise SinkError(
                    f"refusing output path {text!r}: it resolves to {resolved}, outside "
                    f"{resolved_root} (a symlink points out of the output folder)"
                )
            current = str(resolved)
    return joined
