"""``points`` as a task beside detect: the hook, its default prompt per convention, the
capability check, middleware, and backends written before the task existed."""

from __future__ import annotations

import re

import numpy as np
import pytest

import vlmkit
from vlmkit import FinishReason, Generation, Session, UnsupportedTask
from vlmkit.media import ResizePolicy
from vlmkit.prompts import DEFAULT_PROMPTS, templates_for
from vlmkit.testing import check_backend, scripted_plugin, true_answer

WIDE = np.zeros((1000, 2000, 3), dtype=np.uint8)  # 2000 x 1000
CUP = '```json\n[{"point": [500, 250], "label": "cup"}]\n```'


def session_for(script, **backend):
    return Session("scripted", plugins=[scripted_plugin(script, **backend)], entrypoints=False)


def test_points_run_through_the_generic_route_with_googles_prompt():
    with session_for(CUP, image_policy=ResizePolicy.fit(500)) as session:
        points = session.points(WIDE, ["cup", "plate"])
        default = session.points(WIDE)
        first, second = session.backend.requests
    np.testing.assert_allclose(points.xy, [[500, 500]])  # 0-1000 of the original 2000x1000
    assert points.labels == ("cup",) and points.provenance.task == "points"
    assert first.json and '"cup", "plate"' in first.prompt and "[y, x]" in first.prompt
    assert first.labels == ("cup", "plate")
    assert second.prompt == DEFAULT_PROMPTS["points"] and len(default) == 1


def test_other_conventions_are_asked_for_their_own_axes_and_grid():
    pixels = templates_for("xyxy-pixels")
    assert "[x, y] in pixel coordinates" in pixels.points
    answer = '[{"point": [100, 50], "label": "cup"}]'  # x, y in pixels of the 500x250 sent
    with session_for(
        answer, convention="xyxy-pixels", image_policy=ResizePolicy.fit(500)
    ) as session:
        points = session.points(WIDE, "cup")
        assert "[x, y] in pixel coordinates" in session.backend.requests[0].prompt
    np.testing.assert_allclose(points.xy, [[400, 200]])


def test_a_backend_that_does_not_declare_points_names_those_that_can():
    plugins = [
        scripted_plugin(CUP, name="boxes-only", tasks={"detect"}),
        scripted_plugin(CUP, name="pointer", tasks={"detect", "points"}),
    ]
    with Session("boxes-only", plugins=plugins, entrypoints=False) as session:
        with pytest.raises(UnsupportedTask, match=r"does not support points.*pointer") as info:
            session.points(WIDE, "cup")
        assert info.value.alternatives == ("pointer",)
        assert session.backend.requests == []  # refused before any call


class OldBackend(vlmkit.Backend):
    """A third-party backend written before ``points`` existed: generate() only."""

    convention = "yxyx-1000"

    def generate(self, request):
        return vlmkit.Generation(text=CUP if request.task == "points" else "[]")


class OldPlugin:
    @vlmkit.hookimpl
    def vlmkit_backends(self):
        yield vlmkit.BackendInfo(name="old", factory=OldBackend, tasks={"detect"})
        yield vlmkit.BackendInfo(name="old-pointing", factory=OldBackend, tasks={"points"})


def test_backends_written_before_points_keep_working_and_can_opt_in():
    with Session("old", plugins=[OldPlugin()], entrypoints=False) as session:
        assert len(session.detect(WIDE, "cup")) == 0
        with pytest.raises(UnsupportedTask):
            session.points(WIDE, "cup")
    with Session("old-pointing", plugins=[OldPlugin()], entrypoints=False) as session:
        assert session.points(WIDE, "cup").labels == ("cup",)


def test_the_answer_cache_and_usage_meter_wrap_points(tmp_path):
    plugin = scripted_plugin(CUP)
    with Session("scripted", plugins=[plugin], entrypoints=False, cache=tmp_path) as session:
        first = session.points(WIDE, "cup")
        again = session.points(WIDE, "cup")
        assert len(session.backend.requests) == 1  # the second answer came from the cache
        assert session.usage_meter.by_task["points"].calls == 1
    assert again.provenance.cached and again.xy.tolist() == first.xy.tolist()


def test_blocked_and_cut_off_pointing_answers_are_outcomes():
    blocked = Generation(text=None, finish=FinishReason.SAFETY)
    with session_for(blocked) as session:
        points = session.points(WIDE, "cup")
    assert len(points) == 0 and points.finish is FinishReason.SAFETY
    cut = Generation(text='[{"point": [1', finish=FinishReason.MAX_TOKENS)
    with session_for(cut) as session:
        points = session.points(WIDE, "cup")
    assert len(points) == 0 and points.report.truncated


def test_the_conformance_check_measures_points_against_the_oracle():
    def oracle(request):
        return true_answer(request.images[0].image, "yxyx-1000", task=request.task)

    good = scripted_plugin({"points": oracle}, tasks={"points"})
    report = check_backend("scripted", plugins=[good], entrypoints=False, tasks={"points"})
    report.assert_ok()
    assert "points(exif-rotated.jpg)" in report.checked

    def transposed(request):  # a model that writes [x, y] where [y, x] is declared
        return re.sub(r"\[(\d+), (\d+)\]", r"[\2, \1]", oracle(request))

    bad = scripted_plugin({"points": transposed}, tasks={"points"})
    report = check_backend("scripted", plugins=[bad], entrypoints=False, tasks={"points"})
    assert any("landed" in problem for problem in report.problems)
