"""Money: ``--budget`` is a hard cap — each request's worst case is reserved before it is sent
and settled with its real cost, every paid call counts (also answers that fail to parse), and a
budget is refused where no price is known."""

from __future__ import annotations

import pytest

import vlmkit
from tests.runner.test_runner import CAT, make_images
from vlmkit import Generation
from vlmkit.ledger import read_ledger
from vlmkit.testing import ScriptedBackend, scripted_plugin


class PricedBackend(ScriptedBackend):
    """A scripted model with a price: no request can cost more than ``worst``."""

    def __init__(self, script, *, worst: float, **config):
        super().__init__(script, **config)
        self.worst = worst

    def max_cost_usd(self, request):
        return self.worst


class PricedPlugin:
    def __init__(self, script, worst):
        self.script, self.worst = script, worst

    @vlmkit.hookimpl
    def vlmkit_backends(self):
        yield vlmkit.BackendInfo(
            name="priced",
            factory=lambda **config: PricedBackend(self.script, worst=self.worst, **config),
            tasks={"detect"},
        )


def _priced(script, worst):
    return vlmkit.Session("priced", plugins=[PricedPlugin(script, worst)], entrypoints=["vlmkit"])


def _answer(text, cost):
    return Generation(
        text=text, usage=vlmkit.Usage(prompt_tokens=300, output_tokens=20, cost_usd=cost)
    )


def test_the_first_wave_is_capped_before_any_answer_is_known(tmp_path):
    images = tmp_path / "images"
    make_images(images, 20, subfolders=False)
    with _priced(_answer(CAT, 0.0004), worst=0.0004) as s:
        run = s.run(
            "detect", [images], "cat", out_dir=tmp_path / "out", concurrency=8, budget_usd=0.001
        )
        list(run)
        sent = len(s.backend.requests)
    assert sent == 2  # 2 × $0.0004 fit under $0.001, a third worst case does not
    assert run.summary.stopped == "budget" and run.summary.done == 2
    assert run.summary.cost_usd == pytest.approx(0.0008) and run.summary.cost_usd <= 0.001
    assert "stopped early: budget" in str(run.summary)
    with _priced(_answer(CAT, 0.0004), worst=0.0004) as s:  # the rest resumes later
        again = s.run("detect", [images], "cat", out_dir=tmp_path / "out", budget_usd=1.0)
        list(again)
    assert again.summary.resumed == 2 and again.summary.done == 18


def test_answers_that_fail_to_parse_are_paid_and_counted(tmp_path):
    images = tmp_path / "images"
    make_images(images, 20, subfolders=False)
    with _priced(_answer("I am not sure what to say.", 0.0004), worst=0.0005) as s:
        run = s.run(
            "detect", [images], "cat", out_dir=tmp_path / "out", concurrency=4, budget_usd=0.001
        )
        list(run)
        sent = len(s.backend.requests)
    assert sent <= 2 and run.summary.failed == sent  # never the whole folder
    assert run.summary.failures == {"ParseError": sent}
    assert run.budget.spent_usd == pytest.approx(0.0004 * sent) and run.budget.spent_usd <= 0.001


def test_a_call_whose_real_cost_is_unknown_counts_at_its_worst_case(tmp_path):
    images = tmp_path / "images"
    make_images(images, 6, subfolders=False)
    with _priced(CAT, worst=0.3) as s:  # plain text answers: no cost reported
        run = s.run(
            "detect", [images], "cat", out_dir=tmp_path / "out", concurrency=1, budget_usd=1.0
        )
        list(run)
    assert run.summary.done == 3 and run.budget.spent_usd == pytest.approx(0.9)


def test_a_budget_is_refused_where_no_price_is_known(tmp_path):
    images = tmp_path / "images"
    make_images(images, 2, subfolders=False)
    plugin = scripted_plugin(CAT)
    with vlmkit.Session("scripted", plugins=[plugin], entrypoints=["vlmkit"]) as s:
        with pytest.raises(vlmkit.ConfigError, match="--budget needs a price"):
            s.run("detect", [images], "cat", out_dir=tmp_path / "out", budget_usd=5.0)
        assert s.backend.requests == []


def test_gemini_knows_its_worst_case_and_never_sends_what_the_budget_cannot_cover(tmp_path):
    pytest.importorskip("google.genai")
    from vlmkit_gemini.testing.fake_server import FakeGemini

    images = tmp_path / "images"
    make_images(images, 3, subfolders=False)
    with FakeGemini() as fake:
        fake.add_rule(text=CAT)
        options = {"api_key": "test-key", "base_url": fake.base_url}
        with vlmkit.Session("gemini-api", **options) as s:
            run = s.run("detect", [images], "cat", out_dir=tmp_path / "a", budget_usd=0.01)
            assert list(run) == [] and run.summary.stopped == "budget"
            roomy = s.run("detect", [images], "cat", out_dir=tmp_path / "b", budget_usd=1.0)
            list(roomy)
        assert len(fake.requests_of()) == 3  # all from the roomy run
        unknown = vlmkit.Session("gemini-api", model="my-tuned-model", **options)
        with unknown as s, pytest.raises(vlmkit.ConfigError, match="needs a price"):
            s.run("detect", [images], "cat", out_dir=tmp_path / "c", budget_usd=1.0)
    assert roomy.summary.done == 3 and 0 < roomy.summary.cost_usd < 0.01


def test_a_paid_answer_that_fails_to_parse_is_kept_whole_and_reparses_for_free(tmp_path):
    images = tmp_path / "images"
    make_images(images, 2, subfolders=False)
    # a parser that knows no "boxes:" wrapper fails; after a fix, the kept text is enough
    answer = "Boxes: box_2d 100 200 500 600 cat " + "x" * 300
    with _priced(_answer(answer, 0.002), worst=0.01) as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "out", budget_usd=1.0)
        list(run)
    assert run.summary.failures == {"ParseError": 2}
    assert run.summary.tokens == 2 * 320 and run.summary.cost_usd == pytest.approx(0.004)
    state = read_ledger(tmp_path / "out" / "results.jsonl")
    record = state.failed["img000.png"]
    assert record.raw_text == answer  # complete, not an excerpt
    assert record.usage.cost_usd == pytest.approx(0.002) and record.image_size == (60, 40)
    fixed = record.raw_text.replace("Boxes: box_2d 100 200 500 600 cat", CAT)
    again = vlmkit.parse(fixed, task="detect", image_size=record.image_size)
    assert list(again.labels) == ["cat"]


def test_a_quota_exhausted_429_stops_the_run_once_and_leaves_the_items_untouched(tmp_path):
    pytest.importorskip("google.genai")
    from vlmkit_gemini.retry import RetryPolicy
    from vlmkit_gemini.testing.fake_server import FakeGemini

    images = tmp_path / "images"
    make_images(images, 30, subfolders=False)
    out = tmp_path / "out"
    with FakeGemini() as fake:
        fake.add_rule(text=CAT)
        fake.fail_next(429, times=1000, retry_delay=3600)  # the daily quota is gone for an hour
        options = {
            "api_key": "k",
            "base_url": fake.base_url,
            "retry": RetryPolicy(sleep=lambda s: None),
        }
        with vlmkit.Session("gemini-api", **options) as s:
            run = s.run("detect", [images], "cat", out_dir=out, concurrency=4)
            with pytest.raises(vlmkit.RateLimited, match=r"quota exhausted: retry after 1\.0 h"):
                list(run)
        sent = len(fake.requests_of())
    assert sent <= 8  # the requests already out, not the folder
    assert run.summary.stopped == "quota exhausted" and run.summary.failed == 0
    assert "stopped early: quota exhausted" in str(run.summary)
    assert not read_ledger(out / "results.jsonl").failed  # nothing marked failed


def test_a_short_429_after_retries_is_still_one_items_failure(tmp_path):
    images = tmp_path / "images"
    make_images(images, 2, subfolders=False)
    script = [vlmkit.RateLimited("slow down", retry_after=1.0), CAT]
    with vlmkit.Session("scripted", plugins=[scripted_plugin(script)], entrypoints=["vlmkit"]) as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "out", concurrency=1)
        list(run)
    assert run.summary.failures == {"RateLimited": 1} and run.summary.done == 1


def test_retry_failed_parses_a_kept_answer_again_before_paying(tmp_path, monkeypatch):
    import vlmkit.tasks

    images = tmp_path / "images"
    make_images(images, 3, subfolders=False)
    out = tmp_path / "out"
    real = vlmkit.tasks.parse_detections

    def old_parser(text, **kwargs):  # a parser with a bug, fixed in a later vlmkit
        raise vlmkit.ParseError("cannot read this answer", raw_text=text)

    monkeypatch.setattr(vlmkit.tasks, "parse_detections", old_parser)
    with _priced(_answer(CAT, 0.001), worst=0.01) as s:
        first = s.run("detect", [images], "cat", out_dir=out, budget_usd=1.0)
        list(first)
    assert first.summary.failures == {"ParseError": 3}
    monkeypatch.setattr(vlmkit.tasks, "parse_detections", real)  # the fix
    with _priced(_answer(CAT, 0.001), worst=0.01) as s:
        retry = s.run("detect", [images], "cat", out_dir=out, retry_failed=True, budget_usd=1.0)
        list(retry)
        assert s.backend.requests == []  # nothing paid again
    assert retry.summary.done == 3 and retry.summary.reparsed == 3
    assert "reparsed 3" in str(retry.summary) and retry.budget.spent_usd == 0
    state = read_ledger(out / "results.jsonl")
    assert len(state.done) == 3
    assert [list(r.result.labels) for r in state.done.values()] == [["cat"]] * 3
