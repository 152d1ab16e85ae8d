"""Run engines are plugins: discovered through the ``vlmkit_engines`` hook, chosen with
``vlmkit label --engine NAME``, and the lazy ``vlmkit.ray`` face says how to get Ray's. None of
this needs Ray."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import vlmkit
import vlmkit.ray
from tests.core import inline_engine
from vlmkit.cli import app
from vlmkit.engines import SessionSpec, build_engine
from vlmkit.ledger import read_ledger

PLUGINS = ["--plugin", "tests.cli.scripted_backends", "--plugin", "tests.core.inline_engine"]
ENV = {"VLMKIT_LOAD_PLUGINS": "vlmkit", "VLMKIT_PLUGINS": None, "VLMKIT_BACKEND": None}


def photos(folder, count=3):
    folder.mkdir()
    for i in range(count):
        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_a_third_party_engine_answers_vlmkit_label_with_the_same_run_folder(tmp_path):
    inline_engine.CALLS.clear()
    folder = photos(tmp_path / "photos")
    command = [*PLUGINS, "label", str(folder), "--backend", "scripted", "--prompt", "cat",
               "--config", "api_key=key-123456789", "--out", str(tmp_path / "out"),
               "--sink", "coco", "--engine", "inline", "--engine-option", "label=first",
               "--no-progress"]  # fmt: skip
    done = CliRunner().invoke(app, command, env=ENV)
    assert done.exit_code == 0, done.output
    assert len(read_ledger(tmp_path / "out" / "results.jsonl").done) == 3
    assert (tmp_path / "out" / "annotations.json").exists()
    call = inline_engine.CALLS[-1]
    assert call["label"] == "first"
    spec = call["spec"]  # what a worker needs to build the same Session
    assert (spec.backend, spec.settings) == ("scripted", {"api_key": "key-123456789"})
    assert spec.plugins == ("tests.cli.scripted_backends", "tests.core.inline_engine")
    with spec.session() as rebuilt:  # as a worker would
        assert rebuilt.backend_info.name == "scripted" and "inline" in rebuilt.engines()
    assert call["arguments"]["prompt"] == "cat" and call["arguments"]["sinks"] == ["coco"]
    again = CliRunner().invoke(app, command, env=ENV)
    assert "resumed 3" in again.output


def test_engine_options_are_checked_and_address_needs_an_engine(tmp_path):
    folder = photos(tmp_path / "photos", 1)
    base = [*PLUGINS, "label", str(folder), "--backend", "scripted", "--out", str(tmp_path / "o")]
    wrong = CliRunner().invoke(app, [*base, "--engine", "inline", "--engine-option", "colour=1"])
    assert wrong.exit_code != 0 and "no option(s) colour" in wrong.output
    local = CliRunner().invoke(app, [*base, "--address", "auto"], env=ENV)
    assert local.exit_code != 0 and "need an engine such as --engine ray" in local.output
    unknown = CliRunner().invoke(app, [*base, "--engine", "spark"], env=ENV)
    assert unknown.exit_code != 0
    assert (
        "no engine named 'spark'" in unknown.output and "pip install vlmkit-ray" in unknown.output
    )
    assert not (tmp_path / "o" / "results.jsonl").exists()


def test_an_engine_that_is_not_installed_says_how_to_get_it():
    session = vlmkit.Session(entrypoints=False)
    with session, pytest.raises(vlmkit.BackendNotFound, match="pip install vlmkit-ray"):
        build_engine(session, "ray")


def test_the_lazy_ray_face_names_the_distribution_when_it_is_missing(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vlmkit_ray", None)  # as if not installed
    with pytest.raises(vlmkit.ConfigError, match="pip install vlmkit-ray"):
        vlmkit.ray.label([tmp_path], backend="gemini-api", out=tmp_path / "out")


def test_a_session_spec_builds_the_session_and_never_shows_its_settings():
    spec = SessionSpec(
        backend="scripted", settings={"api_key": "secret-key-123"},
        plugins=["tests.cli.scripted_backends"],
    )  # fmt: skip
    assert "secret-key-123" not in repr(spec)
    with spec.session() as session:
        assert session.backend_info.name == "scripted"
