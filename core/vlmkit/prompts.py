"""Task prompts, written in the coordinate convention the backend declares.

A model answers in the format its prompt asks for, so the prompt must ask for the convention
the backend declares: Google's documented prompts (``"box_2d"`` as ``[ymin, xmin, ymax, xmax]``
on 0–1000) serve ``yxyx-1000`` models (Gemini, Gemma); ``xyxy-pixels`` models (Qwen-style) are
asked for ``"bbox_2d"`` as ``[x1, y1, x2, y2]`` in pixels of the image they were sent;
``loc-1024`` (PaliGemma) gets its ``detect cat ; dog`` task prefix; any other ``order-scale``
convention gets a prompt naming its axis order and grid. :func:`templates_for` returns them.

A backend can replace any of them with ``Backend.prompt_templates`` (a mapping from a template
name in :data:`TEMPLATE_NAMES` to a format string). Format fields: ``{things}`` (the things to
find, "person and car"), ``{labels}`` (``"person", "car"``), ``{label_rule}`` (the sentence that
asks for exact or descriptive labels) and ``{description}`` (the user's own words, or empty).

:data:`DEFAULT_PROMPTS` holds the prompt each task gets when the user gives none, for the
default convention; :func:`prompt_for` is what the Session calls.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import attrs

from vlmkit.errors import ConfigError
from vlmkit.geometry import Convention

__all__ = [
    "DEFAULT_PROMPTS",
    "SYSTEM_PROMPTS",
    "TEMPLATE_NAMES",
    "PromptTemplates",
    "is_instruction",
    "labels_prompt",
    "prompt_for",
    "templates_for",
]

DETECT = (
    "Detect the {things} in the image. Output a JSON list where each entry contains the 2D "
    'bounding box in the key "box_2d" as [ymin, xmin, ymax, xmax] normalized to 0-1000 and the '
    'text label in the key "label". {label_rule}'
)
DETECT_ALL = (
    "Detect the all of the prominent items in the image. The box_2d should be "
    "[ymin, xmin, ymax, xmax] normalized to 0-1000."
)
SEGMENT = (
    "Give the segmentation masks for the {things}. Output a JSON list of segmentation masks where "
    'each entry contains the 2D bounding box in the key "box_2d", the segmentation mask in key '
    '"mask", and the text label in the key "label". {label_rule}'
)
DESCRIPTIVE = "Use descriptive labels."
SEGMENT_ALL = SEGMENT.format(things="prominent items", label_rule=DESCRIPTIVE)
OCR = (
    "Read all the text in the image, exactly as written, in reading order. Keep the original "
    "language and line breaks. Output only the text."
)
OCR_BOXES = (
    "Read all the text in the image. Output a JSON list where each entry contains the text in the "
    'key "text" and its 2D bounding box in the key "box_2d" as [ymin, xmin, ymax, xmax] '
    "normalized to 0-1000."
)
DESCRIBE = "What is shown in this image?"
DESCRIBE_MANY = "Caption these images."
# Google's pointing prompt (Gemini cookbook, Robotics-ER docs), for all prominent items...
POINTS_ALL = (
    "Point to no more than 10 items in the image. The label returned should be an identifying "
    'name for the object detected. The answer should follow the json format: [{"point": '
    '<point>, "label": <label1>}, ...]. The points are in [y, x] format normalized to 0-1000.'
)
# ... and for named things: one point per instance, in the same documented format.
POINTS = (
    "Point to the {things} in the image, one point per instance. The answer should follow the "
    'json format: [{{"point": <point>, "label": <label1>}}, ...]. The points are in [y, x] '
    "format normalized to 0-1000. {label_rule}"
)
VIDEO = (
    "Describe the key events in this video. For each event give its time range as MM:SS - MM:SS "
    "followed by a short description, one event per line."
)

#: the prompt each task gets when the caller gives none (default convention ``yxyx-1000``)
DEFAULT_PROMPTS: dict[str, str] = {
    "detect": DETECT_ALL,
    "segment": SEGMENT_ALL,
    "ocr": OCR,
    "describe": DESCRIBE,
    "video": VIDEO,
    "points": POINTS_ALL,
}

# The Gemini cookbook's system instruction for detection (keeps answers JSON and bounded).
SYSTEM_PROMPTS: dict[str, str] = {
    "detect": (
        "Return bounding boxes as a JSON array with labels. Never return masks or code fencing. "
        "Limit to 25 objects. If an object is present multiple times, name them according to "
        "their unique characteristic (colors, size, position, unique characteristics, etc..)."
    ),
}

#: the template names a backend may override in ``Backend.prompt_templates``
TEMPLATE_NAMES: tuple[str, ...] = (
    "detect",
    "detect_all",
    "segment",
    "segment_all",
    "ocr",
    "ocr_boxes",
    "describe",
    "describe_many",
    "video",
    "points",
    "points_all",
)


@attrs.frozen(kw_only=True)
class PromptTemplates:
    """The prompts of every task for one coordinate convention (format strings, see module)."""

    detect: str
    detect_all: str
    segment: str
    segment_all: str
    ocr_boxes: str
    ocr: str = OCR
    describe: str = DESCRIBE
    describe_many: str = DESCRIBE_MANY
    video: str = VIDEO
    # Added with the pointing task: templates built before it get Google's yxyx-1000 prompts.
    points: str = POINTS
    points_all: str = POINTS_ALL

    def with_overrides(self, overrides: Mapping[str, str] | None) -> PromptTemplates:
        """These templates with a backend's own ones in place (unknown names are refused)."""
        if not overrides:
            return self
        unknown = sorted(set(overrides) - set(TEMPLATE_NAMES))
        if unknown:
            raise ConfigError(
                f"unknown prompt template(s) {unknown}; known: {list(TEMPLATE_NAMES)}"
            )
        return attrs.evolve(self, **{k: str(v) for k, v in overrides.items()})


GOOGLE = PromptTemplates(
    detect=DETECT,
    detect_all=DETECT_ALL,
    segment=SEGMENT,
    segment_all=SEGMENT_ALL,
    ocr_boxes=OCR_BOXES,
)

_AXES = {"yxyx": "[ymin, xmin, ymax, xmax]", "xyxy": "[x1, y1, x2, y2]"}
_POINT_AXES = {"yxyx": "y, x", "xyxy": "x, y"}


def _grid(convention: Convention) -> str:
    if convention.scale is None:
        return "in pixel coordinates of the image"
    if convention.scale == 1:
        return "as fractions of the image width and height, from 0 to 1"
    return f"normalized to 0-{convention.scale:g}"


def _coordinate_templates(convention: Convention) -> PromptTemplates:
    key = "box_2d" if convention.order == "yxyx" else "bbox_2d"
    box = f'the 2D bounding box in the key "{key}" as {_AXES[convention.order]} {_grid(convention)}'
    detect = (
        "Detect the {things} in the image. Output a JSON list where each entry contains "
        f'{box} and the text label in the key "label". {{label_rule}}'
    )
    segment = (
        "Give the segmentation masks for the {things}. Output a JSON list where each entry "
        f'contains {box}, the segmentation mask of that box in the key "mask" as a base64 PNG, '
        'and the text label in the key "label". {label_rule}'
    )
    point = f"[{_POINT_AXES[convention.order]}] {_grid(convention)}"
    points = (
        "Point to the {things} in the image, one point per instance. Output a JSON list where "
        f'each entry contains the point in the key "point" as {point} and the text label in the '
        'key "label". {label_rule}'
    )
    return PromptTemplates(
        points=points,
        points_all=points.format(things="prominent items (at most 10)", label_rule=DESCRIPTIVE),
        detect=detect,
        detect_all=(
            "Detect all of the prominent items in the image. Output a JSON list where each entry "
            f'contains {box} and a descriptive text label in the key "label".'
        ),
        segment=segment,
        segment_all=segment.format(things="prominent items", label_rule=DESCRIPTIVE),
        ocr_boxes=(
            "Read all the text in the image. Output a JSON list where each entry contains the "
            f'text in the key "text" and {box}.'
        ),
    )


_PALIGEMMA = PromptTemplates(
    detect="detect {loc_things}",
    detect_all="detect object",
    segment="segment {loc_things}",
    segment_all="segment object",
    ocr_boxes="ocr",
    ocr="ocr",
    describe="caption en",
    describe_many="caption en",
)


def templates_for(
    convention: str | Convention, overrides: Mapping[str, str] | None = None
) -> PromptTemplates:
    """The built-in templates for a convention, with a backend's ``overrides`` applied."""
    parsed = Convention.parse(convention)
    if parsed.tokens:
        base = _PALIGEMMA
    elif parsed.order == "yxyx" and parsed.scale == 1000:
        base = GOOGLE
    else:
        base = _coordinate_templates(parsed)
    return base.with_overrides(overrides)


#: the tasks whose prompt names the things to find (labels or a short description)
_FIND_TASKS = ("detect", "segment", "points")

_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
_DETERMINER = re.compile(
    r"^(?:all|every|each|any|some|these|those|this|that|my|your|his|her|its|our|their|both)\b",
    re.IGNORECASE,
)


def _things(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _fill(template: str, names: Sequence[str], *, exact: bool, description: str) -> str:
    things = _things(names)
    if len(names) == 1 and not exact:
        # the user's own words: "the main objects" must not read "the the main objects"
        stripped = _ARTICLE.sub("", things, count=1)
        if stripped != things and stripped:
            things = stripped
        elif _DETERMINER.match(things) and template != SEGMENT:
            # ("all cars": "Detect all cars"). Google's SEGMENT keeps its "the": the Gemini
            # plugin recognises that exact sentence to ask Gemini 3 for polygon masks.
            template = template.replace("the {things}", "{things}")
    rule = DESCRIPTIVE
    if exact:
        rule = "Use exactly one of these labels: " + ", ".join(f'"{n}"' for n in names) + "."
    try:
        return template.format(
            things=things,
            label_rule=rule,
            labels=", ".join(f'"{n}"' for n in names),
            loc_things=" ; ".join(names),
            description=description,
        ).strip()
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(
            f"prompt template {template!r} cannot be filled ({type(err).__name__}: {err}); its "
            "fields are {things}, {labels}, {label_rule} and {description}; write literal "
            "braces as {{ and }}"
        ) from None


def labels_prompt(
    task: str,
    labels: Sequence[str],
    *,
    exact: bool = True,
    templates: PromptTemplates = GOOGLE,
) -> str:
    """Turn classes into the task's prompt: ``["person", "car"]`` → "Detect the person and car
    ... Use exactly one of these labels: "person", "car"." With ``exact=False`` the labels are a
    description of the things to find and the model picks descriptive labels."""
    names = [str(label).strip() for label in labels if str(label).strip()]
    if not names:
        return str(getattr(templates, f"{task}_all", templates.detect_all))
    template = str(getattr(templates, task)) if task in _FIND_TASKS else templates.detect
    description = names[0] if not exact and len(names) == 1 else ""
    return _fill(template, names, exact=exact, description=description)


_INSTRUCTION_WORDS = re.compile(
    r"json|box_2d|bounding|\bboxes\b|\bdetect|\bsegment|\bmasks?\b|\bpoint|\blocate|\bfind\b"
    r"|\boutput\b|\breturn\b|\bgive\b|\bshow\b|\blabel",
    re.IGNORECASE,
)


def is_instruction(text: str) -> bool:
    """Whether a detect/segment prompt is a full instruction rather than the things to find.

    ``"person"`` or ``"wooden and glass items"`` name things and go into the prompt template;
    ``"Detect all rainbow socks"`` is sent as written.
    """
    return "\n" in text.strip() or len(text.split()) > 15 or bool(_INSTRUCTION_WORDS.search(text))


def _default(task: str, templates: PromptTemplates, images: int, boxes: bool) -> str:
    if task == "describe":
        return templates.describe_many if images > 1 else templates.describe
    if task == "ocr":
        return templates.ocr_boxes if boxes else templates.ocr
    if task in _FIND_TASKS:
        return labels_prompt(task, (), templates=templates)
    return str(getattr(templates, task))


def prompt_for(
    task: str,
    prompt: str | Sequence[str] | None,
    *,
    images: int = 1,
    convention: str | Convention = "yxyx-1000",
    templates: Mapping[str, str] | PromptTemplates | None = None,
    boxes: bool = False,
) -> tuple[str, tuple[str, ...]]:
    """The prompt for a call and the label list it was built from (empty for free prompts).

    For detect and segment, a list of labels or a short description of the things to find is
    put into the template of the backend's ``convention`` (``templates``: the backend's own
    ``prompt_templates``, or complete :class:`PromptTemplates`); a full instruction is sent
    unchanged. ``boxes`` asks OCR for a box per block of text.
    """
    chosen = (
        templates
        if isinstance(templates, PromptTemplates)
        else templates_for(convention, templates)
    )
    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        return _default(task, chosen, images, boxes), ()
    if isinstance(prompt, str):
        if task in _FIND_TASKS and not is_instruction(prompt):
            return labels_prompt(task, [prompt], exact=False, templates=chosen), ()
        return prompt, ()
    labels = tuple(str(label) for label in prompt)
    if task in _FIND_TASKS:
        return labels_prompt(task, labels, templates=chosen), labels
    raise TypeError(f"{task} takes a prompt string, not a list of labels")
