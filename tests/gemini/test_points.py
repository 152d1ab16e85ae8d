"""Pointing through the real google-genai SDK against the fake Gemini, whose answers are computed
from the pixels it receives (``vlmkit_gemini.testing.true_answers``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import vlmkit
from vlmkit.testing import oracle_samples, tolerance_px
from vlmkit_gemini.testing import true_answers

SAMPLES = {s.name: s for s in oracle_samples(huge=False) if s.targets}


def _centres(sample):
    return {
        t.label: ((t.xyxy[0] + t.xyxy[2]) / 2, (t.xyxy[1] + t.xyxy[3]) / 2) for t in sample.targets
    }


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("max_image_side", [None, 48])
def test_points_land_on_the_targets_in_original_pixels(
    name, max_image_side, fake_gemini, gemini_session
):
    fake_gemini.add_rule(text=true_answers(fake_gemini))
    options = {} if max_image_side is None else {"max_image_side": max_image_side}
    session = gemini_session(**options)
    sample = SAMPLES[name]  # odd sizes, an EXIF-rotated JPEG, RGBA, tiny; resized with 48
    points = session.points(sample.data, ["red square", "blue square"])
    assert isinstance(points, vlmkit.Points) and points.image_size == sample.size
    truth = _centres(sample)
    assert sorted(points.labels) == sorted(truth)
    for point in points:
        off = np.hypot(point.x - truth[point.label][0], point.y - truth[point.label][1])
        assert off <= tolerance_px(sample.size), (point, truth[point.label])


def test_the_request_is_googles_pointing_request(fake_gemini, gemini_session):
    fake_gemini.add_rule(text=true_answers(fake_gemini))
    session = gemini_session()
    session.points(SAMPLES["rgb-97x61.png"].data)
    session.points(SAMPLES["rgb-97x61.png"].data, ["red square"])
    default, labelled = fake_gemini.requests_of()[-2:]
    assert "Point to no more than 10 items in the image" in default.prompt_text
    assert "[y, x] format normalized to 0-1000" in labelled.prompt_text
    assert '"red square"' in labelled.prompt_text
    config = labelled.generation_config
    assert config.get("response_mime_type") == "application/json"
    assert labelled.thinking_budget == 0  # as Google's pointing sample on 2.5 models
    assert "response_schema" not in config  # the box schema is for detect only


def test_vertex_declares_points_too(fake_gemini, vertex_session):
    fake_gemini.add_rule(text=json.dumps([{"point": [500, 250], "label": "cup"}]))
    points = vertex_session().points(SAMPLES["rgb-97x61.png"].data, "cup")
    np.testing.assert_allclose(points.xy, [[24.25, 30.5]])
    assert points.provenance.backend == "gemini-vertex"


def test_a_cut_off_pointing_answer_is_an_outcome(fake_gemini, gemini_session):
    fake_gemini.add_rule(
        text='[{"point": [500, 250], "label": "cup"}, {"point": [1', finish_reason="MAX_TOKENS"
    )
    points = gemini_session().points(SAMPLES["rgb-97x61.png"].data, "cup")
    assert points.labels == ("cup",) and points.report.truncated and not points.complete


def test_a_batch_run_of_points_asks_and_answers_as_the_synchronous_call(
    fake_gemini, gemini_session, tmp_path
):
    fake_gemini.add_rule(text=true_answers(fake_gemini))
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "rgb.png").write_bytes(SAMPLES["rgb-97x61.png"].data)
    session = gemini_session(model=None, batch_poll_interval_s=0.0, cache=False)
    sync = session.points(photos / "rgb.png", ["red square", "blue square"])
    run = session.run(
        "points",
        [photos],
        ["red square", "blue square"],
        out_dir=tmp_path / "out",
        mode="batch",
        sinks=["coco"],
    )
    (outcome,) = list(run)
    (direct,) = fake_gemini.requests_of("generate")
    (batched,) = fake_gemini.requests_of("batch_generate")
    assert batched.prompt_text == direct.prompt_text
    assert batched.generation_config == direct.generation_config
    assert outcome.status == "done" and outcome.result.xy.tolist() == sync.xy.tolist()
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [a["keypoints"][2] for a in coco["annotations"]] == [2, 2]
