"""Prompts follow the backend's declared convention; a backend can bring its own templates;
the task request keeps what the user asked for."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

import vlmkit
from vlmkit import ResizePolicy
from vlmkit.prompts import prompt_for, templates_for
from vlmkit.testing import scripted_plugin, true_answer


def _photo() -> np.ndarray:
    """1280×960 grey with a red and a blue square on even pixels (exact at half size)."""
    pixels = np.full((960, 1280, 3), 128, np.uint8)
    pixels[120:480, 200:520] = (220, 30, 30)
    pixels[600:900, 800:1200] = (30, 60, 220)
    return pixels


def obedient_model(request: vlmkit.Request) -> str:
    """A fake model that writes boxes the way the prompt asks for them."""
    prompt = request.prompt
    if '"bbox_2d"' in prompt and "pixel" in prompt and "[x1, y1, x2, y2]" in prompt:
        convention = "xyxy-pixels"
    elif '"box_2d"' in prompt and "[ymin, xmin, ymax, xmax]" in prompt and "0-1000" in prompt:
        convention = "yxyx-1000"
    else:
        raise AssertionError(f"the fake model does not understand {prompt!r}")
    return true_answer(request.images[0].image, convention)


def test_a_pixel_convention_backend_gets_a_pixel_prompt_and_lands_within_1px():
    plugin = scripted_plugin(
        obedient_model, convention="xyxy-pixels", image_policy=ResizePolicy.fit(640)
    )
    with vlmkit.Session("scripted", plugins=[plugin], entrypoints=False) as session:
        dets = session.detect(_photo(), ["red square", "blue square"])
        sent = session.backend.requests[0]
    assert sent.images[0].image.size == (640, 480)
    assert '"bbox_2d"' in sent.prompt and "box_2d" not in sent.prompt.replace("bbox_2d", "")
    order = np.argsort(dets.labels)
    assert [dets.labels[i] for i in order] == ["blue square", "red square"]
    np.testing.assert_allclose(
        dets.xyxy[order], [[800, 600, 1200, 900], [200, 120, 520, 480]], atol=1
    )
    assert dets.report.clean


def test_google_prompts_stay_for_yxyx_1000():
    text, labels = prompt_for("detect", ["person", "car"])
    assert text.startswith("Detect the person and car in the image.")
    assert '"box_2d" as [ymin, xmin, ymax, xmax] normalized to 0-1000' in text
    assert labels == ("person", "car")


@pytest.mark.parametrize(
    ("convention", "expected"),
    [
        ("xyxy-pixels", '"bbox_2d" as [x1, y1, x2, y2] in pixel coordinates of the image'),
        ("xyxy-1000", '"bbox_2d" as [x1, y1, x2, y2] normalized to 0-1000'),
        ("xyxy-1", "as fractions of the image width and height, from 0 to 1"),
        ("yxyx-1", '"box_2d" as [ymin, xmin, ymax, xmax] as fractions'),
        ("loc-1024", "detect cat ; dog"),
    ],
)
def test_every_convention_has_its_own_templates(convention, expected):
    text, _ = prompt_for("detect", ["cat", "dog"], convention=convention)
    assert expected in text
    ocr, _ = prompt_for("ocr", None, convention=convention, boxes=True)
    assert ocr == templates_for(convention).ocr_boxes


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("the main objects", "Detect the main objects in the image."),
        ("a red car", "Detect the red car in the image."),
        ("all rainbow socks", "Detect all rainbow socks in the image."),
        ("wooden and glass items", "Detect the wooden and glass items in the image."),
    ],
)
def test_a_description_reads_naturally_whatever_its_article(description, expected):
    text, _ = prompt_for("detect", description)
    assert text.startswith(expected)
    assert "the the" not in text and "the all" not in text


def test_a_backend_brings_its_own_templates_and_sees_what_the_user_asked():
    seen: list[vlmkit.TaskRequest] = []

    class Qwenish(vlmkit.Backend):
        convention = "xyxy-pixels"
        prompt_templates: ClassVar = {
            "detect": "Locate every {things} ({labels}); report bbox_2d in JSON."
        }

        def generate(self, request):
            return vlmkit.Generation(text="[]")

        @vlmkit.hookimpl
        def vlmkit_detect(self, backend, request, runtime):
            seen.append(request)
            return vlmkit.run_generic(backend, request, runtime)

    class Plugin:
        @vlmkit.hookimpl
        def vlmkit_backends(self):
            yield vlmkit.BackendInfo(name="qwenish", factory=Qwenish, tasks={"detect"})

    with vlmkit.Session("qwenish", plugins=[Plugin()], entrypoints=False) as session:
        session.detect(_photo(), ["cat", "dog"])
        session.detect(_photo(), "the main objects")
    assert seen[0].prompt == 'Locate every cat and dog ("cat", "dog"); report bbox_2d in JSON.'
    assert seen[0].labels == ("cat", "dog") and seen[0].description is None
    assert seen[1].description == "the main objects" and seen[1].labels == ()
    assert seen[1].prompt.startswith("Locate every main objects")


def test_unknown_template_names_are_refused():
    with pytest.raises(vlmkit.ConfigError, match="unknown prompt template"):
        templates_for("xyxy-pixels", {"detetc": "x"})


def test_a_template_with_an_unknown_field_is_a_config_error():
    templates = templates_for("xyxy-pixels", {"detect": 'Find {things} as {"bbox_2d": ...}'})
    with pytest.raises(vlmkit.ConfigError, match="write literal braces"):
        prompt_for("detect", ["cat"], templates=templates)


@pytest.mark.parametrize("description", ["the main objects", "all rainbow socks", "cups"])
def test_segment_prompts_stay_recognisable_to_the_gemini_polygon_route(description):
    backend = pytest.importorskip("vlmkit_gemini.backend")
    text, _ = prompt_for("segment", description)
    assert "the the" not in text
    assert backend.polygon_segment_prompt(text) != text  # rewritten to ask for polygons
