"""A run's inputs: files, folders and globs expanded into items with stable keys."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

import attrs

from vlmkit.errors import MediaError
from vlmkit.media import is_image_path

__all__ = ["InputItem", "SkippedInput", "collect_inputs"]


@attrs.frozen(kw_only=True)
class InputItem:
    """One input of a run: its stable key (path relative to the inputs' common root, with
    ``/`` separators) and where it is."""

    key: str
    path: Path


@attrs.frozen(kw_only=True)
class SkippedInput:
    path: Path
    reason: str


def _expand(
    inputs: Iterable[str | os.PathLike[str]], exclude: Path | None = None
) -> tuple[list[Path], list[SkippedInput]]:
    files: list[Path] = []
    skipped: list[SkippedInput] = []
    excluded = exclude.resolve() if exclude is not None else None

    def outside(path: Path) -> bool:  # a run's own outputs are never its inputs
        return excluded is None or not path.resolve().is_relative_to(excluded)

    for raw in inputs:
        text = os.fspath(raw)
        path = Path(text).expanduser()
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file() and outside(p)):
                if found.name.startswith("."):
                    continue
                if is_image_path(found):
                    files.append(found)
                else:
                    skipped.append(SkippedInput(path=found, reason="not an image file"))
        elif path.is_file():
            files.append(path)  # named explicitly: try it, a bad one fails with its reason
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if outside(Path(m)))
            if not matches:
                skipped.append(SkippedInput(path=path, reason="the pattern matched nothing"))
            for found in matches:
                if found.is_file() and is_image_path(found):
                    files.append(found)
                elif found.is_file():
                    skipped.append(SkippedInput(path=found, reason="not an image file"))
        else:
            # a typo must fail before any model call, not show up as one skipped item
            raise MediaError(f"no such file or folder: {text}", source=text)
    return files, skipped


def collect_inputs(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    exclude: str | os.PathLike[str] | None = None,
) -> tuple[list[InputItem], list[SkippedInput], Path | None]:
    """Expand files, folders (recursively) and globs into items with stable keys.

    Returns the items (deduplicated, in sorted order), the inputs skipped with a reason, and
    the root the keys are relative to. Files under ``exclude`` (the run's output folder) are
    left out of folder scans and globs.
    """
    files, skipped = _expand(inputs, Path(exclude) if exclude is not None else None)
    resolved = list(dict.fromkeys(p.resolve() for p in files))
    if not resolved:
        return [], skipped, None
    if len(resolved) == 1:
        root = resolved[0].parent
    else:
        root = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    items = [InputItem(key=p.relative_to(root).as_posix(), path=p) for p in resolved]
    return items, skipped, root
