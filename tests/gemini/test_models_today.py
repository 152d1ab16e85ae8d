"""The Gemini lineup of today (read 2026-12-03): the default model, retired names, thinking per
task, media resolution per part, cached tokens, and Flex/Priority — all through the real SDK and
the fake server, which refuses what each model family refuses."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("google.genai")
pytest.importorskip("vlmkit_gemini")

import vlmkit
from tests.gemini.conftest import MODEL, photo, tiny_video
from vlmkit import ConfigError
from vlmkit.ledger import read_ledger
from vlmkit_gemini.backend import DEFAULT_MODEL
from vlmkit_gemini.errors import SettingRefused
from vlmkit_gemini.lifecycle import RetiredModelWarning
from vlmkit_gemini.options import DEFAULT_MAX_OUTPUT_TOKENS
from vlmkit_gemini.pricing import PRICES

BOXES = [{"box_2d": [100, 100, 500, 500], "label": "cat"}]
POLYGONS = {
    "boxes": [
        {
            "box_2d": [100, 100, 500, 500],
            "label": "cat",
            "mask": [[100, 100], [500, 100], [500, 500], [100, 500]],
        }
    ]
}


@pytest.fixture
def clip(tmp_path):
    return tiny_video(tmp_path / "clip.mp4", seconds=12)


# ---- the default model ---------------------------------------------------------------------


def test_default_is_a_current_gemini_3_model(fake_gemini, gemini_session):
    fake_gemini.add_rule(text=BOXES)
    session = gemini_session(model=None)
    dets = session.detect(photo(), "cats")
    (req,) = fake_gemini.requests_of()
    assert DEFAULT_MODEL == "gemini-3.6-flash" and req.model == DEFAULT_MODEL
    assert dets.provenance.model == DEFAULT_MODEL and len(dets) == 1


def test_a_run_on_the_default_model_sends_nothing_the_model_refuses(
    fake_gemini, gemini_session, tmp_path, clip
):
    """Every task on the default model, as a labelling run does it: the fake answers 400 to any
    option Gemini 3.x refuses (thinking_budget with thinking_level, a 2.5-only setting...)."""
    fake_gemini.add_rule(prompt_contains="segmentation", text=POLYGONS)
    fake_gemini.add_rule(prompt_contains="Detect", text=BOXES)
    session = gemini_session(model=None, file_poll_interval_s=0.01)
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(3):
        photo(seed=index).save(folder / f"p{index}.jpg")
    run = session.run("detect", [folder], "cat", out_dir=tmp_path / "out")
    list(run)
    assert run.summary.done == 3 and run.summary.failed == 0
    masks = session.segment(photo(), "cats")
    assert masks[0].mask is not None and masks[0].mask.area > 0
    session.describe(photo())
    session.ocr(photo())
    session.video(clip, "What happens?")
    sent = fake_gemini.requests_of()
    assert sent and all(req.status == 200 for req in sent), [r.status for r in sent]
    for req in sent:
        assert req.model == DEFAULT_MODEL
        assert req.thinking_budget is None  # Gemini 3.x: never a budget
        assert req.media_resolution is None  # per part on 3.x, not for the whole request


def test_the_fake_refuses_what_each_model_refuses(fake_gemini, gemini_session):
    """The refusals the default-model test relies on are real 400s, named by vlmkit."""
    both = gemini_session(model="gemini-9-pro")  # unknown: nothing checked locally
    with pytest.raises(ConfigError, match="not both"):
        both.describe(photo(), thinking_budget=0, thinking_level="low")
    old = gemini_session(model="gemini-2.5-flash-lite", capabilities={"gemini-2.5*": _no_caps()})
    with pytest.raises(SettingRefused, match="thinking_level"):
        old.describe(photo(), thinking_level="low")
    assert fake_gemini.requests_of()[-1].status == 400
    three_eight = gemini_session(model="gemini-3.8-flash")
    with pytest.raises(ConfigError, match="low / medium / high"):  # refused before sending
        three_eight.detect(photo(), "cats", thinking_level="minimal")


def _no_caps():
    from vlmkit_gemini.models import ModelCaps

    return ModelCaps(thinking=None, known=False)


# ---- retired model names -------------------------------------------------------------------


def test_a_routed_retired_model_warns_naming_its_replacement(fake_gemini, gemini_session):
    fake_gemini.add_rule(text=BOXES)
    with pytest.warns(RetiredModelWarning, match=r"gemini-2.5-flash.*gemini-3.5-flash-lite"):
        session = gemini_session(model="gemini-2.5-flash")
    dets = session.detect(photo(), "cats")
    (req,) = fake_gemini.requests_of()
    assert req.status == 200 and req.model == "gemini-2.5-flash"  # the caller's choice is kept
    assert "thinking_config" not in req.generation_config  # unsure which knob: send neither
    lite = PRICES.lookup("gemini-3.5-flash-lite")
    assert dets.provenance.usage.cost_usd == pytest.approx(lite.cost(dets.provenance.usage))


def test_a_shut_down_model_warns_and_its_404_says_what_to_use(fake_gemini, gemini_session):
    with pytest.warns(
        RetiredModelWarning, match=r"no longer answers; use model='gemini-3.5-flash'"
    ):
        session = gemini_session(model="gemini-2.0-flash")
    with pytest.raises(vlmkit.InvalidRequest, match="not found"):
        session.describe(photo())


def test_current_models_do_not_warn(fake_gemini, gemini_session, recwarn):
    for model in ("gemini-3.6-flash", "gemini-3.8-flash", "gemini-3.5-flash-lite", MODEL):
        gemini_session(model=model)
    assert not [w for w in recwarn if issubclass(w.category, RetiredModelWarning)]


# ---- thinking ------------------------------------------------------------------------------


def test_thinking_level_is_a_per_task_knob(fake_gemini, gemini_session):
    fake_gemini.add_rule(text=BOXES)
    session = gemini_session(model=None)
    session.detect(photo(), "cats")
    session.detect(photo(), "cats", thinking_level="high")
    session.describe(photo())
    default, high, describe = fake_gemini.requests_of()
    assert default.thinking_level == "LOW"  # spatial default: Google advises little thinking
    assert high.thinking_level == "HIGH"
    assert describe.thinking_level is None  # other tasks: the model's own default
    assert all(r.thinking_budget is None for r in (default, high, describe))


def test_max_output_tokens_default_per_task_leaves_room_for_thinking(fake_gemini, gemini_session):
    fake_gemini.add_rule(prompt_contains="segmentation", text=POLYGONS)
    fake_gemini.add_rule(text=BOXES)
    session = gemini_session(model=None)
    session.detect(photo(), "cats")
    session.segment(photo(), "cats")
    session.describe(photo())
    session.detect(photo(), "cats", max_output_tokens=4000)
    limits = [r.generation_config["max_output_tokens"] for r in fake_gemini.requests_of()]
    assert limits == [
        DEFAULT_MAX_OUTPUT_TOKENS["detect"],
        DEFAULT_MAX_OUTPUT_TOKENS["segment"],
        DEFAULT_MAX_OUTPUT_TOKENS["describe"],
        4000,
    ]
    assert min(DEFAULT_MAX_OUTPUT_TOKENS.values()) >= 8192  # ~3k thinking + an answer


def test_thinking_that_ate_the_budget_is_reported_plainly(fake_gemini, gemini_session):
    fake_gemini.add_rule(text='[{"box_2d": [1', finish_reason="MAX_TOKENS", thoughts_tokens=2990)
    session = gemini_session(model=None)
    dets = session.detect(photo(), "cats", max_output_tokens=3000)
    assert dets.finish is vlmkit.FinishReason.MAX_TOKENS
    detail = dets.provenance.detail
    assert "thinking used the token budget" in detail and "2,990 thinking tokens" in detail
    assert "max_output_tokens=3,000" in detail and "thinking_level" in detail


# ---- media resolution ----------------------------------------------------------------------


def test_media_resolution_is_per_part_on_gemini_3_and_validated(fake_gemini, gemini_session):
    session = gemini_session(model=None)
    session.describe([photo(), photo(seed=1)], "Differences?", media_resolution="ultra_high")
    (req,) = fake_gemini.requests_of()
    assert req.status == 200
    assert req.part_media_resolution == ["MEDIA_RESOLUTION_ULTRA_HIGH"] * 2
    assert req.media_resolution is None
    old = gemini_session()  # Gemini 2.5: one setting per request, no ultra_high
    with pytest.raises(ConfigError, match=r"does not accept media_resolution='ultra_high'"):
        old.describe(photo(), media_resolution="ultra_high")
    old.describe(photo(), media_resolution="medium")
    assert fake_gemini.requests_of()[-1].media_resolution == "MEDIA_RESOLUTION_MEDIUM"
    assert fake_gemini.requests_of()[-1].part_media_resolution == []


def test_ultra_high_is_refused_for_video(fake_gemini, gemini_session, clip):
    session = gemini_session(model=None)
    with pytest.raises(ConfigError, match="images only"):
        session.video(clip, "What happens?", media_resolution="ultra_high")
    assert fake_gemini.requests_of() == []


# ---- cached input tokens -------------------------------------------------------------------


def test_cached_input_tokens_are_reported_and_priced_at_the_cached_rate(
    fake_gemini, gemini_session
):
    fake_gemini.add_rule(text="A photo.", usage={"cached_content_token_count": 200})
    session = gemini_session(model=None)
    usage = session.describe(photo()).provenance.usage
    assert usage.cached_tokens == 200 and usage.prompt_tokens > 200
    price = PRICES.lookup(DEFAULT_MODEL)
    assert price.cached_input == pytest.approx(price.input / 10)
    expected = (
        (usage.prompt_tokens - 200) * price.input
        + 200 * price.cached_input
        + (usage.output_tokens + usage.thinking_tokens) * price.output
    ) / 1e6
    assert usage.cost_usd == pytest.approx(expected)
    assert session.usage.cached_tokens == 200


def test_cached_tokens_reach_the_ledger_and_the_run_summary(fake_gemini, gemini_session, tmp_path):
    fake_gemini.add_rule(text=BOXES, usage={"cached_content_token_count": 100})
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(2):
        photo(seed=index).save(folder / f"p{index}.jpg")
    run = gemini_session(model=None).run("detect", [folder], "cat", out_dir=tmp_path / "out")
    list(run)
    assert run.summary.usage.cached_tokens == 200
    records = read_ledger(tmp_path / "out" / "results.jsonl").done.values()
    assert [r.result.provenance.usage.cached_tokens for r in records] == [100, 100]


# ---- Flex and Priority ---------------------------------------------------------------------


def test_flex_is_sent_as_service_tier_and_priced_at_half(fake_gemini, gemini_session):
    session = gemini_session(model=None)
    standard = session.describe(photo()).provenance.usage
    flex = session.describe(photo(), service_tier="flex").provenance.usage
    priority = session.describe(photo(), service_tier="priority").provenance.usage
    first, second, third = fake_gemini.requests_of()
    assert first.service_tier is None
    assert (second.service_tier, third.service_tier) == ("flex", "priority")
    assert flex.cost_usd == pytest.approx(standard.cost_usd / 2)
    assert priority.cost_usd == pytest.approx(standard.cost_usd * 1.8)
    with pytest.raises(ConfigError):
        session.describe(photo(), service_tier="cheap")


def test_a_flex_503_storm_completes(fake_gemini, gemini_session, tmp_path, sleeps):
    """Flex traffic is shed under load (503): retried like any transient error until done."""
    fake_gemini.fail_ratio(503, 0.5)
    fake_gemini.add_rule(text=BOXES)
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(8):
        photo(seed=index).save(folder / f"p{index}.jpg")
    session = gemini_session(model=None, retry_overrides={"max_attempts": 8})
    run = session.run(
        "detect", [folder], "cat", out_dir=tmp_path / "out", options={"service_tier": "flex"}
    )
    list(run)
    assert run.summary.done == 8 and run.summary.failed == 0
    statuses = [r.status for r in fake_gemini.requests_of()]
    assert statuses.count(503) >= 4 and statuses.count(200) == 8
    assert all(r.service_tier == "flex" for r in fake_gemini.requests_of())
    assert len(sleeps.calls) >= 4


@pytest.mark.parametrize(
    "model",
    [
        "gemini-3.8-flash",
        "gemini-3.7-flash",
        "gemini-3.6-flash",
        "gemini-3.5-flash",
        "gemini-3.5-flash-lite",
        "gemini-3.1-flash-lite",
        "gemini-3.1-pro-preview",
        "gemini-3-flash-preview",
        "gemini-robotics-er-2-preview",
        "gemini-2.5-flash-lite",
        "gemini-2.5-flash",  # retired, routed
        "gemini-2.5-pro",  # retired, routed
    ],
)
def test_every_current_model_gets_only_settings_it_accepts(fake_gemini, gemini_session, model):
    fake_gemini.add_rule(prompt_contains="segmentation", text=POLYGONS)
    fake_gemini.add_rule(text=BOXES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RetiredModelWarning)
        session = gemini_session(model=model)
    session.detect(photo(), "cats")
    session.segment(photo(), "cats")
    session.describe(photo(), media_resolution="high")
    session.ocr(photo(), boxes=True)
    statuses = [(r.status, r.body.get("error")) for r in fake_gemini.requests_of()]
    assert [status for status, _ in statuses] == [200] * 4, statuses
