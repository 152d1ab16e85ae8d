"""What a backend is: one primitive, ``generate``, plus a few declarations.

A generic VLM backend subclasses :class:`Backend`, declares its coordinate convention and
options, and implements :meth:`Backend.generate` — images (or a video) and text in, raw text,
usage and finish status out. The core builds the prompts, prepares the images, parses the answer
and maps coordinates back to the original pixels. A backend with a native route for a task
(structured output, a detector that returns boxes directly) also implements that task hook as a
method decorated with ``@vlmkit.hookimpl`` and takes precedence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from vlmkit.errors import VlmkitError
from vlmkit.records import Option
from vlmkit.types import FinishReason, Usage

if TYPE_CHECKING:
    from PIL import Image

    from vlmkit.geometry import Transform
    from vlmkit.media import LoadedImage, ResizePolicy

__all__ = ["Backend", "Generation", "Request", "SentImage", "TaskRequest", "VideoInput"]


def _as_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True, eq=False)
class SentImage:
    """One image as prepared for the model: the pixels to send, the original they came from, and
    the transform between them (so answers can be mapped back exactly).

    A backend that changes the pixels further before sending (its own resize) reports it::

        smaller = sent.image.resize((512, 384))
        return Generation(text=..., transforms=(sent.transform.then_resize(smaller.size),))
    """

    image: Image.Image
    original: LoadedImage
    transform: Transform


@attrs.frozen(kw_only=True)
class VideoInput:
    """A video to reason about: a local path or a provider URI (``gs://...``), with sampling.

    ``fps`` is the sampling rate the model should use; ``start_s``/``end_s`` clip the video.
    """

    source: str
    fps: float | None = None
    start_s: float | None = None
    end_s: float | None = None
    mime_type: str | None = None
    max_frames: int | None = None


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@attrs.frozen(kw_only=True, eq=False)
class Request:
    """What :meth:`Backend.generate` receives: a complete, provider-neutral model call.

    ``json`` says the task expects JSON (a backend may switch on its JSON mode);
    ``response_schema`` is a JSON schema for providers with structured output.
    ``options`` holds the validated per-call options the backend declared; ``labels`` the
    exact class names the caller asked for, if any (a response schema may enforce them).
    """

    task: str
    prompt: str
    images: tuple[SentImage, ...] = attrs.field(default=(), converter=_as_tuple)
    video: VideoInput | None = None
    system: str | None = None
    json: bool = False
    response_schema: dict[str, Any] | None = None
    options: dict[str, Any] = attrs.field(factory=dict, converter=_dict)
    labels: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple)  # exact classes asked


@attrs.frozen(kw_only=True)
class Generation:
    """What a model produced for one :class:`Request`.

    ``text`` is ``None`` when the model gave no text (blocked, empty). ``finish`` says why it
    stopped. ``transforms`` overrides the request's image transforms when the backend changed
    the images further before sending (for example its own resize:
    ``sent.transform.then_resize(new_size)``); without it boxes are mapped from the image the
    core prepared, and land in the wrong place — ``vlmkit.testing.check_backend`` catches that.
    """

    text: str | None
    usage: Usage = attrs.field(factory=Usage)
    finish: FinishReason = attrs.field(default=FinishReason.STOP, converter=FinishReason)
    model: str | None = None
    transforms: tuple[Transform, ...] | None = None
    detail: str | None = None  # e.g. the provider's block reason, for error messages


@attrs.frozen(kw_only=True, eq=False)
class TaskRequest:
    """One task call as the Session hands it to the task hooks.

    ``prompt`` is the finished prompt, written for the backend's declared convention (or from
    its ``prompt_templates``). What the user asked for is kept too, so a native route can
    rebuild the prompt its model was trained on: ``labels`` is set when the caller gave a list
    of classes, ``description`` holds the caller's own text (the things to find, "the main
    objects", or a full instruction; ``None`` when they gave labels or nothing).
    ``images`` are loaded, upright originals; ``options`` are the backend's validated per-call
    options; ``settings`` holds core settings of the call (``threshold`` for masks,
    ``system``, ...).
    """

    task: str
    prompt: str
    images: tuple[LoadedImage, ...] = attrs.field(default=(), converter=_as_tuple)
    video: VideoInput | None = None
    labels: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple)
    description: str | None = None
    options: dict[str, Any] = attrs.field(factory=dict, converter=_dict)
    settings: dict[str, Any] = attrs.field(factory=dict, converter=_dict)


class Backend:
    """Base class of every backend. Subclass it, set the declarations, implement ``generate``.

    Declarations (class attributes, overridable per instance):

    * ``convention`` — how the model writes boxes: ``"yxyx-1000"`` (Gemini, Gemma),
      ``"xyxy-pixels"`` (Qwen), ``"loc-1024"`` (PaliGemma), ``"xyxy-1"``, ...
    * ``options`` — per-call options (:class:`vlmkit.Option`) users may pass as keywords.
    * ``image_policy`` — how the core prepares images before ``generate`` (a
      :class:`vlmkit.media.ResizePolicy`; ``None`` sends the original pixels).
    * ``max_images`` — images per request (``None``: no limit).
    * ``concurrency`` — requests a runner should keep in flight (API backends: many).
    * ``batch_size`` — requests :meth:`generate_batch` handles at once (local models).
    * ``thread_safe`` — whether ``generate`` may be called from many threads at once.
    * ``sends_image_files`` — whether ``generate`` may send an unchanged image's own file bytes
      (``encode_image(sent.original)`` with format ``"auto"``) rather than its pixels: the
      Session then only checks an upright JPEG it loads (:mod:`vlmkit.jpegcheck`) and decodes
      its pixels if the backend uses them. Leave it False if the backend reads the pixels.
    * ``prompt_templates`` — the backend's own prompt per template name (see
      :data:`vlmkit.prompts.TEMPLATE_NAMES`), replacing the built-in one chosen for its
      convention: ``{"detect": "Locate every {things}. Report bbox_2d in JSON."}``.
    """

    convention: str = "yxyx-1000"
    options: Sequence[Option] = ()
    image_policy: ResizePolicy | None = None
    max_images: int | None = None
    concurrency: int = 1
    batch_size: int = 1
    thread_safe: bool = True
    sends_image_files: bool = False
    prompt_templates: Mapping[str, str] = MappingProxyType({})

    #: the model this instance talks to (set by subclasses)
    model: str | None = None

    def generate(self, request: Request) -> Generation:
        """Run one model call. Raise :class:`vlmkit.BackendError` subclasses on failure."""
        raise NotImplementedError(f"{type(self).__name__} does not implement generate()")

    def generate_batch(self, requests: Sequence[Request]) -> list[Generation | VlmkitError]:
        """Run several calls; the default runs them one after another.

        Local-model backends override this to generate together (and set ``batch_size``).
        Return one entry per request, in order: a :class:`Generation` or the error for it.
        """
        results: list[Generation | VlmkitError] = []
        for request in requests:
            try:
                results.append(self.generate(request))
            except VlmkitError as err:
                results.append(err)
        return results

    def close(self) -> None:
        """Release clients, weights and files. The Session calls it once."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
