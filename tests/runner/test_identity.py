"""Identity: an answer is reused only for the same question to the same model at the same place.

The answer cache keys on the backend's identity (name, distribution, answer-relevant settings
such as the endpoint; never a credential); a run folder refuses another ``--config``; cached
answers are counted and said.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

import vlmkit
from vlmkit.testing import ScriptedBackend
from vlmkit_gemini.testing.fake_server import FakeGemini

genai = pytest.importorskip("google.genai")


def _box(offset: int) -> str:
    return json.dumps([{"box_2d": [100, 100 + offset, 500, 500 + offset], "label": "cat"}])


class OffsetPlugin:
    """A third-party backend whose construction setting ``offset`` moves every box."""

    @vlmkit.hookimpl
    def vlmkit_backends(self):
        def factory(*, offset: int = 0, api_key: str | None = None, **config):
            return ScriptedBackend(_box(int(offset)), **config)

        yield vlmkit.BackendInfo(
            name="offset",
            factory=factory,
            tasks={"detect"},
            settings=(vlmkit.Option(name="offset", type=int), vlmkit.Option(name="api_key")),
        )


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (100, 100), (10, 200, 30)).save(path)
    return path


def _session(cache, **settings):
    return vlmkit.Session(
        "offset", plugins=[OffsetPlugin()], entrypoints=False, cache=cache, **settings
    )


def test_another_construction_setting_is_another_answer(tmp_path, photo):
    cache = tmp_path / "cache"
    with _session(cache, offset=0) as first:
        near = first.detect(photo, ["cat"])
    with _session(cache, offset=50) as second:
        far = second.detect(photo, ["cat"])
        assert len(second.backend.requests) == 1  # asked, not taken from the cache
    assert not far.provenance.cached
    assert far.xyxy[0][0] == pytest.approx(near.xyxy[0][0] + 5)
    with _session(cache, offset=50, api_key="another-key") as third:  # a key is not an answer
        again = third.detect(photo, ["cat"])
        assert third.backend.requests == [] and again.provenance.cached


def test_another_gemini_endpoint_is_never_served_from_the_cache(tmp_path, photo):
    cache = tmp_path / "cache"
    with FakeGemini() as one, FakeGemini() as other:
        one.add_rule(text=_box(0))
        other.add_rule(text=_box(50))
        with vlmkit.Session(
            "gemini-api", api_key="key-one-SECRET", base_url=one.base_url, cache=cache
        ) as s:
            first = s.detect(photo, ["cat"])
        with vlmkit.Session(
            "gemini-api", api_key="key-two-SECRET", base_url=other.base_url, cache=cache
        ) as s:
            second = s.detect(photo, ["cat"])
            identity = s.backend_identity
        assert len(other.requests_of()) == 1
        assert identity["settings"]["base_url"] == other.base_url
    assert not second.provenance.cached
    assert second.xyxy[0][0] != first.xyxy[0][0]
    assert identity["distribution"].startswith("vlmkit-gemini")
    stored = "".join(p.read_text() for p in cache.rglob("*.json"))
    assert "SECRET" not in stored and "SECRET" not in json.dumps(identity)


def test_a_run_folder_refuses_another_config_naming_the_setting(tmp_path, photo):
    out = tmp_path / "out"
    with _session(None, offset=0) as s:
        list(s.run("detect", [photo], ["cat"], out_dir=out))
    with _session(None, offset=100) as s, pytest.raises(vlmkit.ConfigError, match="offset"):
        list(s.run("detect", [photo], ["cat"], out_dir=out))
    with _session(None, offset=0, api_key="k-SECRET") as s:  # same question: resumes
        run = s.run("detect", [photo], ["cat"], out_dir=out)
        assert list(run) == [] and run.summary.resumed == 1
    assert "SECRET" not in (out / "run.json").read_text()


def test_cached_answers_are_counted_and_said(tmp_path, photo):
    cache = tmp_path / "cache"
    with _session(cache) as s:
        list(s.run("detect", [photo], ["cat"], out_dir=tmp_path / "a"))
        run = s.run("detect", [photo], ["cat"], out_dir=tmp_path / "b")
        list(run)
    assert run.summary.done == 1 and run.summary.cached == 1
    assert run.summary.to_dict()["cached"] == 1
    assert "cached 1" in str(run.summary)


def test_gemini_declares_what_changes_answers(tmp_path, photo):
    with FakeGemini() as one, FakeGemini() as other:
        one.add_rule(text=_box(0))
        other.add_rule(text=_box(0))
        out = tmp_path / "out"
        with vlmkit.Session("gemini-api", api_key="k", base_url=one.base_url) as s:
            list(s.run("detect", [photo], ["cat"], out_dir=out))
        slower = vlmkit.Session("gemini-api", api_key="k", base_url=one.base_url, timeout_s=300)
        with slower as s:  # a timeout changes no answer: the folder resumes
            run = s.run("detect", [photo], ["cat"], out_dir=out)
            assert list(run) == [] and run.summary.resumed == 1
        elsewhere = vlmkit.Session("gemini-api", api_key="k", base_url=other.base_url)
        with elsewhere as s, pytest.raises(vlmkit.ConfigError, match="--config base_url"):
            list(s.run("detect", [photo], ["cat"], out_dir=out))
        vertex = vlmkit.Session(
            "gemini-vertex", base_url=one.base_url, project="p1", location="europe-west4",
            credentials=_StaticCredentials(),
        )  # fmt: skip
        with vertex as s:
            settings = s.backend_identity["settings"]
    assert settings["project"] == "p1" and settings["location"] == "europe-west4"
    assert "timeout_s" not in settings and "credentials" not in settings


class _StaticCredentials:
    token = "t"
    valid = True
    expired = False

    def refresh(self, request):
        pass

    def before_request(self, request, method, url, headers):
        headers["authorization"] = "Bearer t"
