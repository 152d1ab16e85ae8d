"""Annotated previews, checked pixel by pixel."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
from PIL import Image

from tests.sinks.conftest import (
    H,
    W,
    box_det,
    build_font,
    detections,
    disk,
    mask_det,
    write_image,
)
from vlmkit.errors import SinkError
from vlmkit.sink import SinkItem
from vlmkit.sinks import fonts, preview
from vlmkit.sinks.annotate import AnnotateSink, find_font, has_glyph, needs_cjk
from vlmkit.types import Description, OcrBlock, OcrResult

BG = (40, 90, 160)


def colour(class_id: int) -> tuple[int, int, int]:
    return sv.ColorPalette.DEFAULT.by_idx(class_id).as_rgb()


def render(tmp_path, result, key="img.png", **options):
    image = write_image(tmp_path / "in" / key, color=BG)
    with AnnotateSink(tmp_path / "out", **options) as sink:
        sink.write(SinkItem(key=key, result=result, image_path=image))
    return np.asarray(Image.open(tmp_path / "out" / "annotated" / key).convert("RGB"))


def test_boxes_masks_and_cjk_label(tmp_path):
    mask = disk(120, 80, 20)
    result = detections(
        [box_det([20, 40, 70, 100], "cat", 0.9), mask_det(mask, "猫", 0.8)], task="segment"
    )
    out = render(tmp_path, result, thickness=2)
    assert out.shape == (H, W, 3)
    assert tuple(out[100, 45]) == colour(0)  # bottom edge of the cat box
    assert tuple(out[70, 20]) == colour(0)  # left edge
    assert tuple(out[5, 155]) == BG and tuple(out[115, 5]) == BG  # far from everything
    inside = out[80, 120].astype(int)
    assert tuple(inside) != BG and tuple(inside) != colour(1)  # tinted, not painted over
    # The CJK label sits above the mask box's top-left corner.
    y0, x0 = 60, 100
    label_area = out[max(0, y0 - 25) : y0, x0 : x0 + 40]
    assert (label_area != np.array(BG)).any(axis=-1).sum() > 50


def test_cjk_without_cjk_font_falls_back_and_warns(tmp_path, monkeypatch, caplog):
    dejavu, _ = find_font(cjk=False)
    monkeypatch.setattr(preview, "find_font", lambda cjk=True, **_: (dejavu, False))
    with caplog.at_level(logging.WARNING, logger="vlmkit.sinks.annotate"):
        out = render(tmp_path, detections([box_det([30, 40, 90, 100], "東京タワー")]))
    assert "no CJK font" in caplog.text
    assert (out[15:40, 30:90] != np.array(BG)).any(axis=-1).sum() > 50


CJK_TEXT = "東京タワー"
LABEL_BOX = (30, 40, 90, 100)  # the label is drawn just above (30, 40)


def label_area(out: np.ndarray) -> np.ndarray:
    return out[10:40, 30:150]


def test_dejavu_has_no_cjk_glyphs():
    dejavu, has_cjk = find_font(cjk=False)
    assert dejavu and not has_cjk
    assert has_glyph(dejavu, "A") and has_glyph(dejavu, "Ж")
    assert not has_glyph(dejavu, "東") and not has_glyph(dejavu, "京")


def test_a_file_named_like_a_cjk_font_must_have_the_glyphs(tmp_path):
    """The search checks glyphs, not file names: DejaVu renamed to Noto CJK is not CJK."""
    dejavu, _ = find_font(cjk=False)
    folder = tmp_path / "fonts" / "noto"
    folder.mkdir(parents=True)
    (folder / "NotoSansCJK-Regular.ttc").write_bytes(Path(dejavu).read_bytes())
    path, has_cjk = find_font(dirs=(str(tmp_path / "fonts"),), site_dirs=())
    assert not has_cjk and not path.endswith("NotoSansCJK-Regular.ttc")
    assert needs_cjk("고양이") and needs_cjk("ねこ") and not needs_cjk("Straße")


def test_font_search_finds_cjk_fonts_in_pip_packages(tmp_path):
    """A CJK font shipped inside an installed package (japanize-matplotlib's IPAexGothic and
    the like) is found in site-packages and checked for the glyphs the text needs."""
    site = tmp_path / "site-packages"
    font = build_font(site / "japanize_matplotlib" / "fonts" / "ipaexg.ttf", CJK_TEXT)
    build_font(site / "other" / "fonts" / "NanumGothic.ttf", "고양이")
    path, has_cjk = find_font(dirs=(), site_dirs=(str(site),), text=CJK_TEXT)
    assert (path, has_cjk) == (str(font), True)
    path, has_cjk = find_font(dirs=(), site_dirs=(str(site),), text="고양이")
    assert path.endswith("NanumGothic.ttf") and has_cjk
    # No font has every glyph: the best one, flagged as incomplete.
    path, has_cjk = find_font(dirs=(), site_dirs=(str(site),), text="東京犬")
    assert (path, has_cjk) == (str(font), False)


def test_cjk_label_is_drawn_with_real_glyphs_given_a_cjk_font(tmp_path, monkeypatch):
    """With a CJK-capable font the label differs from DejaVu's rendering (which is boxes)."""
    site = tmp_path / "site-packages"
    font = build_font(site / "pkg" / "fonts" / "ipaexg.ttf", CJK_TEXT)
    dejavu, _ = find_font(cjk=False)
    result = detections([box_det(LABEL_BOX, CJK_TEXT)])
    monkeypatch.setattr(fonts, "_site_dirs", lambda: (str(site),))
    monkeypatch.setattr(fonts, "_FONT_DIRS", ())
    assert find_font(text=CJK_TEXT) == (str(font), True)
    with_cjk = render(tmp_path / "cjk", result, font_size=16)
    boxes = render(tmp_path / "dejavu", result, font_size=16, font_path=dejavu)
    assert not np.array_equal(label_area(with_cjk), label_area(boxes))


def test_cjk_label_with_this_machines_cjk_font(tmp_path):
    """The same check against the fonts really installed here, when there is one."""
    path, has_cjk = find_font(text=CJK_TEXT)
    dejavu, _ = find_font(cjk=False)
    if not has_cjk:
        pytest.skip(
            "no CJK-capable font on this machine (system fonts, Ultralytics' Arial.Unicode.ttf "
            "or a pip package): CJK labels fall back to DejaVu boxes here; install one, e.g. "
            "apt install fonts-noto-cjk, to run this check"
        )
    assert all(has_glyph(path, c) for c in CJK_TEXT)
    result = detections([box_det(LABEL_BOX, CJK_TEXT)])
    with_cjk = render(tmp_path / "cjk", result, font_size=16)
    boxes = render(tmp_path / "dejavu", result, font_size=16, font_path=dejavu)
    assert not np.array_equal(label_area(with_cjk), label_area(boxes))


def test_unencodable_label_text_is_drawn(tmp_path):
    """A lone surrogate (valid JSON, possible model output) is drawn as U+FFFD, no crash."""
    result = detections([box_det(LABEL_BOX, "\ud800"), box_det([5, 5, 20, 20], "a\udcff")])
    out = render(tmp_path, result)
    assert out.shape == (H, W, 3)
    caption = render(tmp_path / "d", Description(text="x \ud800 y"), key="d.png")
    assert caption.shape[0] > H
    ocr = OcrResult(text="\ud800", blocks=[OcrBlock(text="\udfff", box=None)], image_size=(W, H))
    assert render(tmp_path / "o", ocr, key="o.png").shape[0] > H


def test_class_colours_are_stable_across_images(tmp_path):
    a = write_image(tmp_path / "in" / "a.png", color=BG)
    b = write_image(tmp_path / "in" / "b.png", color=BG)
    with AnnotateSink(tmp_path / "out", thickness=2, labels=False) as sink:
        sink.write(
            SinkItem(
                key="a.png",
                result=detections(
                    [box_det([10, 10, 50, 50], "cat"), box_det([60, 10, 100, 50], "dog")]
                ),
                image_path=a,
            )
        )
        sink.write(
            SinkItem(
                key="b.png", result=detections([box_det([10, 10, 50, 50], "dog")]), image_path=b
            )
        )
    out = np.asarray(Image.open(tmp_path / "out" / "annotated" / "b.png").convert("RGB"))
    assert tuple(out[50, 30]) == colour(1)


def test_jpeg_and_unwritable_suffix(tmp_path):
    result = detections([box_det([10, 10, 50, 50], "cat")])
    a = write_image(tmp_path / "in" / "x.jpg")
    b = write_image(tmp_path / "in" / "y.png")
    with AnnotateSink(tmp_path / "out") as sink:
        sink.write(SinkItem(key="x.jpg", result=result, image_path=a))
        sink.write(SinkItem(key="y.heic", result=result, image_path=b))  # Pillow cannot write HEIC
        files = sink.close()
    assert Image.open(tmp_path / "out" / "annotated" / "x.jpg").format == "JPEG"
    assert (tmp_path / "out" / "annotated" / "y.heic.jpg").exists()
    assert len(files) == 2


def test_ocr_and_description_get_caption_strips(tmp_path):
    ocr = OcrResult(text="出口 EXIT", blocks=[OcrBlock(text="出口", box=None)], image_size=(W, H))
    out = render(tmp_path, ocr)
    assert out.shape[0] > H and out.shape[1] == W
    assert (out[H:] != 255).any()  # text drawn in the white strip
    out = render(tmp_path, Description(text="a blue square"), key="d.png")
    assert out.shape[0] > H


def test_missing_image_is_skipped(tmp_path, caplog):
    with caplog.at_level(logging.WARNING), AnnotateSink(tmp_path / "out") as sink:
        sink.write(SinkItem(key="gone.png", result=detections([]), image_path=tmp_path / "no.png"))
        sink.write(SinkItem(key="none.png", result=detections([])))
    assert not (tmp_path / "out" / "annotated").exists()
    assert "gone.png" in caplog.text or "no.png" in caplog.text


def test_labels_and_keys_cannot_escape(tmp_path):
    evil = detections([box_det([1, 1, 50, 50], "../../evil"), box_det([1, 1, 5, 5], "a/b")])
    out = render(tmp_path, evil, key="x.png")
    assert out.shape == (H, W, 3)
    files = sorted(
        os.path.relpath(os.path.join(d, f), tmp_path / "out")
        for d, _, fs in os.walk(tmp_path / "out")
        for f in fs
    )
    assert files == [os.path.join("annotated", "x.png")]
    with AnnotateSink(tmp_path / "out") as sink, pytest.raises(SinkError):
        sink.write(SinkItem(key="../../x.png", result=evil, image_path=tmp_path / "in" / "x.png"))


def test_previews_appear_at_close_and_a_failed_close_leaves_nothing(tmp_path, monkeypatch):
    image = write_image(tmp_path / "in" / "x.png")
    item = SinkItem(key="x.png", result=detections([box_det([1, 1, 9, 9], "a")]), image_path=image)
    sink = AnnotateSink(tmp_path / "out")
    sink.write(item)
    sink.wait_background()  # drawn (on another thread) and staged
    folder = tmp_path / "out" / "annotated"
    assert [f for f in os.listdir(folder) if not f.startswith(".")] == []  # staged, hidden

    def boom(*_args):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        sink.close()
    assert not (tmp_path / "out").exists()  # no preview, no temporary file, no folder
    monkeypatch.undo()
    sink = AnnotateSink(tmp_path / "out")
    sink.write(item)
    assert sink.close() == [folder / "x.png"] and os.listdir(folder) == ["x.png"]


def test_leaving_with_block_by_an_exception_discards(tmp_path):
    image = write_image(tmp_path / "in" / "x.png")
    item = SinkItem(key="x.png", result=detections([box_det([1, 1, 9, 9], "a")]), image_path=image)
    with pytest.raises(RuntimeError), AnnotateSink(tmp_path / "out") as sink:
        sink.write(item)
        raise RuntimeError("the run broke")
    assert not (tmp_path / "out").exists()


# -- every label is inside the image and legible ------------------------------------------------
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def sample_scene(size: tuple[int, int]) -> list[tuple[list[float], str]]:
    """Boxes where previews used to lose their labels: touching the top edge (as the cat, the
    flag and the launch towers of samples/ do), the top-right corner, and one in the middle."""
    width, height = size
    return [
        ([0.05 * width, 0.0, 0.45 * width, 0.6 * height], "touches the top"),
        ([0.7 * width, 0.0, width, 0.3 * height], "top right corner"),
        ([0.3 * width, 0.65 * height, 0.6 * width, 0.95 * height], "middle"),
    ]


def label_blobs(with_labels: np.ndarray, without: np.ndarray) -> list[tuple[slice, slice]]:
    from scipy import ndimage

    changed = np.abs(with_labels.astype(int) - without.astype(int)).max(axis=2) > 40
    blobs, _ = ndimage.label(changed)
    return [s for s in ndimage.find_objects(blobs) if s is not None]


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("*.jpg")))
def test_every_label_of_a_samples_preview_lies_inside_the_image(tmp_path, name):
    image_path = SAMPLES / name
    size = Image.open(image_path).size
    items = [box_det(xyxy, label) for xyxy, label in sample_scene(size)]
    result = detections(items, size=size)
    key = Path(name).with_suffix(".png").name  # lossless, to compare pixels
    previews = {}
    for labels in (True, False):
        out = tmp_path / f"labels-{labels}"
        with AnnotateSink(out, labels=labels) as sink:
            sink.write(SinkItem(key=key, result=result, image_path=image_path))
        previews[labels] = np.asarray(Image.open(out / "annotated" / key).convert("RGB"))
    # Each label is one blob of changed pixels, whole (as tall as the text), inside the image.
    blobs = label_blobs(previews[True], previews[False])
    tall = [rows for rows, _ in blobs if rows.stop - rows.start >= 10]
    assert len(tall) >= len(items), f"{len(tall)} visible labels for {len(items)} boxes"
    for rows, cols in blobs:
        assert 0 <= rows.start < rows.stop <= size[1] and 0 <= cols.start < cols.stop <= size[0]
    # A label of a box touching the top edge is drawn inside the box's top, not above it.
    top_rows, top_cols = min(blobs, key=lambda b: (b[1].start, b[0].start))
    assert top_rows.start <= 4 and top_cols.start <= 0.05 * size[0] + 4  # under the box line


# -- two inputs with one preview name ------------------------------------------------------------
def test_two_keys_mapping_to_one_preview_never_overwrite_silently(tmp_path, caplog):
    a = write_image(tmp_path / "in" / "a.png", color=(200, 0, 0))
    b = write_image(tmp_path / "in" / "b.png", color=(0, 200, 0))
    result = detections([])
    with caplog.at_level(logging.WARNING), AnnotateSink(tmp_path / "out") as sink:
        sink.write(SinkItem(key="back\\slash.png", result=result, image_path=a))
        sink.write(SinkItem(key="back/slash.png", result=result, image_path=b))
        sink.write(SinkItem(key="back/slash.png", result=result, image_path=b))  # same key again
        files = sink.close()
    assert len(files) == 2
    colours = sorted(tuple(np.asarray(Image.open(f).convert("RGB"))[0, 0]) for f in files)
    assert colours == [(0, 200, 0), (200, 0, 0)]  # both previews kept
    assert "back/slash.png" in caplog.text and "same preview" in caplog.text


# -- inputs that are not RGB ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK"])
def test_inputs_of_any_mode_get_rgb_previews_with_true_colours(tmp_path, mode):
    """The preview is drawn on the image turned into RGB once (an RGB image is not copied
    again): boxes keep their class colour, the background its colour."""
    image = Image.new("RGB", (W, H), BG).convert(mode)
    key = "x.jpg" if mode == "CMYK" else "x.png"
    path = tmp_path / "in" / key
    path.parent.mkdir(parents=True)
    image.save(path)
    result = detections([box_det([20, 40, 70, 100], "cat")])
    with AnnotateSink(tmp_path / "out", thickness=2, labels=False) as sink:
        sink.write(SinkItem(key=key, result=result, image_path=path))
    out = np.asarray(Image.open(tmp_path / "out" / "annotated" / key).convert("RGB"))
    assert out.shape == (H, W, 3)
    expected = np.asarray(Image.open(path).convert("RGB"))[5, 155].astype(int)
    # exact pixels in a PNG; JPEG moves colours a little
    tolerance = 0 if key.endswith(".png") else 40
    assert np.abs(out[100, 45].astype(int) - colour(0)).max() <= tolerance
    assert np.abs(out[5, 155].astype(int) - expected).max() <= tolerance
