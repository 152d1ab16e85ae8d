"""``Detections.to_supervision()``: box-local masks reach supervision without full frames."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import supervision as sv

from vlmkit.types import Box, Detection, Detections, Mask

W, H = 64, 48


def random_detections(rng: np.random.Generator, n: int, size: tuple[int, int]) -> Detections:
    """Random probability and bool masks, some spilling past every image edge, some empty,
    some wholly outside the image, some items without a mask, masks reaching outside their box."""
    width, height = size
    items = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(1, 30, size=2))
        x, y = int(rng.integers(-20, width)), int(rng.integers(-20, height))
        kind = i % 6
        if kind == 0:
            data = rng.integers(0, 256, size=(h, w), dtype=np.uint8)  # probability map
        elif kind == 1:
            data = np.zeros((h, w), dtype=bool)  # empty mask
        elif kind == 2:
            data = rng.random((h, w)) > 0.5
            x, y = width + 5, height + 5  # entirely outside the image
        else:
            data = rng.random((h, w)) > 0.4
        mask = None if kind == 5 else Mask(data=data, x=x, y=y)
        # The box is deliberately smaller than the mask: pixels outside it must survive.
        bx0, by0 = min(max(x + 2, 0), width - 1), min(max(y + 2, 0), height - 1)
        box = Box(x0=bx0, y0=by0, x1=min(bx0 + 3, width), y1=min(by0 + 3, height))
        items.append(Detection(box=box, label=f"c{i % 3}", score=0.5, mask=mask))
    return Detections(items=items, image_size=size)


@pytest.mark.parametrize("seed", range(5))
def test_compact_masks_equal_the_dense_path(seed):
    dets = random_detections(np.random.default_rng(seed), 24, (W, H))
    compact = dets.to_supervision()
    dense = dets.to_supervision(masks="dense")
    assert isinstance(compact.mask, sv.CompactMask)
    assert compact.mask.shape == dense.mask.shape == (24, H, W)
    np.testing.assert_array_equal(compact.mask.to_dense(), dense.mask)
    np.testing.assert_array_equal(compact.mask.area, dense.mask.sum(axis=(1, 2)))
    np.testing.assert_array_equal(compact.mask.to_dense(), dets.masks_dense())


def test_mask_on_the_image_edges_and_a_full_frame_mask():
    full = Mask(data=np.ones((H, W), dtype=bool), x=0, y=0)
    corner = Mask(data=np.ones((10, 10), dtype=bool), x=W - 4, y=H - 3)
    dets = Detections(
        items=[
            Detection(box=Box(x0=0, y0=0, x1=W, y1=H), label="all", mask=full),
            Detection(box=Box(x0=W - 4, y0=H - 3, x1=W, y1=H), label="corner", mask=corner),
        ],
        image_size=(W, H),
    )
    compact = dets.to_supervision().mask
    assert compact.area.tolist() == [W * H, 4 * 3]
    np.testing.assert_array_equal(compact.to_dense(), dets.masks_dense())


def test_supervision_annotators_draw_the_same_pixels_from_compact_and_dense():
    dets = random_detections(np.random.default_rng(7), 12, (W, H))
    scene = np.full((H, W, 3), 90, dtype=np.uint8)
    compact, dense = dets.to_supervision(), dets.to_supervision(masks="dense")
    for annotator in (sv.MaskAnnotator(), sv.PolygonAnnotator()):
        np.testing.assert_array_equal(
            annotator.annotate(scene.copy(), compact), annotator.annotate(scene.copy(), dense)
        )
    # Filtering keeps the masks compact and aligned with the boxes.
    kept = compact[compact.class_id == compact.class_id[0]]
    assert isinstance(kept.mask, sv.CompactMask) and len(kept.mask) == len(kept)


def test_no_full_frame_is_materialized_for_a_large_photo():
    # 20 masks of 300×300 on a 4000×3000 photo: dense full frames would take 20 × 12 MB.
    size = (4000, 3000)
    rng = np.random.default_rng(3)
    items = [
        Detection(
            box=Box(x0=100 * i, y0=50 * i, x1=100 * i + 300, y1=50 * i + 300),
            label="thing",
            mask=Mask(data=rng.random((300, 300)) > 0.5, x=100 * i, y=50 * i),
        )
        for i in range(20)
    ]
    dets = Detections(items=items, image_size=size)
    tracemalloc.start()
    try:
        result = dets.to_supervision()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(result.mask) == 20
    assert peak < 3000 * 4000  # less than one full frame (12 MB) for all 20 masks together
    np.testing.assert_array_equal(result.mask.crop(0), items[0].mask.data)
