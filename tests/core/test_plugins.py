"""Discovery and isolation of plugins from really installed distributions."""

from __future__ import annotations

import numpy as np
import pytest

import vlmkit
from vlmkit import BackendNotFound, PluginError, PluginWarning, Session

IMAGE = np.zeros((100, 200, 3), dtype=np.uint8)


def only(monkeypatch, *names):
    monkeypatch.setenv("VLMKIT_LOAD_PLUGINS", ",".join(names))


def test_backend_found_through_its_entry_point(plugin_site, monkeypatch):
    only(monkeypatch, "vlmkit-test-good")
    with Session("good") as session:
        info = session.backend_info
        assert info.plugin == "good"
        assert info.distribution == "vlmkit-test-good 1.0"
        dets = session.detect(IMAGE, "cat")
        np.testing.assert_allclose(dets.xyxy, [[0, 0, 100, 50]])
        assert "good-sink" in session.sinks()


def test_broken_and_misspelled_plugins_are_reported_while_the_rest_works(plugin_site, monkeypatch):
    only(
        monkeypatch,
        "vlmkit-test-good",
        "vlmkit-test-broken",
        "vlmkit-test-typo",
        "vlmkit-test-undecorated",
    )
    with pytest.warns(PluginWarning) as warned:
        session = Session("good")
    with session:
        failures = {f.plugin: f for f in session.plugin_failures}
        assert set(failures) == {"broken", "typo", "undecorated"}
        assert failures["broken"].distribution == "vlmkit-test-broken 1.0"
        assert failures["broken"].error_type == "ModuleNotFoundError"
        assert "torch_that_is_not_installed" in failures["broken"].error
        assert "did you mean 'vlmkit_backends'" in failures["typo"].error
        assert "not decorated with @vlmkit.hookimpl" in failures["undecorated"].error
        assert len(session.detect(IMAGE, "cat")) == 1  # the good plugin still works
    assert len(warned) >= 3
    # a refused plugin is rolled back, not half-registered
    assert not session.plugin_manager.has_plugin("typo")


def test_strict_mode_raises_on_a_broken_plugin(plugin_site, monkeypatch):
    only(monkeypatch, "vlmkit-test-good", "vlmkit-test-broken")
    with pytest.raises(PluginError, match=r"broken.*vlmkit-test-broken"):
        Session(strict=True)


def test_duplicate_names_are_an_error_naming_both(plugin_site, monkeypatch):
    only(monkeypatch, "vlmkit-test-good", "vlmkit-test-dupe")
    session = Session()
    assert "good" not in session.backends()
    assert sorted(session.conflicts[("vlmkit_backends", "good")]) == ["dupe", "good"]
    with pytest.raises(PluginError, match=r"'good' is registered by both '(good|dupe)' and"):
        Session("good")
    with pytest.raises(PluginError, match="registered by both"):
        Session(strict=True)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (None, {"segmenter", "openai-compatible"}),  # 'good' is claimed twice: unavailable
        ("", set()),
        ("vlmkit-test-good", {"good"}),
        ("segmenter,openai-compatible", {"segmenter", "openai-compatible"}),
    ],
)
def test_vlmkit_load_plugins(plugin_site, monkeypatch, setting, expected):
    if setting is None:
        monkeypatch.delenv("VLMKIT_LOAD_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("VLMKIT_LOAD_PLUGINS", setting)
    with pytest.warns(PluginWarning) if setting is None else _nothing():
        session = Session()
    names = set(session.backends())
    assert expected <= names
    if setting is not None:
        assert names == expected
    if setting == "":
        assert not session.sinks()  # nothing at all loads, not even built-in sinks


def test_entrypoints_argument_overrides_the_environment(plugin_site, monkeypatch):
    monkeypatch.setenv("VLMKIT_LOAD_PLUGINS", "")
    assert set(Session(entrypoints=["vlmkit-test-good"]).backends()) == {"good"}
    assert not Session(entrypoints=False).backends()


def test_unknown_backend_lists_what_is_installed(plugin_site, monkeypatch):
    only(monkeypatch, "vlmkit-test-good", "vlmkit-test-segmenter")
    with pytest.raises(BackendNotFound, match="installed: good, segmenter"):
        Session("nope")


def test_unsupported_task_names_the_installed_alternatives(plugin_site, monkeypatch):
    only(monkeypatch, "vlmkit-test-good", "vlmkit-test-segmenter")
    with Session("good") as session, pytest.raises(vlmkit.UnsupportedTask) as info:
        session.segment(IMAGE, "cat")
    assert info.value.alternatives == ("segmenter",)
    assert "segmenter" in str(info.value)


def test_two_sessions_with_different_plugins_do_not_affect_each_other():
    from vlmkit.testing import scripted_plugin

    cat = scripted_plugin('[{"box_2d": [0, 0, 500, 500], "label": "cat"}]', name="cat")
    dog = scripted_plugin('[{"box_2d": [0, 0, 1000, 1000], "label": "dog"}]', name="dog")

    class Shout:
        @vlmkit.hookimpl(wrapper=True)
        def vlmkit_detect(self):
            result = yield
            return result.filter(["nothing"])  # this middleware empties results

    with (
        Session("cat", plugins=[cat], entrypoints=False) as one,
        Session("dog", plugins=[dog, Shout()], entrypoints=False) as two,
    ):
        assert set(one.backends()) == {"cat"} and set(two.backends()) == {"dog"}
        assert one.detect(IMAGE, "x").labels == ("cat",)
        assert two.detect(IMAGE, "x").labels == ()
        assert one.detect(IMAGE, "x").labels == ("cat",)
        assert one.plugin_manager is not two.plugin_manager


@pytest.mark.slow
def test_task_hooks_in_plugin_modules_must_be_middleware(tmp_path, monkeypatch):
    import sys
    import textwrap

    from tests.distributions import _write

    folder = _write(
        tmp_path / "src",
        "vlmkit-test-hijack",
        textwrap.dedent("""
        import vlmkit

        @vlmkit.hookimpl
        def vlmkit_detect(request):
            return None
        """),
    )
    import subprocess

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(tmp_path / "site"),
            str(folder),
        ],
        check=True,
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("VLMKIT_LOAD_PLUGINS", "vlmkit-test-hijack")
    with pytest.warns(PluginWarning, match="must be middleware"):
        session = Session()
    assert session.plugin_failures[0].plugin == "hijack"
    sys.modules.pop("vlmkit_test_hijack", None)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_misspelled_vlmkit_load_plugins_warns_with_the_names_that_exist(plugin_site, monkeypatch):
    monkeypatch.setenv("VLMKIT_LOAD_PLUGINS", "segmentr,vlmkit")
    with pytest.warns(PluginWarning, match="'segmentr'.*did you mean 'segmenter'") as caught:
        session = Session()
    assert "vlmkit-test-good" in str(caught[0].message)  # the names that exist are listed
    assert set(session.backends()) == set()
    assert {"coco", "yolo"} <= set(session.sinks())  # the correct name still loads
