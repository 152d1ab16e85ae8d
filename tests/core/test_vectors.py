"""Real Gemma 4 answers from Google's guide reproduce their expected boxes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import vlmkit

VECTORS = Path(__file__).resolve().parents[1] / "data" / "vectors" / "gemma4_seed_outputs.json"
DATA = json.loads(VECTORS.read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", DATA["cases"], ids=lambda c: c["name"])
def test_vector_reproduces_expected_boxes(case):
    dets = vlmkit.parse(case["raw_text"], task="detect", image_size=tuple(case["image_size_wh"]))
    expected = case["expected"]
    assert dets.labels == tuple(e["label"] for e in expected)
    np.testing.assert_allclose(dets.xyxy, [e["xyxy"] for e in expected], rtol=0, atol=1e-6)
    assert dets.report.clean


@pytest.mark.parametrize("answer", DATA["text_answers"], ids=lambda a: a["name"])
def test_text_answers_survive_unicode(answer):
    result = vlmkit.parse(answer["answer_excerpt"] + "<turn|>", task="describe")
    assert result.text == answer["answer_excerpt"]


def test_the_vectors_ship_with_the_repository():
    """They are test data of this repository, so every clone runs them (none is skipped)."""
    assert len(DATA["cases"]) >= 6 and len(DATA["text_answers"]) >= 2
