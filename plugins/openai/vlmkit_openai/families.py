"""Which coordinate convention a served model family speaks, and how its server resizes images.

A model answers boxes the way it was trained to, whatever server runs it:

* ``gemma`` (Gemma 3, Gemma 4, PaliGemma-free chat models): ``"box_2d"`` as
  ``[ymin, xmin, ymax, xmax]`` on a 0–1000 grid — convention ``yxyx-1000``, Google's prompts.
* ``qwen`` (Qwen2-VL, Qwen2.5-VL): ``"bbox_2d"`` as ``[x1, y1, x2, y2]`` in pixels of the image
  *the model saw* — convention ``xyxy-pixels``. The server resizes every image to sides that are
  multiples of 28 (:func:`smart_resize`), so the backend sends images already at that size.
* ``qwen3`` (Qwen3-VL, Qwen3.5): ``"bbox_2d"`` as ``[x1, y1, x2, y2]`` on a 0–1000 grid —
  convention ``xyxy-1000`` (Qwen3 moved from pixels to a relative grid).

``auto`` picks by the served model's name (:func:`resolve_family`).
"""

from __future__ import annotations

import math

import attrs

from vlmkit import ConfigError

__all__ = ["FAMILIES", "Family", "resolve_family", "smart_resize"]


@attrs.frozen(kw_only=True)
class Family:
    """A model family: its name, the convention it writes boxes in, and whether its server
    resizes images to a 28-pixel grid (so pixel answers need the image sent at that size)."""

    name: str
    convention: str
    snaps_to_grid: bool = False


FAMILIES: dict[str, Family] = {
    "gemma": Family(name="gemma", convention="yxyx-1000"),
    "qwen": Family(name="qwen", convention="xyxy-pixels", snaps_to_grid=True),
    "qwen3": Family(name="qwen3", convention="xyxy-1000"),
}


def resolve_family(family: str, model: str) -> Family:
    """The family named ``family``; for ``"auto"``, the one the model name ``model`` says.

    ``auto`` knows Gemma (``gemma``), Qwen3/3.5-VL (``qwen3``) and Qwen2/2.5-VL (other
    ``qwen`` names); any other name is refused with what to set instead, because a wrong
    convention puts every box in the wrong place without any error.
    """
    wanted = family.strip().lower()
    if wanted in FAMILIES:
        return FAMILIES[wanted]
    if wanted != "auto":
        raise ConfigError(
            f"unknown model family {family!r}; use one of: auto, {', '.join(FAMILIES)}"
        )
    name = model.lower().rsplit("/", 1)[-1]
    if "gemma" in name:
        return FAMILIES["gemma"]
    if "qwen3" in name:
        return FAMILIES["qwen3"]
    if "qwen" in name:
        return FAMILIES["qwen"]
    raise ConfigError(
        f"cannot tell how model {model!r} writes boxes from its name; set family=gemma "
        "(box_2d on 0-1000), family=qwen (Qwen2.5-VL: bbox_2d in pixels), family=qwen3 "
        "(bbox_2d on 0-1000), or convention=... (e.g. --config family=gemma)"
    )


#: Qwen2/2.5-VL image processor defaults: 28-pixel patches (14 px, merged 2×2) and pixel bounds
QWEN_FACTOR = 28
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 28 * 28 * 1280  # the cookbook's recommended cap (the processor allows more)


def smart_resize(
    width: int,
    height: int,
    *,
    factor: int = QWEN_FACTOR,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """The size a Qwen2/2.5-VL processor resizes a ``width`` × ``height`` image to: both sides
    multiples of ``factor``, the area within ``[min_pixels, max_pixels]``, the aspect kept as
    far as that allows. Applying it to its own result returns that result unchanged, so an image
    sent at this size reaches the model as sent and pixel answers map back exactly."""
    if width <= 0 or height <= 0:
        raise ConfigError(f"image size must be positive, got {width}x{height}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return w_bar, h_bar
