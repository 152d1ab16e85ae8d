"""Mask limits set on a Session, or per segment call, reach the parser of every answer."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

import vlmkit
from vlmkit.masks import MaskLimits
from vlmkit.testing import scripted_plugin

_crop = np.zeros((100, 100), dtype=np.uint8)
_crop[:, :50] = 255
_png = io.BytesIO()
Image.fromarray(_crop).save(_png, format="PNG")
MASK = "data:image/png;base64," + base64.b64encode(_png.getvalue()).decode()
# two boxes with a 100 x 100 PNG mask each, on a 400 x 200 image: 200 x 100 and 40 x 20 px
SEGMENT = (
    f'[{{"box_2d": [0, 0, 500, 500], "mask": "{MASK}", "label": "ramp"}}, '
    f'{{"box_2d": [0, 0, 100, 100], "mask": "{MASK}", "label": "chip"}}]'
)


@pytest.fixture
def image():
    return Image.new("RGB", (400, 200), (40, 90, 160))


def session(**kwargs):
    plugin = scripted_plugin({"segment": SEGMENT, "detect": SEGMENT})
    return vlmkit.Session("scripted", plugins=[plugin], entrypoints=False, **kwargs)


def test_by_default_every_mask_is_kept(image):
    with session() as s:
        dets = s.segment(image)
    assert [d.mask is not None for d in dets] == [True, True]
    assert dets.report.masks_dropped == 0


def test_a_session_limit_drops_the_masks_beyond_it_and_reports_them(image):
    with session(mask_limits=MaskLimits(pixels=100)) as s:
        dets = s.segment(image)
        loose = s.segment(image, max_mask_pixels=10**9)  # a call's option wins
    assert [d.label for d in dets] == ["ramp", "chip"]  # detections kept
    assert [d.mask for d in dets] == [None, None]
    assert dets.report.masks_dropped == 2
    assert [d.mask is not None for d in loose] == [True, True]
    assert loose.report.masks_dropped == 0


def test_a_per_call_limit_keeps_the_first_masks_that_fit(image):
    with session() as s:
        dets = s.segment(image, max_mask_pixels="40000")  # text, as from the command line
    assert [d.mask is not None for d in dets] == [True, False]
    assert dets.report.masks_dropped == 1


def test_bad_limits_are_refused_before_any_model_call(image):
    with pytest.raises(vlmkit.ConfigError, match="MaskLimits"):
        session(mask_limits={"pixels": 10})
    with session() as s:
        for bad in (-1, "many", 1.5, True):
            with pytest.raises(vlmkit.ConfigError, match="max_mask_pixels must be a whole"):
                s.segment(image, max_mask_pixels=bad)
        with pytest.raises(vlmkit.ConfigError, match="max_mask_vertices"):
            s.segment(image, max_mask_vertices=-5)
        assert s.backend.requests == []
