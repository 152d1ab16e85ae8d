"""Scripted answers for :class:`~vlmkit_gemini.testing.FakeGemini`: per image, or from a function.

An answer spec is what ``FakeGemini.add_rule(text=...)`` and ``FakeGemini(default_text=...)``
accept: a string, a JSON-able list or dict (sent as its JSON text), or a function of the
:class:`~vlmkit_gemini.testing.RecordedRequest` that returns one of those.

:class:`ImageAnswers` answers each request by the image it carries. Images are recognised by
their pixels, not their bytes: vlmkit (like most clients) re-encodes and may shrink an image
before sending it, so both sides are reduced to a 16×16 colour thumbnail (EXIF orientation
applied) and the nearest one within a tolerance wins::

    from vlmkit_gemini.testing import FakeGemini, ImageAnswers

    with FakeGemini() as fake:
        answers = ImageAnswers(
            {"photos/cat.jpg": [{"box_2d": [100, 200, 500, 600], "label": "cat"}]},
            default="[]",  # any other image
            fake=fake,  # only needed to read images sent through the Files API
        )
        fake.add_rule(text=answers)

:func:`load_function` imports an answer function named ``module:function`` or
``path/to/file.py:function``, for the ``--answer-function`` option of
``python -m vlmkit_gemini.testing``. Pillow and NumPy (dependencies of vlmkit) are imported
inside the functions.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from vlmkit_gemini.testing.fake_server import FakeGemini, RecordedRequest

__all__ = ["DEFAULT_TOLERANCE", "ImageAnswers", "load_function", "true_answers"]

#: Largest mean difference (0–255 per channel) between two thumbnails of "the same image".
#: Re-encoding and resizing a photo stays well below 5; two different photos are far above 30.
DEFAULT_TOLERANCE = 12.0
_THUMBNAIL = (16, 16)

AnswerSpec = str | list[Any] | dict[str, Any] | Callable[["RecordedRequest"], Any]


def _fingerprint(data: bytes | str | os.PathLike[str]) -> np.ndarray:
    """A 16×16 RGB thumbnail (float32) of an encoded image or an image file."""
    import io

    import numpy as np
    from PIL import Image, ImageOps

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(source) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
    small = upright.resize(_THUMBNAIL, Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32)


class ImageAnswers:
    """An answer function that looks up the request's first image in a table of images.

    ``answers`` maps an image file (a path, relative to ``base_dir`` if given) to the answer
    spec for requests that send that image. Requests without a known image get ``default``;
    with ``default=None`` such a request is answered with an error (HTTP 500) that names the
    problem, so a test notices an image it did not expect. ``fake`` lets images uploaded
    through the Files API be recognised too.
    """

    def __init__(
        self,
        answers: Mapping[str | os.PathLike[str], AnswerSpec],
        *,
        default: AnswerSpec | None = None,
        fake: FakeGemini | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> None:
        base = Path(base_dir) if base_dir is not None else None
        self._table: list[tuple[str, np.ndarray, AnswerSpec]] = []
        for key, answer in answers.items():
            path = Path(key)
            if base is not None and not path.is_absolute():
                path = base / path
            try:
                fingerprint = _fingerprint(path)
            except (OSError, ValueError) as err:
                raise ValueError(
                    f"scripted answer for {str(key)!r}: cannot read {path} as an image ({err}); "
                    "keys are image files, relative to the answers file's folder"
                ) from err
            self._table.append((str(key), fingerprint, answer))
        self.default = default
        self.fake = fake
        self.tolerance = tolerance

    @classmethod
    def from_json(
        cls,
        path: str | os.PathLike[str],
        *,
        default: AnswerSpec | None = None,
        fake: FakeGemini | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> ImageAnswers:
        """Read ``{"image file": answer, ...}`` from a JSON file; files are relative to it."""
        file = Path(path)
        try:
            table = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read the answers file {file}: {err}") from err
        if not isinstance(table, dict):
            raise ValueError(
                f"the answers file {file} must hold a JSON object mapping image files to "
                f"answers, not a {type(table).__name__}"
            )
        return cls(table, default=default, fake=fake, base_dir=file.parent, tolerance=tolerance)

    @property
    def images(self) -> list[str]:
        """The image keys, in table order."""
        return [key for key, _, _ in self._table]

    def lookup(self, image: bytes) -> str | None:
        """The key of the table image that ``image`` (encoded bytes) shows, or None."""
        import numpy as np

        if not self._table:
            return None
        probe = _fingerprint(image)
        distances = [float(np.abs(probe - known).mean()) for _, known, _ in self._table]
        best = int(np.argmin(distances))
        return self._table[best][0] if distances[best] <= self.tolerance else None

    def __call__(self, request: RecordedRequest) -> Any:
        image = _first_image(request, self.fake)
        key = self.lookup(image) if image is not None else None
        if key is None:
            if self.default is None:
                what = "no image" if image is None else "an image that is not in the table"
                raise LookupError(
                    f"the request carries {what} and no default answer is set "
                    f"(known images: {', '.join(self.images) or 'none'})"
                )
            answer: Any = self.default
        else:
            answer = next(spec for known, _, spec in self._table if known == key)
        return answer(request) if callable(answer) else answer


def _first_image(request: RecordedRequest, fake: FakeGemini | None) -> bytes | None:
    """The encoded bytes of the request's first image: inline, or uploaded to ``fake``."""
    for mime, data in request.inline_data:
        if mime.startswith("image/"):
            return data
    if fake is not None:
        for mime, uri in request.file_data:
            if mime.startswith("image/") and "/files/" in uri:
                try:
                    return fake.file_bytes(uri.rsplit("/", 1)[-1])
                except KeyError:
                    continue
    return None


def true_answers(
    fake: FakeGemini | None = None, *, convention: str = "yxyx-1000"
) -> Callable[[RecordedRequest], str]:
    """An answer function computed from the pixels each request carries: what a perfect model
    answers for the coloured squares of :func:`vlmkit.testing.oracle_samples` (or any image
    with squares of :data:`vlmkit.testing.oracle.TARGET_COLORS`), by
    :func:`vlmkit.testing.true_answer`. The task is read from the prompt the way Gemini would:
    points when it asks for ``"point"``, masks when it asks for ``"mask"``, boxes otherwise::

        fake.add_rule(text=true_answers(fake))
    """
    from vlmkit.testing import true_answer

    def answer(request: RecordedRequest) -> str:
        image = _first_image(request, fake)
        if image is None:
            raise LookupError("the request carries no image to answer about")
        prompt = request.prompt_text
        task = "points" if '"point"' in prompt else "segment" if '"mask"' in prompt else "detect"
        return true_answer(image, convention, task=task)

    return answer


def load_function(spec: str) -> Callable[[RecordedRequest], Any]:
    """Import ``module:function`` or ``path/to/file.py:function`` and return the function."""
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name.isidentifier():
        raise ValueError(
            f"answer function {spec!r}: write it as module:function or path/to/file.py:function"
        )
    if target.endswith(".py"):
        path = Path(target)
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None or module_spec.loader is None or not path.is_file():
            raise ValueError(f"answer function {spec!r}: no Python file at {path}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    function = getattr(module, name, None)
    if not callable(function):
        raise ValueError(f"answer function {spec!r}: {target} has no function {name!r}")
    return function
