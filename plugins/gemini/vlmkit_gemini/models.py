"""What each Gemini model accepts: the per-model capability table.

Google ships models faster than any library can follow, and models differ in ways that turn a
good request into a 400: Gemini 2.5 takes ``thinking_budget`` (Flash accepts 0, Pro does not),
Gemini 3.x takes ``thinking_level`` and emits polygon masks instead of PNG masks. One immutable
table, matched by model-name pattern (first match wins), holds these facts: :data:`MODEL_TABLE`.

Nothing here is changed in place, so one Session's additions never reach another. Extend the
table for one backend instance instead::

    from vlmkit_gemini.models import ModelCaps

    caps = ModelCaps(thinking="level", levels=("low", "high"), spatial_thinking="low",
                     mask_format="polygon")
    vlmkit.Session(backend="gemini-api", model="gemini-9-pro", capabilities={"gemini-9*": caps})

``capabilities=`` also takes one :class:`ModelCaps` (for the backend's model) or a whole
:class:`ModelTable` (``MODEL_TABLE.extended({...})`` builds one from the defaults). An unknown
model gets :data:`DEFAULT_CAPS` (no thinking setting sent unless you ask, PNG masks) and a logged
note.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, Literal, Self, TypeVar, cast

import attrs

from vlmkit import ConfigError

__all__ = [
    "DEFAULT_CAPS",
    "MODEL_TABLE",
    "ModelCaps",
    "ModelTable",
    "PatternTable",
    "caps_for",
    "normalize_model",
]

log = logging.getLogger(__name__)

ThinkingKnob = Literal["budget", "level"]
MaskFormat = Literal["png", "polygon"]
_LEVELS = ("minimal", "low", "medium", "high")
_RESOLUTIONS = ("low", "medium", "high", "ultra_high")
T = TypeVar("T")


def _check_choice(allowed: tuple[str | None, ...]) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in allowed:
            raise ConfigError(f"ModelCaps.{attribute.name} must be one of {allowed}, got {value!r}")

    return check


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class ModelCaps:
    """The facts about one model (family) that change what vlmkit sends.

    * ``thinking`` — which knob the model takes: ``"budget"`` (``thinking_budget`` tokens, Gemini
      2.5), ``"level"`` (``thinking_level``, Gemini 3.x) or ``None`` (no thinking setting).
    * ``zero_budget`` / ``budget_min`` / ``budget_max`` — the ``thinking_budget`` values accepted
      (``-1`` means dynamic and is always accepted by budget models).
    * ``levels`` — the ``thinking_level`` values accepted.
    * ``spatial_thinking`` — what to send for detect, segment and OCR-with-boxes when the caller
      set nothing: Google advises minimal thinking for spatial tasks (``0``, the lowest budget, or
      a level); ``None`` sends nothing.
    * ``mask_format`` — what segmentation returns: ``"png"`` (base64 PNG crops, Gemini 2.5) or
      ``"polygon"`` (``{"boxes": [...]}`` with polygon masks, Gemini 3.x).
    * ``image_media_resolution`` / ``video_media_resolution`` — ``media_resolution`` sent when the
      caller set none (``None``: the server's default).
    * ``resolutions`` — the ``media_resolution`` values the model accepts (``ultra_high``: images
      on Gemini 3.x only); ``part_media_resolution`` — whether it is set per media part (Gemini
      3.x) rather than once for the whole request (Gemini 2.5).
    * ``detection`` / ``segmentation`` — whether the model is trained for them.
    * ``structured_output`` / ``system_instruction`` — whether JSON mode with a response schema
      and system instructions are accepted (Gemma models on the Gemini API take neither).
    """

    thinking: ThinkingKnob | None = attrs.field(
        default=None, validator=_check_choice(("budget", "level", None))
    )
    zero_budget: bool = True
    budget_min: int = 0
    budget_max: int = 32768
    levels: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    spatial_thinking: int | str | None = None
    mask_format: MaskFormat | None = attrs.field(
        default="png", validator=_check_choice(("png", "polygon", None))
    )
    image_media_resolution: str | None = attrs.field(
        default=None, validator=_check_choice((*_RESOLUTIONS, None))
    )
    video_media_resolution: str | None = attrs.field(
        default=None, validator=_check_choice((*_RESOLUTIONS, None))
    )
    resolutions: tuple[str, ...] = attrs.field(
        default=("low", "medium", "high"), converter=_str_tuple
    )
    part_media_resolution: bool = False
    detection: bool = True
    segmentation: bool = True
    structured_output: bool = True
    system_instruction: bool = True
    known: bool = True  # False for the defaults an unknown model gets

    @resolutions.validator
    def _check_resolutions(self, _attribute: object, value: tuple[str, ...]) -> None:
        unknown = [r for r in value if r not in _RESOLUTIONS]
        if unknown:
            raise ConfigError(
                f"ModelCaps.resolutions: unknown value(s) {unknown}; known: {_RESOLUTIONS}"
            )

    def resolution_problem(self, resolution: str, *, video: bool = False) -> str | None:
        """Why ``media_resolution=resolution`` would be refused, or ``None`` if accepted."""
        if resolution not in self.resolutions:
            return "this model accepts media_resolution " + " / ".join(self.resolutions)
        if resolution == "ultra_high" and video:
            return "ultra_high is for images only; use high (or lower) for video"
        return None

    @levels.validator
    def _check_levels(self, _attribute: object, value: tuple[str, ...]) -> None:
        unknown = [level for level in value if level not in _LEVELS]
        if unknown:
            raise ConfigError(f"ModelCaps.levels: unknown level(s) {unknown}; known: {_LEVELS}")

    def __attrs_post_init__(self) -> None:
        spatial = self.spatial_thinking
        if spatial is None:
            return
        if self.thinking == "budget" and not isinstance(spatial, int):
            raise ConfigError("ModelCaps.spatial_thinking must be a budget (int) for budget models")
        if self.thinking == "level" and spatial not in self.levels:
            raise ConfigError(
                f"ModelCaps.spatial_thinking {spatial!r} is not one of the levels {self.levels}"
            )
        if self.thinking is None:
            raise ConfigError("ModelCaps.spatial_thinking needs a thinking knob")

    def budget_problem(self, budget: int) -> str | None:
        """Why ``thinking_budget=budget`` would be refused, or ``None`` if it is accepted."""
        if self.thinking is None:
            return "this model has no thinking setting; omit thinking_budget"
        if self.thinking == "level":
            return "this model takes thinking_level (" + ", ".join(self.levels) + "), not a budget"
        if budget == -1:
            return None
        if budget == 0:
            if self.zero_budget:
                return None
            return (
                f"this model cannot turn thinking off; its lowest thinking_budget is "
                f"{self.budget_min} (or -1 for dynamic)"
            )
        if not self.budget_min <= budget <= self.budget_max:
            return (
                f"thinking_budget must be within {self.budget_min}–{self.budget_max}"
                + (", 0 (off)" if self.zero_budget else "")
                + " or -1 (dynamic)"
            )
        return None

    def level_problem(self, level: str) -> str | None:
        """Why ``thinking_level=level`` would be refused, or ``None`` if it is accepted."""
        if self.thinking is None:
            return "this model has no thinking setting; omit thinking_level"
        if self.thinking == "budget":
            return "this model takes thinking_budget (tokens), not thinking_level"
        if level not in self.levels:
            return "this model accepts thinking_level " + " / ".join(self.levels)
        return None


def normalize_model(model: str) -> str:
    """``models/gemini-2.5-flash`` or ``publishers/google/models/...`` → ``gemini-2.5-flash``."""
    name = model.strip()
    for prefix in ("publishers/google/models/", "models/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name.lower()


class PatternTable(Generic[T]):
    """An immutable, ordered ``(model-name pattern, value)`` table; the first match wins.

    Patterns are :mod:`fnmatch` patterns over the normalized (lower-case, prefix-free) model
    name. Tables are never changed in place: :meth:`extended` returns a new table with the given
    entries ahead of this one's, which is how one backend instance adds or overrides entries
    without touching anyone else's.
    """

    __slots__ = ("_entries",)
    _entries: tuple[tuple[str, T], ...]

    def __init__(self, entries: Iterable[tuple[str, Any]] = ()) -> None:
        checked = []
        for pattern, value in entries:
            if not isinstance(pattern, str) or not pattern.strip():
                raise ConfigError(f"a model pattern must be a non-empty string, got {pattern!r}")
            checked.append((pattern.strip().lower(), self._coerce(pattern, value)))
        object.__setattr__(self, "_entries", tuple(checked))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use .extended(...)")

    def _coerce(self, pattern: str, value: Any) -> T:
        """Check (and convert) one entry's value; subclasses say what a value must be."""
        return cast(T, value)

    @property
    def entries(self) -> tuple[tuple[str, T], ...]:
        return self._entries

    def extended(self, entries: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> Self:
        """A new table: ``entries`` (in their order) ahead of this table's own."""
        items = entries.items() if isinstance(entries, Mapping) else entries
        return type(self)([*items, *self._entries])

    def lookup(self, model: str) -> T | None:
        """The value of the first pattern matching ``model``, or ``None``."""
        name = normalize_model(model)
        for pattern, value in self._entries:
            if fnmatch.fnmatchcase(name, pattern):
                return value
        return None

    def __iter__(self) -> Iterator[tuple[str, T]]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatternTable) or type(other) is not type(self):
            return NotImplemented
        return self._entries == other._entries

    def __hash__(self) -> int:
        return hash((type(self), self._entries))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._entries)} entries)"


class ModelTable(PatternTable[ModelCaps]):
    """Model-name pattern → :class:`ModelCaps`; see :data:`MODEL_TABLE`."""

    __slots__ = ()

    def _coerce(self, pattern: str, value: Any) -> ModelCaps:
        if not isinstance(value, ModelCaps):
            raise ConfigError(
                f"the capabilities for {pattern!r} must be a vlmkit_gemini.models.ModelCaps, "
                f"got {type(value).__name__}"
            )
        return value

    def caps_for(self, model: str) -> ModelCaps:
        """The capabilities of ``model`` (first matching pattern), or :data:`DEFAULT_CAPS`."""
        found = self.lookup(model)
        if found is not None:
            return found
        log.info(
            "vlmkit-gemini: model %r is not in the capability table; sending no thinking "
            "setting unless asked and expecting PNG masks. Pass capabilities={pattern: "
            "ModelCaps(...)} (or one ModelCaps) to the backend to describe it.",
            normalize_model(model),
        )
        return DEFAULT_CAPS


_FLASH_25 = ModelCaps(
    thinking="budget",
    zero_budget=True,
    budget_min=1,
    budget_max=24576,
    spatial_thinking=0,
    mask_format="png",
)


def _gemini3(levels: tuple[str, ...], spatial: str, *, segmentation: bool = True) -> ModelCaps:
    """A Gemini 3.x entry: ``thinking_level``, polygon masks, per-part ``media_resolution``
    (``ultra_high`` for images), video at low resolution as Google advises for 3.x."""
    return ModelCaps(
        thinking="level",
        levels=levels,
        spatial_thinking=spatial,
        mask_format="polygon" if segmentation else None,
        segmentation=segmentation,
        video_media_resolution="low",
        part_media_resolution=True,
        resolutions=("low", "medium", "high", "ultra_high"),
    )


_ALL_LEVELS = ("minimal", "low", "medium", "high")

#: The built-in ``(model-name pattern, capabilities)`` table (immutable); first match wins.
#: Facts as documented by Google and read on 2026-12-03 (Gemini API "Models", "What's new in
#: Gemini 3.6 Flash and 3.5 Flash-Lite", "Thinking", "Image understanding", "Deprecations");
#: docs/backends/gemini.md lists the sources and what could not be verified.
MODEL_TABLE: ModelTable = ModelTable(
    [
        # Gemini 3.x: thinking_level (never thinking_budget); polygon masks in a {"boxes": [...]}
        # object; media_resolution per image part, ultra_high for images. Spatial tasks default
        # to "low" thinking (Google advises little thinking for detection; raise it per task with
        # thinking_level=..., which measured better on 3.6 Flash for crowded scenes).
        # 3.8 Flash and the Pro models have no "minimal" level.
        ("gemini-3.8-flash*", _gemini3(("low", "medium", "high"), "low")),
        ("gemini-3.[5-7]-flash-lite*", _gemini3(_ALL_LEVELS, "minimal")),
        ("gemini-3.1-flash-lite*", _gemini3(_ALL_LEVELS, "minimal")),
        ("gemini-3.[5-7]-flash*", _gemini3(_ALL_LEVELS, "low")),
        ("gemini-3-flash*", _gemini3(_ALL_LEVELS, "low")),
        ("gemini-3*-pro*", _gemini3(("low", "medium", "high"), "low")),
        # Robotics-ER 2 (preview): a Gemini 3-generation embodied-reasoning model; polygon masks
        # were reported. Its thinking knob is not documented: send none unless asked.
        (
            "gemini-robotics-er-2*",
            ModelCaps(
                thinking=None,
                mask_format="polygon",
                video_media_resolution="low",
                part_media_resolution=True,
                resolutions=("low", "medium", "high", "ultra_high"),
            ),
        ),
        ("gemini-3*", _gemini3(("low", "medium", "high"), "low")),
        # Gemini 2.5: thinking_budget. Pro cannot turn thinking off (128–32768); Flash and
        # Flash-Lite can (0), and Google advises 0 for detection and segmentation.
        (
            "gemini-2.5-pro*",
            ModelCaps(
                thinking="budget",
                zero_budget=False,
                budget_min=128,
                budget_max=32768,
                spatial_thinking=128,
                mask_format="png",
            ),
        ),
        (
            "gemini-2.5-flash-lite*",
            ModelCaps(
                thinking="budget",
                zero_budget=True,
                budget_min=512,
                budget_max=24576,
                spatial_thinking=0,
                mask_format="png",
            ),
        ),
        ("gemini-2.5-flash*", _FLASH_25),
        ("gemini-robotics-er-1.5*", _FLASH_25),
        # Gemini 2.0: trained for detection, not for segmentation; no thinking knob.
        ("gemini-2.0-*", ModelCaps(thinking=None, mask_format=None, segmentation=False)),
        ("gemini-1.5-*", ModelCaps(thinking=None, mask_format=None, segmentation=False)),
        # Gemma served by the Gemini API: no JSON mode, no system instruction, no thinking knob.
        (
            "gemma-*",
            ModelCaps(
                thinking=None,
                mask_format=None,
                segmentation=False,
                structured_output=False,
                system_instruction=False,
            ),
        ),
    ]
)

#: What a model that matches no pattern gets: send no thinking setting, expect PNG masks.
DEFAULT_CAPS = ModelCaps(thinking=None, mask_format="png", known=False)


def caps_for(model: str, table: ModelTable = MODEL_TABLE) -> ModelCaps:
    """The capabilities of ``model`` in ``table`` (default: the built-in one)."""
    return table.caps_for(model)
