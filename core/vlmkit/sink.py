"""The sink interface: how results leave vlmkit (files, annotated images, datasets).

A sink is built once per run with an output folder, receives every finished item through
:meth:`Sink.write`, and writes its files in :meth:`Sink.close` — atomically, so a crash never
leaves a half-written dataset. Sinks only ever see normalized results (original-image pixels,
box-local masks); provider quirks never reach them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import attrs

from vlmkit.types import Result

__all__ = ["Sink", "SinkItem"]


@attrs.frozen(kw_only=True)
class SinkItem:
    """One finished input of a run.

    ``key`` identifies the input within the run: its path relative to the run's input root,
    with ``/`` separators (it comes from the user's file names, never from model output).
    ``image_path`` is where the pixels can be read again (for annotation), when known.
    """

    key: str
    result: Result
    image_path: Path | None = None
    image_size: tuple[int, int] | None = None


class Sink:
    """Base class of output sinks. Subclasses set ``accepts`` and implement ``write``/``close``."""

    accepts: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, out_dir: str | Path, **options: Any) -> None:
        self.out_dir = Path(out_dir)
        self.options = options

    def write(self, item: SinkItem) -> None:
        raise NotImplementedError

    def close(self) -> list[Path]:
        """Finish writing; return the files written."""
        return []

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
