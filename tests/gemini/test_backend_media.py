"""Media handling: images encoded by vlmkit (upright, explicit MIME type), inline below the
request budget, through the Files API above it and on reuse, cleaned up on close."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("google.genai")
pytest.importorskip("vlmkit_gemini")

from tests.gemini.conftest import photo

BOXES = [{"box_2d": [0, 0, 500, 1000], "label": "top"}]


def _decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _uploaded(fake_gemini) -> list[bytes]:
    return [fake_gemini.file_bytes(name) for name in fake_gemini.files]


def test_exif_rotated_jpeg_arrives_upright(fake_gemini, gemini_session, tmp_path):
    stored = Image.new("RGB", (80, 60), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 40, 60))  # left half red as stored in the file
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the left edge is the top
    path = tmp_path / "phone.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
    fake_gemini.add_rule(text=BOXES)

    dets = gemini_session().detect(str(path), "the red part")

    (req,) = fake_gemini.requests_of()
    mime, data = req.inline_data[0]
    sent = _decoded(data)
    assert data != path.read_bytes()  # a rotated file is re-encoded, never sent as stored
    assert mime == Image.MIME[sent.format]  # two flat colours: vlmkit picks PNG, losslessly
    assert sent.size == (60, 80)  # upright: portrait
    assert 0x0112 not in sent.getexif()  # no orientation tag left to apply twice
    top, bottom = np.asarray(sent)[5, 30], np.asarray(sent)[75, 30]
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60
    np.testing.assert_allclose(dets.xyxy, [[0, 0, 60, 40]])  # the upright image's top half
    assert dets.image_size == (60, 80)


def test_transparent_png_is_sent_as_png(fake_gemini, gemini_session):
    image = Image.new("RGBA", (50, 40), (255, 0, 0, 255))
    image.putpixel((0, 0), (0, 0, 0, 0))
    gemini_session().describe(image)
    (req,) = fake_gemini.requests_of()
    mime, data = req.inline_data[0]
    assert mime == "image/png" and _decoded(data).mode == "RGBA"


def test_image_format_and_quality_are_settings(fake_gemini, gemini_session):
    gemini_session(image_format="webp", jpeg_quality=70).describe(photo())
    (req,) = fake_gemini.requests_of()
    assert req.inline_data[0][0] == "image/webp"


def test_large_image_goes_through_the_files_api(fake_gemini, gemini_session):
    """A photo whose base64 would exceed the 20 MB request limit is uploaded instead."""
    fake_gemini.add_rule(text=BOXES)
    big = photo(3600, 3600)
    session = gemini_session(jpeg_quality=100)

    dets = session.detect(big, "the top")

    np.testing.assert_allclose(dets.xyxy, [[0, 0, 3600, 1800]])
    (req,) = fake_gemini.requests_of()
    assert req.inline_data == [] and req.status == 200
    ((mime, uri),) = req.file_data
    assert mime == "image/jpeg" and uri.startswith(fake_gemini.base_url)
    (data,) = _uploaded(fake_gemini)
    assert len(data) * 4 / 3 > 20_000_000  # inline it would not have fitted
    assert _decoded(data).size == (3600, 3600)
    assert len(fake_gemini.requests_of("upload_chunk")) >= 2  # the SDK's 8 MiB chunks
    parts = req.body["contents"][0]["parts"]
    assert list(parts[0]) == ["fileData"] and list(parts[1]) == ["text"]


def test_inline_limit_is_a_setting_and_uploads_are_reused(fake_gemini, gemini_session):
    session = gemini_session(inline_limit_bytes=30_000)
    image = photo(400, 300)
    session.describe(image)
    session.describe(image, "Again?")
    first, second = fake_gemini.requests_of()
    assert first.file_data == second.file_data and first.inline_data == []
    assert len(fake_gemini.requests_of("upload_start")) == 1  # keyed by content hash
    assert session.backend.files.uploads == 1


def test_only_the_largest_images_are_uploaded(fake_gemini, gemini_session):
    session = gemini_session(inline_limit_bytes=60_000)
    small, big = photo(64, 48, seed=1), photo(400, 300, seed=2)
    session.describe([small, big, photo(64, 48, seed=3)], "Compare")
    (req,) = fake_gemini.requests_of()
    assert len(req.inline_data) == 2 and len(req.file_data) == 1
    parts = req.body["contents"][0]["parts"]
    assert [next(iter(p)) for p in parts] == ["inlineData", "fileData", "inlineData", "text"]
    (data,) = _uploaded(fake_gemini)
    assert _decoded(data).size == (400, 300)


def test_an_image_used_again_is_uploaded_once_and_referenced(fake_gemini, gemini_session):
    session = gemini_session(reuse_upload_min_bytes=1000)
    image = photo(200, 150)
    for _ in range(3):
        session.describe(image)
    session.describe(photo(8, 8, seed=5))  # small images always go inline
    first, second, third, small = fake_gemini.requests_of()
    assert len(first.inline_data) == 1 and first.file_data == []
    assert second.inline_data == [] and second.file_data == third.file_data != []
    assert len(small.inline_data) == 1
    assert session.backend.files.uploads == 1


def test_uploaded_files_are_deleted_on_close_unless_kept(fake_gemini, gemini_session):
    session = gemini_session(inline_limit_bytes=30_000)
    session.describe(photo(400, 300))
    assert len(fake_gemini.files) == 1
    session.close()
    assert fake_gemini.files == {}
    kept = gemini_session(inline_limit_bytes=30_000, keep_files=True)
    kept.describe(photo(400, 300))
    kept.close()
    assert len(fake_gemini.files) == 1


def test_a_deleted_upload_is_uploaded_again(fake_gemini, gemini_session):
    session = gemini_session(inline_limit_bytes=30_000)
    image = photo(400, 300)
    session.describe(image)
    (name,) = fake_gemini.files
    session.backend.client.files.delete(name=name)  # gone on the server (expired, deleted)
    assert session.describe(image).text == "ok"
    statuses = [r.status for r in fake_gemini.requests_of()]
    assert statuses == [200, 403, 200]
    assert session.backend.files.uploads == 2


def test_max_image_side_resizes_and_maps_boxes_back(fake_gemini, gemini_session):
    fake_gemini.add_rule(text=BOXES)
    dets = gemini_session(max_image_side=256).detect(photo(1024, 512), "the top")
    (req,) = fake_gemini.requests_of()
    assert _decoded(req.inline_data[0][1]).size == (256, 128)
    np.testing.assert_allclose(dets.xyxy, [[0, 0, 1024, 256]])


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_an_unchanged_upright_file_is_sent_as_it_is(fake_gemini, gemini_session, tmp_path, fmt):
    path = tmp_path / f"photo.{fmt.lower()}"
    photo(120, 90).save(path, fmt)
    gemini_session().describe(str(path))
    (req,) = fake_gemini.requests_of()
    assert req.inline_data == [(Image.MIME[fmt], path.read_bytes())]  # no re-encoding


def test_an_explicit_image_format_re_encodes(fake_gemini, gemini_session, tmp_path):
    path = tmp_path / "photo.png"
    photo(120, 90).save(path, "PNG")
    gemini_session(image_format="jpeg").describe(str(path))
    (req,) = fake_gemini.requests_of()
    ((mime, data),) = req.inline_data
    assert mime == "image/jpeg" and _decoded(data).format == "JPEG"


def test_the_backend_says_it_sends_files_as_they_are_only_with_the_auto_format(
    fake_gemini, gemini_session
):
    """The Session only checks an upright JPEG (decodes its pixels if they are used) for a
    backend that may send the file as it is: image_format "auto", not an explicit format."""
    assert gemini_session().backend.sends_image_files
    assert not gemini_session(image_format="jpeg").backend.sends_image_files


def test_a_file_used_again_is_uploaded_once_keyed_by_its_bytes(
    fake_gemini, gemini_session, tmp_path
):
    path = tmp_path / "photo.jpg"
    photo(200, 150).save(path, "JPEG", quality=95)
    original = path.read_bytes()
    session = gemini_session(reuse_upload_min_bytes=1000)
    session.describe(str(path))
    session.describe(str(path))
    session.describe(original)  # the same content from memory: the same content hash
    first, second, third = fake_gemini.requests_of()
    assert first.inline_data == [("image/jpeg", original)] and first.file_data == []
    assert second.inline_data == [] and second.file_data == third.file_data != []
    assert _uploaded(fake_gemini) == [original]  # the file's own bytes were uploaded
    assert session.backend.files.uploads == 1
