"""Segmentation answers in every format Gemini returns today: polygons (Gemini 3.x), base64 PNG
(Gemini 2.5) and the ``<start_of_mask><seg_N>…`` tokens 2.5 Flash was reported to emit — the
last refused clearly, never turned into an empty mask."""

from __future__ import annotations

import pytest

pytest.importorskip("google.genai")
pytest.importorskip("vlmkit_gemini")

from tests.gemini.conftest import MODEL, photo
from vlmkit import ParseError
from vlmkit.ledger import read_ledger
from vlmkit_gemini.backend import SEGMENTATION_MODELS
from vlmkit_gemini.segtokens import find_seg_tokens

#: The answer published in google-gemini/cookbook issue #798 (2025-06-10), verbatim mask value.
COOKBOOK_798_MASK = (
    "<start_of_mask><seg_35><seg_65><seg_4><seg_66><seg_3><seg_94><seg_77><seg_34><seg_42>"
    "<seg_51><seg_27><seg_3><seg_73><seg_50><seg_42><seg_22>"
)
TOKEN_ANSWER = [{"box_2d": [200, 150, 800, 600], "mask": COOKBOOK_798_MASK, "label": "cup"}]

#: Gemini 3.6/3.7's structured shape (supervision PR #2504): a top-level "boxes" object whose
#: masks are polygons of [x, y] points normalized to 0–1000 over the whole image.
POLYGON_ANSWER = {
    "boxes": [
        {
            "box_2d": [100, 100, 500, 500],
            "label": "square",
            "mask": [[100, 100], [500, 100], [500, 500], [100, 500]],
        },
        {
            "box_2d": [600, 600, 900, 900],
            "label": "two parts",
            "mask": [
                [[600, 600], [700, 600], [700, 700], [600, 700]],
                [[800, 800], [900, 800], [900, 900], [800, 900]],
            ],
        },
    ]
}


def test_the_published_token_format_is_recognised():
    (run,) = find_seg_tokens('[{"mask": "' + COOKBOOK_798_MASK + '"}]')
    assert run.count("<seg_") == 16
    assert find_seg_tokens('[{"mask": "data:image/png;base64,iVBOR"}]') == []


def test_mask_tokens_are_a_parse_error_naming_the_format_and_what_to_do(
    fake_gemini, gemini_session
):
    fake_gemini.add_rule(text=TOKEN_ANSWER)
    session = gemini_session()  # a Gemini 2.5 model: asked for PNG masks
    with pytest.raises(ParseError, match=r"<start_of_mask><seg_N>… mask tokens") as info:
        session.segment(photo(), "cups")
    message = str(info.value)
    assert MODEL in message and "does not guess" in message
    assert all(model in message for model in SEGMENTATION_MODELS)  # what to do
    assert info.value.reason == "mask-tokens"
    assert COOKBOOK_798_MASK in info.value.raw_text  # nothing lost


def test_mask_tokens_in_a_run_are_a_per_item_failure_not_an_empty_mask(
    fake_gemini, gemini_session, tmp_path
):
    fake_gemini.add_rule(text=TOKEN_ANSWER)
    folder = tmp_path / "photos"
    folder.mkdir()
    photo().save(folder / "table.jpg")
    run = gemini_session().run("segment", [folder], "cups", out_dir=tmp_path / "out")
    list(run)
    assert run.summary.done == 0 and run.summary.failed == 1
    (record,) = read_ledger(tmp_path / "out" / "results.jsonl").failed.values()
    assert "mask tokens" in record.error


def test_polygon_masks_of_gemini_3_parse_into_pixel_masks(fake_gemini, gemini_session):
    fake_gemini.add_rule(text=POLYGON_ANSWER)
    dets = gemini_session(model=None).segment(photo(1000, 500), "things")
    (req,) = fake_gemini.requests_of()
    assert '"boxes"' in req.prompt_text and "polygon" in req.prompt_text
    square, parts = dets
    assert square.label == "square" and parts.label == "two parts"
    # 0–1000 → pixels of a 1000×500 image: the square spans x 100–500, y 50–250
    assert square.mask.area == pytest.approx(400 * 200, rel=0.02)
    assert parts.mask.area == pytest.approx(2 * 100 * 50, rel=0.05)
    assert dets.report.masks_invalid == 0


@pytest.mark.parametrize("model", [None, MODEL], ids=["gemini-3-polygons", "gemini-2.5-png"])
@pytest.mark.parametrize(
    ("description", "things"),
    [
        ("all socks", "for all socks"),
        ("every red cup", "for every red cup"),
        ("cups", "for the cups"),
    ],
)
def test_segment_prompts_read_naturally(fake_gemini, gemini_session, model, description, things):
    fake_gemini.add_rule(text=POLYGON_ANSWER if model is None else "[]")
    gemini_session(model=model).segment(photo(), description)
    (req,) = fake_gemini.requests_of()
    assert f"Give the segmentation masks {things}." in req.prompt_text
    assert "the all" not in req.prompt_text and "the every" not in req.prompt_text
    assert ("polygon" in req.prompt_text) is (model is None)


def test_segment_labels_keep_the_exact_label_rule_on_the_polygon_route(fake_gemini, gemini_session):
    fake_gemini.add_rule(text=POLYGON_ANSWER)
    gemini_session(model=None).segment(photo(), ["all-terrain tyre", "cup"])
    (req,) = fake_gemini.requests_of()
    assert "masks for the all-terrain tyre and cup." in req.prompt_text
    assert 'Use exactly one of these labels: "all-terrain tyre", "cup".' in req.prompt_text
    assert "polygon" in req.prompt_text


def test_png_masks_of_gemini_2_5_still_parse(fake_gemini, gemini_session):
    import base64
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 255, np.uint8), "L").save(buffer, "PNG")
    png = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    fake_gemini.add_rule(text=[{"box_2d": [0, 0, 500, 500], "mask": png, "label": "cup"}])
    (cup,) = gemini_session().segment(photo(200, 100), "cups")
    assert cup.mask.area == pytest.approx(100 * 50, rel=0.02)
