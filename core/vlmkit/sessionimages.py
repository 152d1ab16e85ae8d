"""The Session's image tasks — :meth:`~vlmkit.Session.describe`, ``detect``, ``segment``,
``points`` and ``ocr``: the prompt in the backend's convention, the images loaded, one call
through the pipeline. Defined here, methods of :class:`~vlmkit.Session`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vlmkit.errors import ConfigError
from vlmkit.types import Description, Detections, OcrResult, Points

if TYPE_CHECKING:
    from vlmkit.session import Session

__all__ = ["describe", "detect", "ocr", "points", "segment"]


def describe(
    self: Session,
    images: Any,
    prompt: str | None = None,
    **options: Any,
) -> Description:
    """Ask about one image or several (a list): caption, VQA, comparison."""
    if isinstance(images, (list, tuple)):
        loaded = tuple(self._load(image) for image in images)
    else:
        loaded = (self._load(images),)
    if not loaded:
        raise ConfigError("describe needs at least one image")
    text, labels = self._prompt("describe", prompt, images=len(loaded))
    return self._call(
        "describe", text, images=loaded, labels=labels, options=options, description=prompt
    )


def detect(
    self: Session, image: Any, prompt: str | Sequence[str] | None = None, **options: Any
) -> Detections:
    """Find objects: a prompt, a description of the things to find, or a list of labels."""
    text, labels = self._prompt("detect", prompt)
    return self._call(
        "detect",
        text,
        images=(self._load(image),),
        labels=labels,
        options=options,
        description=prompt,
    )


def segment(
    self: Session,
    image: Any,
    prompt: str | Sequence[str] | None = None,
    *,
    threshold: int = 127,
    **options: Any,
) -> Detections:
    """Find objects with masks (box-local, binarized at ``threshold`` of 0–255)."""
    if not 0 <= int(threshold) <= 255:
        raise ConfigError(f"threshold must be within 0–255, got {threshold}")
    text, labels = self._prompt("segment", prompt)
    return self._call(
        "segment",
        text,
        images=(self._load(image),),
        labels=labels,
        options={**options, "threshold": int(threshold)},
        description=prompt,
    )


def points(
    self: Session, image: Any, prompt: str | Sequence[str] | None = None, **options: Any
) -> Points:
    """Point at things: labelled points in original-image pixels (Google's pointing task).

    ``prompt`` is a list of labels, a short description of the things to point at, or a
    full instruction; without one the model points at up to 10 prominent items.
    """
    text, labels = self._prompt("points", prompt)
    return self._call(
        "points",
        text,
        images=(self._load(image),),
        labels=labels,
        options=options,
        description=prompt,
    )


def ocr(
    self: Session, image: Any, prompt: str | None = None, *, boxes: bool = False, **options: Any
) -> OcrResult:
    """Read the text in an image; ``boxes=True`` asks for a box per block of text."""
    text = prompt if prompt is not None else self._prompt("ocr", None, boxes=boxes)[0]
    if boxes:
        options = {**options, "boxes": True}
    return self._call("ocr", text, images=(self._load(image),), options=options, description=prompt)
