"""The files a sink wrote: a read-only sequence of paths, held as text, each folder once.

A run over a million images lists two million files (YOLO's label files and its image links)
in its summary. As :class:`~pathlib.Path` objects they took about 0.35 KB each (the object,
its parts, its string); a :class:`FileList` holds each file as its name and the index of its
folder: about 75 B. Reading it is reading a list of paths — ``len``, indexing, slicing,
iteration (each item a ``Path``, built when asked for), ``in``, ``index`` and ``count`` (all
taking a path as text or ``Path``) — and it compares equal to a list or tuple of the same
paths; :meth:`FileList.texts` gives the paths as text without building ``Path`` objects.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

__all__ = ["FileList"]


def _normal(text: str) -> str:
    """``text`` as ``str(Path(text))`` writes it (no doubled separators, ``.`` parts or
    trailing separator), building a ``Path`` only for text that is not written so already."""
    sep, alt = os.sep, os.altsep
    if (
        sep + sep in text
        or f"{sep}.{sep}" in text
        or text.startswith("." + sep)
        or text.endswith((sep, sep + "."))
        or text in ("", ".")
        or (alt is not None and alt in text)
    ):
        return str(Path(text))
    return text


def _key(text: str) -> str:
    """What two paths compare by (case-folded on Windows, like ``Path``)."""
    return os.path.normcase(text)


class FileList(Sequence[Path]):
    """``files`` in their order, as a sequence of :class:`~pathlib.Path`."""

    __slots__ = ("_folder_of", "_folders", "_names")

    def __init__(self, files: Iterable[str | os.PathLike[str]] = ()) -> None:
        index: dict[str, int] = {}
        self._folder_of = array("I")  # per file: its folder's index in _folders
        self._names: list[str] = []
        for file in files:
            folder, name = os.path.split(_normal(os.fspath(file)))
            self._folder_of.append(index.setdefault(folder, len(index)))
            self._names.append(name)
        self._folders = list(index)

    def __len__(self) -> int:
        return len(self._names)

    def _text(self, position: int) -> str:
        return os.path.join(self._folders[self._folder_of[position]], self._names[position])

    @overload
    def __getitem__(self, position: int) -> Path: ...
    @overload
    def __getitem__(self, position: slice) -> FileList: ...
    def __getitem__(self, position: int | slice) -> Path | FileList:
        if isinstance(position, slice):
            return FileList(self._text(i) for i in range(len(self))[position])
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError("FileList index out of range")
        return Path(self._text(position))

    def texts(self) -> Iterator[str]:
        """The paths as text, in order (no ``Path`` objects built)."""
        folders, names = self._folders, self._names
        for folder, name in zip(self._folder_of, names, strict=True):
            yield os.path.join(folders[folder], name)

    def __iter__(self) -> Iterator[Path]:
        return map(Path, self.texts())

    def _positions(self, path: object) -> Iterator[int]:
        if isinstance(path, str | os.PathLike):
            wanted = _key(str(Path(path)))
            yield from (i for i, text in enumerate(self.texts()) if _key(text) == wanted)

    def __contains__(self, path: object) -> bool:
        return next(self._positions(path), None) is not None

    def index(self, path: object, start: int = 0, stop: int | None = None) -> int:
        bounds = range(len(self))[start:stop]
        for i in self._positions(path):
            if i in bounds:
                return i
        raise ValueError(f"{path!r} is not in the FileList")

    def count(self, path: object) -> int:
        return sum(1 for _ in self._positions(path))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FileList | list | tuple):
            return NotImplemented
        if len(other) != len(self):
            return False
        if not isinstance(other, FileList) and not all(
            isinstance(p, str | os.PathLike) for p in other
        ):
            return False  # as a list of Paths compares with other things
        theirs = other.texts() if isinstance(other, FileList) else (str(Path(p)) for p in other)
        return all(_key(a) == _key(b) for a, b in zip(self.texts(), theirs, strict=True))

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which are not hashable

    def __repr__(self) -> str:
        shown = [text for _, text in zip(range(3), self.texts(), strict=False)]
        more = f", ... {len(self)} files" if len(self) > len(shown) else ""
        return f"FileList({shown!r}{more})"

    def __reduce__(self) -> tuple[Any, ...]:
        return FileList, (list(self.texts()),)
