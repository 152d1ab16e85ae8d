"""A backend that has turned a request's images into the bytes it sends releases their pixels
(``vlmkit.release_pixels``): a run then frees the decoded image and admits the next one within
its pixel budget, so the budget bounds the images being decoded and encoded, not the answers
being waited for (issue 16: 12 MP photos at 32 in flight were held to 16)."""

from __future__ import annotations

import threading

import pytest
from PIL import Image

import vlmkit
import vlmkit.session
from tests.runner.test_runner import CAT
from vlmkit.testing import scripted_plugin

BIG = (3000, 3000)  # 9 MP: two fit in a 20 MP budget, a third does not


def big_images(folder, count):
    folder.mkdir()
    for index in range(count):
        Image.new("RGB", BIG, (index, 90, 160)).save(folder / f"big{index}.png")
    return folder


def test_released_pixels_let_the_next_images_in_while_answers_are_awaited(tmp_path, monkeypatch):
    lock, decoded, peak = threading.Lock(), [0], [0]
    real_load = vlmkit.session.load_image

    def load(image, **options):  # counts the images decoded and not yet released
        loaded = real_load(image, **options)
        with lock:
            decoded[0] += 1
            peak[0] = max(peak[0], decoded[0])
        return loaded

    # Four requests must be out together to pass: with the pixels held until the answer,
    # only two 9 MP images fit the budget, and the barrier would time out.
    barrier = threading.Barrier(4, timeout=10)
    seen = []

    def answer(request):
        original = request.images[0].original
        with lock:
            decoded[0] -= 1
        vlmkit.release_pixels(request)
        with pytest.raises(ValueError, match="closed image"):
            original.image.getpixel((0, 0))  # freed: nothing reads the pixels any more
        seen.append(original.size)  # sizes stay, to map the answer to pixels
        barrier.wait()
        return CAT

    monkeypatch.setattr(vlmkit.session, "load_image", load)
    images = big_images(tmp_path / "images", 4)
    with vlmkit.Session("scripted", plugins=[scripted_plugin(answer)], entrypoints=["vlmkit"]) as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "out", concurrency=4,
                    pixel_budget=20_000_000)  # fmt: skip
        outcomes = list(run)
    assert [o.status for o in outcomes] == ["done"] * 4, [o.error for o in outcomes]
    assert seen == [BIG] * 4 and all(o.result.image_size == BIG for o in outcomes)
    assert peak[0] <= 2  # still at most two 9 MP images decoded at once


def test_a_backend_that_keeps_the_pixels_keeps_the_budget_until_its_answer(tmp_path):
    lock, out, peak = threading.Lock(), [0], [0]
    gate = threading.Event()

    def answer(request):
        with lock:
            out[0] += 1
            peak[0] = max(peak[0], out[0])
        gate.wait(0.2)  # the others would start meanwhile, were they admitted
        with lock:
            out[0] -= 1
        return CAT

    images = big_images(tmp_path / "images", 4)
    with vlmkit.Session("scripted", plugins=[scripted_plugin(answer)], entrypoints=["vlmkit"]) as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "out", concurrency=4,
                    pixel_budget=20_000_000)  # fmt: skip
        assert [o.status for o in run] == ["done"] * 4
    assert peak[0] == 2


def test_release_pixels_outside_a_run_never_touches_the_callers_image(tmp_path):
    def answer(request):
        vlmkit.release_pixels(request)
        return CAT

    mine = Image.new("RGB", (400, 300), (40, 90, 160))
    with vlmkit.Session("scripted", plugins=[scripted_plugin(answer)], entrypoints=["vlmkit"]) as s:
        result = s.detect(mine, "cat")
    assert result.image_size == (400, 300) and len(result) > 0
    assert mine.getpixel((0, 0)) == (40, 90, 160)  # still the caller's, still readable
