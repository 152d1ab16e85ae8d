"""Default prompts per task, taken from Google's documented prompts (override any per call)."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["DEFAULT_PROMPTS", "SYSTEM_PROMPTS", "is_instruction", "labels_prompt", "prompt_for"]

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
VIDEO = (
    "Describe the key events in this video. For each event give its time range as MM:SS - MM:SS "
    "followed by a short description, one event per line."
)

DEFAULT_PROMPTS: dict[str, str] = {
    "detect": DETECT_ALL,
    "segment": SEGMENT_ALL,
    "ocr": OCR,
    "describe": DESCRIBE,
    "video": VIDEO,
}

# The Gemini cookbook's system instruction for detection (keeps answers JSON and bounded).
SYSTEM_PROMPTS: dict[str, str] = {
    "detect": (
        "Return bounding boxes as a JSON array with labels. Never return masks or code fencing. "
        "Limit to 25 objects. If an object is present multiple times, name them according to "
        "their unique characteristic (colors, size, position, unique characteristics, etc..)."
    ),
}


def labels_prompt(task: str, labels: Sequence[str], *, exact: bool = True) -> str:
    """Turn classes into the task's prompt: ``["person", "car"]`` → "Detect the person and car
    ... Use exactly one of these labels: "person", "car"." With ``exact=False`` the labels are a
    description of the things to find and the model picks descriptive labels."""
    names = [str(label).strip() for label in labels if str(label).strip()]
    if not names:
        return DEFAULT_PROMPTS[task]
    things = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    rule = DESCRIPTIVE
    if exact:
        rule = "Use exactly one of these labels: " + ", ".join(f'"{n}"' for n in names) + "."
    template = SEGMENT if task == "segment" else DETECT
    return template.format(things=things, label_rule=rule)


_INSTRUCTION_WORDS = re.compile(
    r"json|box_2d|bounding|\bboxes\b|\bdetect|\bsegment|\bmasks?\b|\bpoint|\blocate|\bfind\b"
    r"|\boutput\b|\breturn\b|\bgive\b|\bshow\b|\blabel",
    re.IGNORECASE,
)


def is_instruction(text: str) -> bool:
    """Whether a detect/segment prompt is a full instruction rather than the things to find.

    ``"person"`` or ``"wooden and glass items"`` name things and go into Google's prompt
    template; ``"Detect all rainbow socks"`` is sent as written.
    """
    return "\n" in text.strip() or len(text.split()) > 15 or bool(_INSTRUCTION_WORDS.search(text))


def prompt_for(
    task: str, prompt: str | Sequence[str] | None, *, images: int = 1
) -> tuple[str, tuple[str, ...]]:
    """The prompt for a call and the label list it was built from (empty for free prompts).

    For detect and segment, a list of labels or a short description of the things to find is
    put into Google's documented prompt; a full instruction is sent unchanged.
    """
    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        if task == "describe" and images > 1:
            return DESCRIBE_MANY, ()
        return DEFAULT_PROMPTS[task], ()
    if isinstance(prompt, str):
        if task in ("detect", "segment") and prompt.strip() and not is_instruction(prompt):
            return labels_prompt(task, [prompt], exact=False), ()
        return prompt, ()
    labels = tuple(str(label) for label in prompt)
    if task in ("detect", "segment"):
        return labels_prompt(task, labels), labels
    raise TypeError(f"{task} takes a prompt string, not a list of labels")
