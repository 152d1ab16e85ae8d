"""The test kit's oracle catches coordinate bugs: a correct backend passes check_backend, a
backend that forgets its own resize or declares the wrong convention fails it."""

from __future__ import annotations

import numpy as np
import pytest

import vlmkit
from vlmkit import ResizePolicy
from vlmkit.media import load_image
from vlmkit.testing import (
    check_backend,
    find_targets,
    oracle_samples,
    scripted_plugin,
    tolerance_px,
    true_answer,
)

TASKS = ["detect", "segment", "describe"]


def oracle_model(convention: str):
    """A fake model speaking ``convention`` that sees the targets in the image it was sent."""

    def answer(request: vlmkit.Request) -> str:
        if request.task in ("detect", "segment"):
            return true_answer(request.images[0].image, convention, task=request.task)
        return "Two squares on grey."

    return answer


def _check(backend_class, **kwargs):
    class Plugin:
        @vlmkit.hookimpl
        def vlmkit_backends(self):
            yield vlmkit.BackendInfo(
                name="candidate",
                factory=backend_class,
                tasks={"detect", "segment", "describe"},
                description="a backend under test",
            )

    return check_backend("candidate", plugins=[Plugin()], tasks=TASKS, **kwargs)


class PixelBackend(vlmkit.Backend):
    """Right: its model writes pixels of the image it received, and it says so."""

    convention = "xyxy-pixels"
    image_policy = ResizePolicy.fit(640)
    model_speaks = "xyxy-pixels"

    def generate(self, request):
        return vlmkit.Generation(text=oracle_model(self.model_speaks)(request))


class ForgetsItsResize(vlmkit.Backend):
    """Wrong: halves the image itself before sending and does not return the transforms."""

    convention = "xyxy-pixels"
    keep_transforms = False

    def generate(self, request):
        sent = request.images[0]
        width, height = sent.image.size
        half = sent.image.resize((max(1, width * 3 // 4), max(1, height * 2 // 3)))
        text = oracle_model("xyxy-pixels")(_with_image(request, half))
        transforms = None
        if self.keep_transforms:
            transforms = (sent.transform.then_resize(half.size),)
        return vlmkit.Generation(text=text, transforms=transforms)


class ResizesAndSaysSo(ForgetsItsResize):
    """Right again: the same own resize, reported with ``SentImage.transform.then_resize``."""

    keep_transforms = True


class WrongConvention(PixelBackend):
    """Wrong: the model writes pixels, the backend declares Google's 0–1000 grid."""

    convention = "yxyx-1000"


def _with_image(request, image):
    import attrs

    sent = attrs.evolve(request.images[0], image=image)
    return attrs.evolve(request, images=(sent,))


def test_the_oracle_finds_the_targets_where_they_were_drawn():
    for sample in oracle_samples(huge=False):
        found = find_targets(load_image(sample.data).image)  # upright, EXIF applied
        assert set(found) == {t.label for t in sample.targets}, sample.name
        for target in sample.targets:
            np.testing.assert_allclose(found[target.label], target.xyxy, atol=1)


def test_a_correct_backend_passes():
    report = _check(PixelBackend)
    report.assert_ok()
    assert "boxes: within tolerance of the oracle" in report.checked
    assert "detect(huge-3001x2003.jpg)" in report.checked
    assert "segment(exif-rotated.jpg)" in report.checked


def test_an_own_resize_reported_with_then_resize_passes():
    _check(ResizesAndSaysSo, huge=False).assert_ok()


def test_a_backend_that_forgets_generation_transforms_fails():
    report = _check(ForgetsItsResize)
    assert not report.ok
    text = "\n".join(report.problems)
    assert "px from the truth" in text and "Generation.transforms" in text
    worst = max(
        float(p.split(" landed ")[1].split(" px")[0]) for p in report.problems if " landed " in p
    )
    assert worst > 100


def test_a_backend_declaring_the_wrong_convention_fails():
    report = _check(WrongConvention)
    assert not report.ok
    assert any("blue square landed" in p for p in report.problems)


def test_a_fake_model_not_wired_to_the_oracle_is_told_so():
    plugin = scripted_plugin('[{"box_2d": [0, 0, 500, 500], "label": "cat"}]', tasks={"detect"})
    report = check_backend("scripted", plugins=[plugin], tasks=["detect"], huge=False)
    assert any("true_answer" in p for p in report.problems)
    check_backend(
        "scripted", plugins=[plugin], tasks=["detect"], huge=False, accuracy=False
    ).assert_ok()


@pytest.mark.parametrize(
    "convention", ["yxyx-1000", "xyxy-1000", "xyxy-1", "loc-1024", "xyxy-pixels"]
)
def test_the_oracle_speaks_every_convention(convention):
    sample = oracle_samples(huge=False)[0]
    text = true_answer(load_image(sample.data).image, convention)
    dets = vlmkit.parse(text, task="detect", image_size=sample.size, convention=convention)
    for target in sample.targets:
        (box,) = [d.box.xyxy for d in dets if d.label == target.label]
        assert np.max(np.abs(np.asarray(box) - target.xyxy)) <= tolerance_px(sample.size)


def test_the_session_fixture_loads_only_the_plugin_under_test(plugin_site, vlmkit_session):
    session = vlmkit_session("segmenter", entrypoints=True)  # broken plugins are installed too
    assert set(session.backends()) == {"segmenter"}
    assert {"coco", "yolo", "jsonl"} <= set(session.sinks())
    assert session.plugin_failures == []
    with pytest.raises(vlmkit.PluginError, match="registered by both"):
        vlmkit_session("good", entrypoints=True)  # two installed plugins claim "good"


def test_fixtures_have_docstrings(pytestconfig):
    from vlmkit.testing import pytest_plugin

    for name in ("vlmkit_session", "scripted_session"):
        assert getattr(pytest_plugin, name).__doc__, name
