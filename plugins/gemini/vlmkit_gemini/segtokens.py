"""Gemini's ``<start_of_mask><seg_N>…`` mask tokens: recognised, refused clearly.

Since mid-2025 Gemini 2.5 Flash sometimes answers the segmentation prompt with
``"mask": "<start_of_mask><seg_35><seg_65>…"`` instead of a base64 PNG (google-gemini/cookbook
issue #798; Google's developer forum). The sequence is 16 ``<seg_N>`` codes with ``N`` < 128:
the layout of PaliGemma's mask tokens, which are indices into a learned VQ-VAE codebook and only
become a 64×64 mask through that model's decoder weights. Google publishes no decoder for
Gemini's tokens, and 16 codes of 7 bits (112 bits) cannot hold a 64×64 bitmap, so reading them as
raw bits (as some projects do) draws a mask that is not the model's. vlmkit therefore never
decodes them: an answer in this format is a :class:`vlmkit.ParseError` naming the format and what
to do, never an empty or invented mask.
"""

from __future__ import annotations

import re

from vlmkit import ParseError

__all__ = ["SEG_TOKEN_FORMAT", "find_seg_tokens", "refuse_seg_tokens"]

SEG_TOKEN_FORMAT = "<start_of_mask><seg_N>… mask tokens"
_SEG_TOKENS = re.compile(r"<start_of_mask>\s*(?:<seg_\d+>\s*)+")


def find_seg_tokens(text: str | None) -> list[str]:
    """Every ``<start_of_mask><seg_N>…`` token run in ``text`` (empty when there is none)."""
    return _SEG_TOKENS.findall(text or "")


def refuse_seg_tokens(text: str | None, model: str, *, alternatives: tuple[str, ...]) -> None:
    """Raise :class:`~vlmkit.ParseError` if ``text`` holds mask tokens; otherwise do nothing."""
    found = find_seg_tokens(text)
    if not found:
        return
    codes = len(re.findall(r"<seg_\d+>", found[0]))
    raise ParseError(
        f"{model} answered the segmentation masks as {SEG_TOKEN_FORMAT} ({len(found)} mask(s), "
        f"{codes} codes in the first) instead of base64 PNG images. These are indices into a "
        "learned codebook that Google does not publish a decoder for, so vlmkit cannot turn them "
        "into masks faithfully and does not guess. Segment with a model that answers polygons "
        f"({', '.join(alternatives)}); the boxes and labels of this answer are kept in the "
        "error's raw_text.",
        raw_text=text or "",
        reason="mask-tokens",
    )
