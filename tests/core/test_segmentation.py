"""Segmentation answers as Gemini writes them: 2.5 base64 PNG crops and 3.x polygons."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

import vlmkit

W, H = 800, 600


def ellipse_png(size: int = 256) -> str:
    """A 256x256 8-bit grayscale PNG holding only 0 and 255, like Gemini 2.5's masks."""
    image = Image.new("L", (size, size), 0)
    ImageDraw.Draw(image).ellipse((0, 0, size - 1, size - 1), fill=255)
    assert set(np.unique(np.asarray(image))) == {0, 255}
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def gemini25_answer(prefix: bool = True) -> str:
    mask = ("data:image/png;base64," if prefix else "") + ellipse_png()
    items = [
        {"box_2d": [100, 250, 500, 750], "mask": mask, "label": "wooden bowl"},
        {"box_2d": [600, 100, 900, 300], "mask": mask, "label": "glass jar"},
    ]
    return "```json\n" + json.dumps(items, indent=2) + "\n```"


@pytest.mark.parametrize("prefix", [True, False])
def test_gemini25_png_masks_are_placed_box_local(prefix):
    dets = vlmkit.parse(gemini25_answer(prefix), task="segment", image_size=(W, H))
    assert dets.labels == ("wooden bowl", "glass jar")
    bowl = dets[0]
    np.testing.assert_allclose(bowl.box.xyxy, [200, 60, 600, 300])
    mask = bowl.mask
    assert mask is not None and mask.data.dtype == bool
    # stored box-local: the crop covers the box, not the frame
    assert mask.region == (200, 60, 600, 300) and mask.shape == (240, 400)
    expected_area = np.pi * 200 * 120  # ellipse filling the 400x240 box
    assert abs(mask.area - expected_area) / expected_area < 0.02
    full = mask.to_full((W, H))
    assert full.shape == (H, W) and full.sum() == mask.area
    assert full[180, 400] and not full[62, 202]  # centre in, corner out
    assert dets.report.masks_resized == 2 and dets.report.masks_invalid == 0


def test_mask_threshold_is_configurable():
    ramp = np.tile(np.linspace(0, 255, 256).astype(np.uint8), (256, 1))
    buffer = io.BytesIO()
    Image.fromarray(ramp, "L").save(buffer, format="PNG")
    text = json.dumps(
        [
            {
                "box_2d": [0, 0, 1000, 1000],
                "label": "ramp",
                "mask": base64.b64encode(buffer.getvalue()).decode(),
            }
        ]
    )
    at_midpoint = vlmkit.parse(text, task="segment", image_size=(256, 256))[0].mask.area
    strict = vlmkit.parse(text, task="segment", image_size=(256, 256), threshold=200)[0].mask.area
    assert abs(at_midpoint / 256**2 - 0.5) < 0.01
    assert abs(strict / 256**2 - (255 - 200) / 255) < 0.01


def test_gemini3_polygon_masks():
    answer = json.dumps(
        {
            "boxes": [
                {
                    "box_2d": [200, 100, 800, 500],
                    "label": "triangle",
                    "mask": [
                        [100, 200],
                        [500, 200],
                        [300, 800],
                    ],  # [x, y] on 0-1000 over the full image
                }
            ]
        }
    )
    dets = vlmkit.parse(answer, task="segment", image_size=(W, H))
    mask = dets[0].mask
    # the triangle in pixels: (80, 120), (400, 120), (240, 480); area = 0.5 * 320 * 360
    expected = 0.5 * 320 * 360
    assert abs(mask.area - expected) / expected < 0.02
    x0, y0, x1, y1 = mask.region
    assert 79 <= x0 <= 81 and 119 <= y0 <= 121 and 399 <= x1 <= 402 and 479 <= y1 <= 482


def test_polygon_masks_follow_a_letterbox_transform():
    transform = vlmkit.Transform.letterbox((W, H), (1000, 1000))  # 800x600 -> 1000x750 + pad
    answer = json.dumps(
        {
            "boxes": [
                {
                    "box_2d": [125, 0, 875, 1000],
                    "label": "all",
                    "mask": [[0, 125], [1000, 125], [1000, 875], [0, 875]],
                }
            ]
        }
    )
    dets = vlmkit.parse(answer, task="segment", transform=transform)
    np.testing.assert_allclose(dets[0].box.xyxy, [0, 0, W, H], atol=1e-9)
    assert dets[0].mask.area >= 0.99 * W * H


def test_an_undecodable_mask_keeps_the_item_and_is_counted():
    items = [
        {"box_2d": [100, 250, 500, 750], "mask": "data:image/png;base64,!!!", "label": "a"},
        {"box_2d": [600, 100, 900, 300], "mask": ellipse_png(), "label": "b"},
    ]
    dets = vlmkit.parse(json.dumps(items), task="segment", image_size=(W, H))
    assert dets.labels == ("a", "b")
    assert dets[0].mask is None and "mask_error" in dets[0].attributes
    assert dets[1].mask is not None
    assert dets.report.masks_invalid == 1 and not dets.report.clean


def test_detect_ignores_masks_and_segment_to_supervision():
    dets = vlmkit.parse(gemini25_answer(), task="detect", image_size=(W, H))
    assert all(d.mask is None for d in dets)
    seg = vlmkit.parse(gemini25_answer(), task="segment", image_size=(W, H))
    compact = seg.to_supervision()
    dense = seg.to_supervision(masks="dense")
    assert dense.mask.shape == (2, H, W)
    np.testing.assert_array_equal(compact.mask.to_dense()[0], dense.mask[0])
    assert list(compact.data["class_name"]) == ["wooden bowl", "glass jar"]


# -- what an answer's masks may cost is bounded (vlmkit.masks.MaskLimits) ----------------------
def tiny_png() -> str:
    buffer = io.BytesIO()
    Image.new("L", (1, 1), 255).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def full_image_items(n: int) -> str:
    item = {"box_2d": [0, 0, 1000, 1000], "mask": tiny_png(), "label": "all"}
    return json.dumps([item] * n)


def test_masks_beyond_the_pixel_limit_are_dropped_and_counted():
    # Each 1×1 PNG spreads over the whole 800×600 image: 480,000 pixels per mask.
    limits = vlmkit.masks.MaskLimits(pixels=5 * W * H + 10)
    dets = vlmkit.parse(full_image_items(8), task="segment", image_size=(W, H), mask_limits=limits)
    assert len(dets) == 8  # every detection is kept ...
    masks = [d.mask for d in dets]
    assert all(m is not None and m.area == W * H for m in masks[:5])
    assert masks[5:] == [None, None, None]  # ... the masks over the limit are not
    assert dets.report.masks_dropped == 3 and dets.report.masks_invalid == 0
    assert dets[7].attributes["mask_error"] == "mask-limit"
    assert not dets.report.clean and "masks_dropped=3" in dets.report.summary()


def test_default_limit_bounds_the_pixels_a_small_answer_materializes():
    # 400 full-frame masks of a 12 MP photo would be 4.8 G pixels; a 60 KB answer.
    text = full_image_items(400)
    dets = vlmkit.parse(text, task="segment", image_size=(4000, 3000))
    kept = sum(d.mask.data.size for d in dets if d.mask is not None)
    assert len(dets) == 400
    assert 0 < kept <= vlmkit.masks.MaskLimits().pixels
    assert dets.report.masks_dropped == 400 - kept // (4000 * 3000)


def zigzag(vertices: int) -> list[list[float]]:
    """A polygon whose every edge crosses the whole image height (0–1000 grid)."""
    xs = np.linspace(0, 1000, vertices)
    return [[float(x), 0.0 if i % 2 else 1000.0] for i, x in enumerate(xs)]


def test_a_zigzag_polygon_over_the_limit_is_dropped_before_rasterizing():
    item = {"box_2d": [0, 0, 1000, 1000], "label": "zigzag", "mask": zigzag(20_000)}
    dets = vlmkit.parse(json.dumps([item]), task="segment", image_size=(4000, 3000))
    assert dets.labels == ("zigzag",) and dets[0].mask is None
    assert dets.report.masks_dropped == 1


def test_polygon_vertices_are_limited_per_answer():
    square = [[100, 100], [900, 100], [900, 900], [100, 900]]
    item = {"box_2d": [100, 100, 900, 900], "label": "sq", "mask": square}
    limits = vlmkit.masks.MaskLimits(vertices=10)
    dets = vlmkit.parse(
        json.dumps([item] * 3), task="segment", image_size=(W, H), mask_limits=limits
    )
    assert [d.mask is not None for d in dets] == [True, True, False]
    assert dets.report.masks_dropped == 1


def test_a_zigzag_under_the_limit_rasterizes_in_chunks_exactly():
    # Rasterized in several chunks of crossings, the mask equals the single-chunk result.
    from vlmkit import masks as mask_ops

    points = np.array(zigzag(301)) * [W / 1000, H / 1000]
    whole = mask_ops.polygon_mask(points, image_size=(W, H))
    chunk = mask_ops._CROSSING_CHUNK
    try:
        mask_ops._CROSSING_CHUNK = 1000
        chunked = mask_ops.polygon_mask(points, image_size=(W, H))
    finally:
        mask_ops._CROSSING_CHUNK = chunk
    assert whole.area > 0 and np.array_equal(whole.data, chunked.data)


def test_bad_mask_limits_are_config_errors():
    with pytest.raises(vlmkit.ConfigError):
        vlmkit.masks.MaskLimits(pixels=-1)
    with pytest.raises(vlmkit.ConfigError):
        vlmkit.parse("[]", task="segment", image_size=(W, H), mask_limits={"pixels": 1})


def test_a_task_call_on_a_hostile_answer_keeps_the_good_items():
    from vlmkit.testing import scripted_plugin

    huge = "1" + "0" * 400
    answer = (
        json.dumps(
            [
                {"box_2d": [0, 0, 1000, 1000], "mask": tiny_png(), "label": "whole"},
                {"box_2d": [100, 100, 500, 500], "mask": zigzag(30_000), "label": "zigzag"},
            ]
        )[:-1]
        + f', {{"box_2d": [{huge}, 1, 2, 3], "label": "huge"}}]'
    )
    image = Image.new("RGB", (W, H))
    with vlmkit.Session("scripted", plugins=[scripted_plugin(answer)], entrypoints=False) as s:
        dets = s.segment(image, ["thing"])
    assert dets.labels == ("whole", "zigzag")
    assert dets[0].mask is not None and dets[1].mask is None  # its crossings: over the limit
    assert dets.report.masks_dropped == 1 and [i.index for i in dets.report.skipped] == [2]


@pytest.mark.parametrize("failure", ["cv2", "memory"])
def test_opencv_and_memory_errors_in_mask_work_drop_only_the_mask(monkeypatch, failure):
    # As OpenCV answered a 300 KB answer of full-image masks before the limits existed.
    cv2 = pytest.importorskip("cv2")
    from vlmkit import masks as mask_ops

    def fail(*_args, **_kwargs):
        if failure == "cv2":
            raise cv2.error("OpenCV(5.1.0) error: (-4:Insufficient memory) Failed to allocate")
        raise MemoryError

    monkeypatch.setattr(mask_ops, "_resample_opencv", fail)
    small = ellipse_png(64)  # enlarged on both axes: OpenCV's path
    answer = json.dumps(
        [
            {"box_2d": [100, 250, 500, 750], "mask": small, "label": "wooden bowl"},
            {"box_2d": [600, 100, 900, 300], "mask": small, "label": "glass jar"},
        ]
    )
    dets = vlmkit.parse(answer, task="segment", image_size=(W, H))
    assert dets.labels == ("wooden bowl", "glass jar")
    assert [d.mask for d in dets] == [None, None] and dets.report.masks_invalid == 2
    assert (
        dets[0].attributes["mask_error"] == {"cv2": "mask-opencv", "memory": "mask-memory"}[failure]
    )
