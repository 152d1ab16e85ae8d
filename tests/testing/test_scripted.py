"""``scripted_plugin`` declares exactly the tasks its script answers: a third party's fake
backend never claims a task it cannot answer."""

from __future__ import annotations

import pytest

import vlmkit
from vlmkit.records import TASKS
from vlmkit.testing import ScriptedBackend, scripted_plugin

BOX = '[{"box_2d": [100, 100, 500, 500], "label": "cat"}]'


def image() -> object:
    from PIL import Image

    return Image.new("RGB", (64, 48), "grey")  # never sent: the host refuses the task first


def session(plugin: object) -> vlmkit.Session:
    return vlmkit.Session("scripted", plugins=[plugin], entrypoints=False)


def test_a_per_task_script_declares_exactly_its_tasks() -> None:
    with session(scripted_plugin({"detect": BOX, "ocr": "STOP"})) as s:
        assert s.backend_info.tasks == {"detect", "ocr"}
        with pytest.raises(vlmkit.UnsupportedTask, match="'scripted' does not support points"):
            s.points(image(), ["cat"])
        with pytest.raises(vlmkit.UnsupportedTask, match="does not support describe"):
            s.describe(image())


def test_a_script_for_everything_declares_every_task() -> None:
    for script in (BOX, [BOX, BOX], lambda request: BOX):
        with session(scripted_plugin(script)) as s:
            assert s.backend_info.tasks == set(TASKS)


def test_declaring_a_task_the_script_does_not_answer_is_refused() -> None:
    with pytest.raises(vlmkit.ConfigError, match=r"no answer for 'points'.*add a 'points' entry"):
        scripted_plugin({"detect": BOX}, tasks={"detect", "points"})
    with pytest.raises(vlmkit.ConfigError, match=r"'detection', which is not a task.*detect"):
        scripted_plugin({"detection": BOX})
    # a subset of what the script answers is a choice, not a misdeclaration
    with session(scripted_plugin({"detect": BOX, "ocr": "x"}, tasks={"detect"})) as s:
        assert s.backend_info.tasks == {"detect"}


def test_the_backend_alone_names_the_missing_task() -> None:
    backend = ScriptedBackend({"detect": BOX})
    request = vlmkit.Request(task="points", prompt="Point to the cat.")
    with pytest.raises(vlmkit.UnsupportedTask, match=r"no answer for task 'points'.*detect"):
        backend.generate(request)
