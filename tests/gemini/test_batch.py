"""``Session.run(..., mode="batch")`` / ``vlmkit label --mode batch`` through the real SDK and the
fake server's Batch API: the same requests as the synchronous path, answers in the same ledger and
sinks, kill-and-resume without ever submitting an item twice, failures per item."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("google.genai")
pytest.importorskip("vlmkit_gemini")

import vlmkit
from tests.gemini.conftest import TEST_API_KEY, photo
from vlmkit.ledger import read_ledger
from vlmkit_gemini.batch import JOBS_NAME, GeminiBatchRun
from vlmkit_gemini.pricing import PRICES

BOXES = [{"box_2d": [100, 100, 500, 500], "label": "cat"}]
ROOT = Path(__file__).resolve().parents[2]


class Killed(BaseException):
    """Stands for ``kill -9``: nothing in the run catches it."""


def images(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for index in range(count):
        photo(64, 48, seed=index).save(folder / f"img{index:03d}.jpg")
    return folder


@pytest.fixture
def batch_session(gemini_session):
    def make(**options):
        options.setdefault("model", None)  # the default model
        options.setdefault("batch_poll_interval_s", 0.0)
        options.setdefault("cache", False)
        return gemini_session(**options)

    return make


def ledger_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


# ---- the requests ----------------------------------------------------------------------------


def test_batch_requests_are_the_synchronous_requests(fake_gemini, batch_session, tmp_path):
    fake_gemini.add_rule(text=BOXES)
    folder = images(tmp_path / "photos", 1)
    session = batch_session()
    sync = session.detect(folder / "img000.jpg", ["cat", "dog"], thinking_level="high")
    run = session.run(
        "detect",
        [folder],
        ["cat", "dog"],
        out_dir=tmp_path / "out",
        mode="batch",
        options={"thinking_level": "high"},
        sinks=["coco"],
    )
    assert isinstance(run, GeminiBatchRun)
    outcomes = list(run)
    (direct,) = fake_gemini.requests_of("generate")
    (batched,) = fake_gemini.requests_of("batch_generate")
    for field in ("prompt_text", "generation_config", "response_schema", "system_instruction"):
        assert getattr(batched, field) == getattr(direct, field), field
    assert batched.thinking_level == "HIGH" and batched.model == direct.model
    assert batched.file_data and not batched.inline_data  # images through the Files API
    (outcome,) = outcomes
    assert outcome.status == "done"
    assert outcome.result.xyxy.tolist() == sync.xyxy.tolist()
    usage = outcome.result.provenance.usage
    price = PRICES.lookup(session.backend.model)
    assert usage.cost_usd == pytest.approx(price.cost(usage, "batch"))
    assert usage.cost_usd == pytest.approx(price.cost(usage) / 2)  # half the standard price
    assert (tmp_path / "out" / "annotations.json").exists()  # the same sinks


def test_jobs_over_the_inline_limit_go_as_jsonl_files_with_the_same_requests(
    fake_gemini, batch_session, tmp_path
):
    fake_gemini.add_rule(text=BOXES)
    folder = images(tmp_path / "photos", 4)
    inline = batch_session().run("detect", [folder], "cat", out_dir=tmp_path / "a", mode="batch")
    assert inline.summary.done == 0 and [o.status for o in inline] == ["done"] * 4
    assert fake_gemini.calls["files_download"] == 0
    jsonl = batch_session(batch_inline_limit_bytes=1).run(
        "detect", [folder], "cat", out_dir=tmp_path / "b", mode="batch"
    )
    assert [o.status for o in jsonl] == ["done"] * 4
    assert fake_gemini.calls["files_download"] == 1  # the answers came as a file
    assert any(f["mimeType"] == "application/jsonl" for f in fake_gemini.files.values())
    sent = fake_gemini.requests_of("batch_generate")
    by_inline, by_file = sent[:4], sent[4:]
    for a, b in zip(by_inline, by_file, strict=True):
        assert (a.prompt_text, a.generation_config, a.response_schema) == (
            b.prompt_text,
            b.generation_config,
            b.response_schema,
        )
    a_done = read_ledger(tmp_path / "a" / "results.jsonl").done
    b_done = read_ledger(tmp_path / "b" / "results.jsonl").done
    assert {k: r.result.xyxy.tolist() for k, r in a_done.items()} == {
        k: r.result.xyxy.tolist() for k, r in b_done.items()
    }


# ---- kill and resume -------------------------------------------------------------------------


@pytest.mark.slow
def test_300_images_killed_three_times_give_every_image_once_in_one_job(
    fake_gemini, batch_session, tmp_path, monkeypatch
):
    fake_gemini.add_rule(text=BOXES)
    fake_gemini.batch_pending_polls = 2
    folder = images(tmp_path / "photos", 300)
    out = tmp_path / "out"

    def run_once():
        session = batch_session(batch_max_requests=50)  # a fresh "process" each time
        run = session.run("detect", [folder], "cat", out_dir=out, mode="batch")
        done = []
        try:
            done = [o for o in run if o.status == "done"]
        finally:
            session.close()
        return done

    # 1. killed while submitting: job 3 exists at Google but its name was never recorded
    real_create = GeminiBatchRun._create_job
    created = []

    def create_then_die(self, job, requests):
        name = real_create(self, job, requests)
        created.append(name)
        if len(created) == 3:
            raise Killed
        return name

    monkeypatch.setattr(GeminiBatchRun, "_create_job", create_then_die)
    with pytest.raises(Killed):
        run_once()
    monkeypatch.setattr(GeminiBatchRun, "_create_job", real_create)
    assert len(fake_gemini.batches) == 3 and len(read_ledger(out / "results.jsonl")) == 0

    # 2. killed while the jobs are pending
    def die_waiting(self):
        raise Killed

    monkeypatch.setattr(GeminiBatchRun, "_wait", die_waiting)
    with pytest.raises(Killed):
        run_once()
    monkeypatch.undo()
    assert len(fake_gemini.batches) == 6  # the missing 150 items, submitted once

    # 3. killed while collecting the results of a finished job
    real_record = GeminiBatchRun._record
    recorded = []

    def record_then_die(self, *args, **kwargs):
        outcome = real_record(self, *args, **kwargs)
        recorded.append(outcome)
        if len(recorded) == 70:
            raise Killed
        return outcome

    monkeypatch.setattr(GeminiBatchRun, "_record", record_then_die)
    with pytest.raises(Killed):
        run_once()
    monkeypatch.undo()

    # 4. the last run collects everything else
    final = run_once()

    jobs = fake_gemini.batches
    keys = [key for job in jobs.values() for key in job["keys"]]
    assert len(jobs) == 6 and len(keys) == 300 and len(set(keys)) == 300  # each item in one job
    assert fake_gemini.calls["batch_create"] == 6
    assert fake_gemini.requests_of("generate") == []  # nothing went the synchronous way
    done = collections.Counter(
        line["key"] for line in ledger_lines(out) if line["status"] == "done"
    )
    assert len(done) == 300 and set(done.values()) == {1}  # every image exactly once
    assert len(final) == 300 - 70  # the rest, none twice
    assert len(read_ledger(out / "results.jsonl").done) == 300
    log = [json.loads(line) for line in (out / JOBS_NAME).read_text().splitlines()]
    assert sum(1 for e in log if e["event"] == "collected") == 6


def test_a_lost_create_answer_is_retried_without_a_second_job(
    fake_gemini, batch_session, tmp_path, sleeps
):
    """The server created the job but the answer never arrived (client timeout): the retry
    finds the job by its display name instead of creating another one."""
    fake_gemini.add_rule(op="batch_create", delay_s=1.0, times=1)
    fake_gemini.add_rule(text=BOXES)
    folder = images(tmp_path / "photos", 3)
    run = batch_session(timeout_s=0.3).run(
        "detect", [folder], "cat", out_dir=tmp_path / "out", mode="batch"
    )
    assert [o.status for o in run] == ["done"] * 3
    assert fake_gemini.calls["batch_create"] == 1 and len(fake_gemini.batches) == 1
    assert fake_gemini.calls["batch_list"] >= 1 and sleeps.calls  # looked, after a retry wait


# ---- failures --------------------------------------------------------------------------------


def test_expired_jobs_and_request_errors_fail_per_item_and_retry_resubmits_only_those(
    fake_gemini, batch_session, tmp_path, monkeypatch
):
    fake_gemini.add_rule(status=400, message="Unable to process input image.", times=1)
    fake_gemini.add_rule(text=BOXES)
    folder = images(tmp_path / "photos", 10)
    out = tmp_path / "out"

    def die_waiting(self):
        raise Killed

    monkeypatch.setattr(GeminiBatchRun, "_wait", die_waiting)
    session = batch_session(batch_max_requests=5)
    with pytest.raises(Killed):
        list(session.run("detect", [folder], "cat", out_dir=out, mode="batch"))
    monkeypatch.undo()
    first, second = fake_gemini.batches
    fake_gemini.set_batch_state(first, "BATCH_STATE_EXPIRED", error="the job expired after 48 h")

    run = batch_session(batch_max_requests=5).run(
        "detect", [folder], "cat", out_dir=out, mode="batch"
    )
    list(run)
    assert run.summary.done == 4 and run.summary.failed == 6
    assert run.summary.failures == {"BatchJobExpired": 5, "BatchRequestError": 1}
    failed = read_ledger(out / "results.jsonl").failed
    expired = [r for r in failed.values() if r.error_type == "BatchJobExpired"]
    assert all("JOB_STATE_EXPIRED" in r.error and "--retry-failed" in r.error for r in expired)
    (refused,) = [r for r in failed.values() if r.error_type == "BatchRequestError"]
    assert "Unable to process input image" in refused.error

    retry = batch_session(batch_max_requests=5).run(
        "detect", [folder], "cat", out_dir=out, mode="batch", retry_failed=True
    )
    list(retry)
    assert retry.summary.done == 6 and retry.summary.resumed == 4
    third_jobs = [job for name, job in fake_gemini.batches.items() if name not in (first, second)]
    resubmitted = sorted(key for job in third_jobs for key in job["keys"])
    assert resubmitted == sorted(failed)  # only the failures went again
    assert len(read_ledger(out / "results.jsonl").done) == 10


def test_batch_mode_is_refused_where_there_is_none(fake_gemini, vertex_session, tmp_path):
    session = vertex_session()
    with pytest.raises(vlmkit.UnsupportedTask, match="gemini-api"):
        session.run("detect", [tmp_path], "cat", out_dir=tmp_path / "out", mode="batch")
    with pytest.raises(vlmkit.ConfigError, match="mode"):
        session.run("detect", [tmp_path], "cat", out_dir=tmp_path / "out", mode="later")


def test_vlmkit_label_mode_batch(fake_gemini, tmp_path):
    fake_gemini.add_rule(text=BOXES)
    folder = images(tmp_path / "photos", 3)
    env = {
        **os.environ,
        "GEMINI_API_KEY": TEST_API_KEY,
        "VLMKIT_CACHE": "0",
        "VLMKIT_LOAD_PLUGINS": "vlmkit,vlmkit-gemini",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "vlmkit.cli",
        "label",
        str(folder),
        "--task",
        "detect",
        "--prompt",
        "cat",
        "--backend",
        "gemini-api",
        "--mode",
        "batch",
        "--config",
        f"base_url={fake_gemini.base_url}",
        "--config",
        "batch_poll_interval_s=0",
        "--out",
        str(tmp_path / "out"),
        "--sink",
        "coco",
        "--no-progress",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "done 3, failed 0" in done.stdout + done.stderr
    assert fake_gemini.calls["batch_create"] == 1 and fake_gemini.calls["generate"] == 0
    assert (tmp_path / "out" / "annotations.json").exists()
