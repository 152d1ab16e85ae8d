"""Character and word error rates of an OCR run against text ground truth, by jiwer.

Text ground truth is a JSON object mapping image file names to the text each image holds
(``{"receipts/a.jpg": "TOTAL 12.50", ...}``); names match the run's images like detection
ground truth does (relative path, then base name). Whitespace runs count as one space and the
ends are stripped before comparing; case and punctuation count. The rates are corpus-level:
all edits over all reference characters (words), so a long page weighs more than a short sign.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import attrs

from vlmkit.errors import ConfigError

__all__ = ["OcrMetrics", "is_text_ground_truth", "load_text_ground_truth", "ocr_metrics"]


@attrs.frozen(kw_only=True)
class OcrMetrics:
    """Corpus-level CER and WER (0 is perfect; above 1 when the model adds much text)."""

    cer: float
    wer: float
    images: int
    reference_chars: int
    reference_words: int


def is_text_ground_truth(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a JSON object of strings (text ground truth) rather than COCO."""
    source = Path(path)
    if source.suffix.lower() != ".json" or not source.is_file():
        return False
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and bool(data) and all(isinstance(v, str) for v in data.values())


def load_text_ground_truth(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read ``{"file name": "text", ...}``."""
    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{source}: cannot read text ground truth ({err})") from err
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(
            f"{source}: text ground truth must be one JSON object mapping image file names to "
            'their text, e.g. {"sign.jpg": "NO PARKING"}'
        )
    return {str(k).replace("\\", "/"): v for k, v in data.items()}


def _normal(text: str) -> str:
    return " ".join(text.split())


def ocr_metrics(references: Sequence[str], hypotheses: Sequence[str]) -> OcrMetrics:
    """CER and WER over aligned lists (one entry per image; a failed image's hypothesis is
    ``""``, every character of its reference then counts as deleted)."""
    try:
        import jiwer
    except ImportError as err:
        raise ConfigError("OCR evaluation needs jiwer: pip install 'vlmkit[eval]'") from err
    pairs = [(_normal(r), _normal(h)) for r, h in zip(references, hypotheses, strict=True)]
    chars = sum(len(r) for r, _ in pairs)
    words = sum(len(r.split()) for r, _ in pairs)
    if not chars:
        raise ConfigError(
            "the text ground truth of the evaluated images is empty; nothing to score"
        )
    # jiwer refuses empty references; an image with none contributes only insertions.
    kept = [(r, h) for r, h in pairs if r]
    extra_chars = sum(len(h) for r, h in pairs if not r)
    extra_words = sum(len(h.split()) for r, h in pairs if not r)
    refs, hyps = [r for r, _ in kept], [h for _, h in kept]
    char_edits = jiwer.process_characters(refs, hyps)
    word_edits = jiwer.process_words(refs, hyps)
    char_errors = char_edits.substitutions + char_edits.deletions + char_edits.insertions
    word_errors = word_edits.substitutions + word_edits.deletions + word_edits.insertions
    return OcrMetrics(
        cer=(char_errors + extra_chars) / chars,
        wer=(word_errors + extra_words) / words if words else 0.0,
        images=len(pairs),
        reference_chars=chars,
        reference_words=words,
    )
