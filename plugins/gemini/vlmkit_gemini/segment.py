"""The prompt of Gemini's native segment route: the core's Google ``SEGMENT`` sentence, asking
for polygon masks on Gemini 3.x models and PNG masks on the others.

The core's sentence is recognised by its template (any other prompt, the caller's own
instruction or a template override, is sent unchanged); the caller's description decides the
article ("the cups", but "all socks" and "every red cup" as written).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import vlmkit

__all__ = ["SEGMENTATION_MODELS", "polygon_segment_prompt", "segment_prompt"]

#: Current models trained for segmentation (named in the error for a model that is not).
SEGMENTATION_MODELS = ("gemini-3.6-flash", "gemini-3.8-flash", "gemini-3.5-flash-lite")

_POLYGON_SEGMENT = (
    'Give the segmentation masks for the {things}. Output a JSON object with the key "boxes" '
    'holding a list where each entry contains the 2D bounding box in the key "box_2d" as '
    '[ymin, xmin, ymax, xmax] normalized to 0-1000, the segmentation mask in the key "mask" as '
    "a polygon (a list of [x, y] points normalized to 0-1000 over the whole image), and the text "
    'label in the key "label". {label_rule}'
)


def _template_regex(template: str) -> re.Pattern[str]:
    head, rest = template.split("{things}")
    middle, tail = rest.split("{label_rule}")
    return re.compile(
        re.escape(head)
        + r"(?P<things>.+?)"
        + re.escape(middle)
        + r"(?P<rule>.*)"
        + re.escape(tail),
        re.DOTALL,
    )


_SEGMENT_RE = _template_regex(vlmkit.prompts.SEGMENT)


#: Words that already say which things are meant: "for all socks", never "for the all socks".
_DETERMINER = re.compile(
    r"^(?:all|every|each|any|some|these|those|this|that|my|your|his|her|its|our|their|both)\b",
    re.IGNORECASE,
)


def segment_prompt(
    prompt: str, *, polygons: bool, description: str | None = None, labels: Sequence[str] = ()
) -> str:
    """The Gemini segmentation prompt for a request whose ``prompt`` is the core's Google
    ``SEGMENT`` sentence: polygon masks for Gemini 3.x (``polygons``), the core's PNG-mask
    sentence otherwise. The caller's ``description`` decides the article: "the cups", but
    "all socks" and "every red cup" as written; ``labels`` are class names and keep "the".
    Any other prompt (the caller's own instruction, a template override) is returned unchanged.
    """
    match = _SEGMENT_RE.fullmatch(prompt.strip())
    if match is None:
        return prompt
    template = _POLYGON_SEGMENT if polygons else vlmkit.prompts.SEGMENT
    things = match["things"]
    if not labels and description and _DETERMINER.match(description.strip()):
        template = template.replace("the {things}", "{things}")
        things = " ".join(description.split())
    return template.format(things=things, label_rule=match["rule"]).strip()


def polygon_segment_prompt(prompt: str) -> str:
    """The core's PNG-mask segmentation prompt rewritten to ask for polygon masks (Gemini 3.x);
    any other prompt (the caller's own instruction) is returned unchanged."""
    return segment_prompt(prompt, polygons=True)
