"""Helpers shared by the built-in sinks: option coercion and the two-phase staged sink."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vlmkit.atomic import Staging
from vlmkit.errors import ConfigError
from vlmkit.sink import Sink

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def reject_unknown(sink: str, options: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse options a sink does not know, naming the ones it does."""
    if options:
        raise ConfigError(
            f"unknown option(s) for sink {sink!r}: {sorted(options)}; known: {sorted(known)}"
        )


def as_bool(name: str, value: Any) -> bool:
    """A bool option given as a bool or as text (``--option copy_images=true`` on the CLI)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"option {name}={value!r} is not a boolean (use true or false)")


def as_names(name: str, value: Any) -> list[str] | None:
    """A list of class names given as a list or as comma-separated text."""
    if value is None:
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    raise ConfigError(f"option {name}={value!r} must be a list of class names")


def as_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    text = str(value).strip().lower()
    allowed = list(choices)
    if text not in allowed:
        raise ConfigError(f"option {name}={value!r} is not allowed; choose one of {allowed}")
    return text


class StagedSink(Sink):
    """A sink whose files appear together, in two phases.

    :meth:`write` stages per-item files (hidden temporary files next to their targets, see
    :class:`vlmkit.atomic.Staging`); :meth:`prepare` stages the dataset-level files (everything
    that can fail — rendering, encoding, a full disk — happens up to here); :meth:`commit`
    moves all of them into place, per-item files first and dataset-level files last;
    :meth:`discard` drops what is staged. :meth:`close` is ``prepare`` + ``commit`` (and
    ``discard`` when that fails); leaving a ``with`` block by an exception discards.
    :func:`vlmkit.export.export` drives the phases across all its sinks, so a failed export
    changes no file of any built-in sink.
    """

    def __init__(self, out_dir: str | Path, **options: Any) -> None:
        super().__init__(out_dir, **options)
        self.staging = Staging()
        self._files: dict[Path, None] = {}  # every file committed, in order
        self._prepared = False

    def _prepare(self) -> None:
        """Stage the dataset-level files (subclasses)."""

    def _note(self, path: Path) -> None:
        """Count ``path`` among this sink's files without staging it (already in place)."""
        self._files[path] = None

    def prepare(self) -> None:
        if not self._prepared:
            self._prepare()
            self._prepared = True

    def commit(self) -> list[Path]:
        self.prepare()
        for path in self.staging.commit():
            self._files[path] = None
        self._prepared = False  # a later write + close restages the dataset-level files
        return list(self._files)

    def discard(self) -> None:
        self.staging.discard()
        self._prepared = False

    def close(self) -> list[Path]:
        try:
            return self.commit()
        except BaseException:
            self.discard()
            raise

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.discard()
