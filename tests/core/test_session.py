"""The Session's task pipeline with a scripted backend: prompts, options, outcomes, middleware."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import vlmkit
from vlmkit import (
    ConfigError,
    FinishReason,
    Generation,
    MediaError,
    Option,
    ParseError,
    Session,
    UnsupportedTask,
    Usage,
)
from vlmkit.media import ResizePolicy
from vlmkit.testing import ScriptedBackend, check_backend, scripted_plugin, true_answer

CAT = '```json\n[{"box_2d": [100, 200, 500, 600], "label": "cat"}]\n```'
WIDE = np.zeros((1000, 2000, 3), dtype=np.uint8)  # 2000 x 1000


def session_for(script, **kwargs):
    backend_keys = ("convention", "image_policy", "options", "batch_size", "latency_s", "tasks")
    backend = {k: kwargs.pop(k) for k in list(kwargs) if k in backend_keys}
    return Session(
        "scripted", plugins=[scripted_plugin(script, **backend)], entrypoints=False, **kwargs
    )


# -- a generate-only backend gets correct pixels ---------------------------------------------
class GenerateOnly(vlmkit.Backend):
    """What a third party writes: declarations and generate(), nothing else."""

    convention = "yxyx-1000"
    image_policy = ResizePolicy.fit(500)

    def __init__(self):
        self.seen_sizes = []

    def generate(self, request):
        self.seen_sizes.append(request.images[0].image.size)
        return vlmkit.Generation(text=CAT)


class GenerateOnlyPlugin:
    @vlmkit.hookimpl
    def vlmkit_backends(self):
        yield vlmkit.BackendInfo(name="generate-only", factory=GenerateOnly, tasks={"detect"})


def test_generate_only_backend_maps_a_resized_image_back_to_original_pixels():
    with Session("generate-only", plugins=[GenerateOnlyPlugin()], entrypoints=False) as session:
        dets = session.detect(WIDE, ["cat"])
        assert session.backend.seen_sizes == [(500, 250)]  # the model saw a thumbnail
    np.testing.assert_allclose(dets.xyxy, [[400, 100, 1200, 500]])  # original pixels
    assert dets.image_size == (2000, 1000)
    assert dets.provenance.transform.sent_size == (500, 250)


@pytest.mark.parametrize(
    ("convention", "answer"),
    [  # the same box written in each dialect, relative to the 600x600 letterboxed canvas
        ("yxyx-1000", '[{"box_2d": [300, 100, 500, 300], "label": "cat"}]'),
        ("xyxy-pixels", '[{"bbox_2d": [60, 180, 180, 300], "label": "cat"}]'),
        ("xyxy-1", '[{"bbox": [0.1, 0.3, 0.3, 0.5], "label": "cat"}]'),
    ],
)
def test_letterboxed_images_map_back_for_every_convention(convention, answer):
    # 2000x1000 fits a 600x600 canvas as 600x300 with 150 px of padding on top.
    with session_for(
        answer, convention=convention, image_policy=ResizePolicy.letterbox(600, 600)
    ) as session:
        dets = session.detect(WIDE, "cat")
    np.testing.assert_allclose(dets.xyxy, [[200, 100, 600, 500]], atol=1e-9)


# -- prompts and options ------------------------------------------------------------------
def test_label_lists_and_default_prompts():
    with session_for(CAT) as session:
        session.detect(WIDE, ["person", "car"])
        session.detect(WIDE)
        session.describe([WIDE, WIDE])
        session.ocr(WIDE, boxes=True)
        prompts = [r.prompt for r in session.backend.requests]
    assert "person and car" in prompts[0] and '"person", "car"' in prompts[0]
    assert prompts[1].startswith("Detect the all of the prominent items")
    assert prompts[2] == "Caption these images."
    assert '"box_2d"' in prompts[3] and '"text"' in prompts[3]


def test_a_prompt_is_built_once_per_session_and_still_differs_where_it_should(monkeypatch):
    """Issue 16: a run asks the same prompt for every item; the session builds it once."""
    import vlmkit.session as session_module

    built = []
    real = session_module.prompt_for

    def counting(*args, **kwargs):
        built.append(args[:2])
        return real(*args, **kwargs)

    monkeypatch.setattr(session_module, "prompt_for", counting)
    with session_for(CAT) as session:
        for _ in range(3):
            session.detect(WIDE, ["person", "car"])
        session.detect(WIDE, ("person", "car"))  # the same labels as a tuple
        session.detect(WIDE, "person")  # a description, not a label list
        session.detect(WIDE)
        session.describe([WIDE, WIDE])
        session.describe([WIDE])  # another image count: another prompt
        prompts = [r.prompt for r in session.backend.requests]
    assert len(built) == 6
    assert prompts[0] == prompts[1] == prompts[2] == prompts[3]
    assert len({prompts[3], prompts[4], prompts[5]}) == 3
    assert prompts[6] == "Caption these images." and prompts[7] != prompts[6]

    with session_for(CAT) as session:  # a new prompt per image keeps the memo bounded
        for index in range(200):
            session.detect(WIDE, f"thing number {index}")
        assert len(session._prompts) <= session_module._PROMPTS_KEPT
        assert "thing number 199" in session.backend.requests[-1].prompt


def test_per_call_options_are_validated_against_the_declaration():
    budget = Option(name="max_soft_tokens", type=int, choices=(70, 140, 280))
    with session_for(CAT, options=[budget]) as session:
        session.detect(WIDE, "cat", max_soft_tokens="140")
        assert session.backend.requests[-1].options == {"max_soft_tokens": 140}
        with pytest.raises(ConfigError, match="choose one of"):
            session.detect(WIDE, "cat", max_soft_tokens=100)
        with pytest.raises(ConfigError, match=r"has no option.*temprature.*max_soft_tokens"):
            session.detect(WIDE, "cat", temprature=0.2)
        assert len(session.backend.requests) == 1  # refused before any model call


def test_unsupported_task_without_alternatives():
    with session_for(CAT, tasks={"detect"}) as session, pytest.raises(UnsupportedTask) as info:
        session.ocr(WIDE)
    assert info.value.alternatives == ()


# -- outcomes -----------------------------------------------------------------------------
def test_blocked_answer_is_an_outcome_not_a_crash():
    blocked = Generation(text=None, finish=FinishReason.SAFETY, detail="SAFETY")
    with session_for({"detect": blocked, "describe": blocked}) as session:
        dets = session.detect(WIDE, "cat")
        text = session.describe(WIDE)
    assert len(dets) == 0 and dets.finish is FinishReason.SAFETY and not dets.complete
    assert dets.provenance.detail == "SAFETY"  # the provider's own words reach the user
    assert text.text == "" and text.finish is FinishReason.SAFETY


def test_truncated_answer_keeps_complete_items():
    cut = Generation(text=CAT[:-5] + ', {"box_2d": [1, 2', finish=FinishReason.MAX_TOKENS)
    with session_for(cut) as session:
        dets = session.detect(WIDE, "cat")
    assert dets.labels == ("cat",) and dets.report.truncated
    assert dets.finish is FinishReason.MAX_TOKENS and not dets.complete


def test_truncated_before_any_item_is_an_empty_flagged_outcome():
    with session_for(Generation(text='[{"box', finish=FinishReason.MAX_TOKENS)) as session:
        dets = session.detect(WIDE, "cat")
    assert len(dets) == 0 and dets.report.truncated


def test_gibberish_cut_off_by_the_token_limit_is_still_a_parse_error():
    cut = Generation(text="ajsdh qwe zzz lorem", finish=FinishReason.MAX_TOKENS)
    with session_for(cut) as session, pytest.raises(ParseError) as info:
        session.detect(WIDE, "cat")
    assert info.value.raw_text == "ajsdh qwe zzz lorem"


def test_unparseable_complete_answer_raises_with_raw_text():
    with session_for("I am not sure what you mean.") as session, pytest.raises(ParseError) as info:
        session.detect(WIDE, "cat")
    assert info.value.raw_text == "I am not sure what you mean."


def test_empty_answer_is_flagged():
    with session_for("   ") as session:
        assert session.detect(WIDE, "cat").finish is FinishReason.EMPTY


def test_backend_errors_propagate_from_the_error_tree():
    with (
        session_for(vlmkit.RateLimited("slow down", retry_after=2)) as session,
        pytest.raises(vlmkit.RateLimited) as info,
    ):
        session.detect(WIDE, "cat")
    assert info.value.retry_after == 2


# -- middleware ---------------------------------------------------------------------------
def test_wrapper_ordering_is_deterministic():
    calls = []

    def wrapper(name):
        class Wrapper:
            @vlmkit.hookimpl(wrapper=True)
            def vlmkit_detect(self, request):
                calls.append(f"{name}:before")
                result = yield
                calls.append(f"{name}:after:{len(result)}")
                return result

        return Wrapper()

    with Session(
        "scripted",
        plugins=[scripted_plugin(CAT), wrapper("first"), wrapper("second")],
        entrypoints=False,
    ) as session:
        session.detect(WIDE, "cat")
    # pluggy calls later registrations first: the last registered wrapper is outermost
    assert calls == ["second:before", "first:before", "first:after:1", "second:after:1"]


def test_cache_hit_makes_no_backend_call(tmp_path):
    with session_for(CAT, cache=tmp_path) as session:
        first = session.detect(WIDE, "cat")
        second = session.detect(WIDE, "cat")
        assert len(session.backend.requests) == 1
        assert second.provenance.cached and not first.provenance.cached
        np.testing.assert_array_equal(first.xyxy, second.xyxy)
        session.detect(WIDE, "dog")  # another prompt: a miss
        session.detect(WIDE[:500], "cat")  # another image: a miss
        assert len(session.backend.requests) == 3
        assert session.cache.hits == 1 and session.cache.misses == 3
        assert session.usage.calls == 3 and session.usage_meter.cached == 1
    # a new session on the same folder answers from disk
    with session_for(CAT, cache=tmp_path) as again:
        assert again.detect(WIDE, "cat").provenance.cached
        assert again.backend.requests == []


def test_incomplete_answers_are_not_cached(tmp_path):
    cut = Generation(text=CAT[:-5] + ", {", finish=FinishReason.MAX_TOKENS)
    with session_for([cut, CAT], cache=tmp_path) as session:
        assert session.detect(WIDE, "cat").report.truncated
        assert session.detect(WIDE, "cat").complete
        assert len(session.backend.requests) == 2


def test_damaged_cache_entries_are_misses(tmp_path):
    with session_for([CAT, CAT], cache=tmp_path) as session:
        session.detect(WIDE, "cat")
        for entry in tmp_path.rglob("*.json"):
            entry.write_text("{not json", encoding="utf-8")
        assert len(session.detect(WIDE, "cat")) == 1
        assert len(session.backend.requests) == 2


def test_usage_accounting_per_call_and_per_session():
    answer = Generation(
        text=CAT,
        usage=Usage(prompt_tokens=300, output_tokens=20, thinking_tokens=5, cost_usd=0.001),
    )
    with session_for(answer) as session:
        one = session.detect(WIDE, "cat")
        session.detect(WIDE, "dog")
        assert one.usage.prompt_tokens == 300
        assert session.usage.prompt_tokens == 600 and session.usage.total_tokens == 650
        assert session.usage.calls == 2
        assert session.usage.cost_usd == pytest.approx(0.002)
        assert session.usage_meter.by_task["detect"].calls == 2


# -- concurrency and batching ---------------------------------------------------------------
def test_many_threads_share_one_session():
    with session_for(CAT, latency_s=0.01) as session, ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: session.detect(WIDE, "cat"), range(64)))
    assert all(r.labels == ("cat",) for r in results)
    assert session.usage.calls == 64


def test_batching_backends_receive_batches_and_give_identical_results():
    def answer(request):
        return f'[{{"box_2d": [0, 0, {len(request.prompt) % 900 + 50}, 500], "label": "x"}}]'

    with session_for(answer) as plain:
        expected = [plain.detect(WIDE, f"thing {i}").xyxy for i in range(16)]
    with session_for(answer, batch_size=4, latency_s=0.01) as batched:
        barrier = threading.Barrier(16)

        def call(i):
            barrier.wait()
            return batched.detect(WIDE, f"thing {i}").xyxy

        with ThreadPoolExecutor(16) as pool:
            got = list(pool.map(call, range(16)))
        assert max(batched.backend.batches) > 1 and sum(batched.backend.batches) == 16
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


# -- lifecycle and inputs -------------------------------------------------------------------
def test_close_releases_the_backend_and_refuses_further_calls():
    session = session_for(CAT)
    backend = session.backend
    session.close()
    session.close()  # idempotent
    assert backend.closed
    with pytest.raises(ConfigError, match="closed"):
        session.detect(WIDE, "cat")


def test_bad_images_are_media_errors_before_any_model_call(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with session_for(CAT) as session:
        with pytest.raises(MediaError, match=r"broken\.jpg"):
            session.detect(bad, "cat")
        with pytest.raises(MediaError):
            session.video(tmp_path / "missing.mp4")
        assert session.backend.requests == []


def test_segment_threshold_reaches_the_parser():
    import base64
    import io

    from PIL import Image

    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))
    buffer = io.BytesIO()
    Image.fromarray(ramp, "L").save(buffer, format="PNG")
    mask = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    answer = f'[{{"box_2d": [0, 0, 1000, 1000], "mask": "{mask}", "label": "ramp"}}]'
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    with session_for(answer) as session:
        low = session.segment(image, "ramp", threshold=50)[0].mask.area
        high = session.segment(image, "ramp", threshold=200)[0].mask.area
    assert low > high > 0
    with session_for(answer) as session, pytest.raises(ConfigError):
        session.segment(image, "ramp", threshold=300)


# -- the conformance check ------------------------------------------------------------------
def test_conformance_check_passes_for_a_well_behaved_backend():
    def oracle(request):  # a perfect yxyx-1000 model of the image it was sent
        return true_answer(request.images[0].image, "yxyx-1000", task=request.task)

    plugin = scripted_plugin(
        {
            "detect": oracle,
            "segment": oracle,
            "describe": "A picture.",
            "ocr": "STOP",
            "video": "00:00 - 00:01 a grey screen",
        }
    )
    report = check_backend("scripted", plugins=[plugin], entrypoints=False)
    report.assert_ok()
    assert "detect(exif-rotated.jpg)" in report.checked
    assert "video(sample.mp4)" in report.checked
    assert "boxes: within tolerance of the oracle" in report.checked


def test_conformance_check_reports_problems():
    class Sloppy(vlmkit.Backend):
        concurrency = 0
        sends_image_files = "yes"  # type: ignore[assignment]

        def generate(self, request):
            raise RuntimeError("boom")  # not from vlmkit's error tree

    class Plugin:
        @vlmkit.hookimpl
        def vlmkit_backends(self):
            yield vlmkit.BackendInfo(name="sloppy", factory=Sloppy, tasks={"detect"})

    report = check_backend("sloppy", plugins=[Plugin()], entrypoints=False, tasks=["detect", "ocr"])
    assert not report.ok
    text = "\n".join(report.problems)
    assert "concurrency must be a positive int" in text
    assert "sends_image_files must be True or False, got 'yes'" in text
    assert "RuntimeError (not a vlmkit error)" in text
    assert "description is empty" in text
    with pytest.raises(AssertionError, match="does not conform"):
        report.assert_ok()


def test_scripted_session_fixture(scripted_session):
    session = scripted_session({"detect": CAT})
    assert session.detect(WIDE, "cat").labels == ("cat",)
    assert isinstance(session.backend, ScriptedBackend)
