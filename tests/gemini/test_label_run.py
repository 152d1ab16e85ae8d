"""The batch runner against the fake Gemini server: injected failures, exhausted retries,
and the CLI's `vlmkit label` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmkit.ledger import read_ledger

ANSWER = '[{"box_2d": [100, 200, 500, 600], "label": "cat"}]'
ROOT = Path(__file__).resolve().parents[2]


def images(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 255, (48 + i % 5, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo{i:02d}.jpg", quality=85)
    return folder


def test_a_run_with_injected_failures_completes(tmp_path, fake_gemini, gemini_session, sleeps):
    folder = images(tmp_path / "photos", 40)
    fake_gemini.add_rule(text=ANSWER)
    fake_gemini.fail_ratio(503, 0.25, seed=7)  # a quarter of all answers are 503s
    fake_gemini.fail_next(429, times=3, retry_delay=0.5)
    fake_gemini.add_rule(drop_connection=True, times=2, first=True)
    # Which item meets which failure depends on thread timing: with the default 5 attempts,
    # some item meets 5 failures in a row in about 1 run in 25; with 10, 1 in 25,000.
    session = gemini_session(retry_overrides={"max_attempts": 10})
    run = session.run(
        "detect", [folder], ["cat"], out_dir=tmp_path / "out", sinks=["coco"], concurrency=8
    )
    outcomes = list(run)
    assert run.summary.done == 40 and run.summary.failed == 0, str(run.summary)
    assert {o.status for o in outcomes} == {"done"}
    assert any(delay >= 0.5 for delay in sleeps.calls)  # the 429s' retryDelay was honored
    assert fake_gemini.calls["generate"] > 40  # retries happened
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert len(coco["images"]) == 40 and len(coco["annotations"]) == 40
    state = read_ledger(tmp_path / "out" / "results.jsonl")
    record = state.done["photo00.jpg"]
    np.testing.assert_allclose(record.result.xyxy, [[12.8, 4.8, 38.4, 24.0]])
    assert record.result.usage.prompt_tokens > 0


def test_exhausted_retries_are_recorded_then_retried(tmp_path, fake_gemini, gemini_session):
    folder = images(tmp_path / "photos", 6)
    outage = fake_gemini.add_rule(status=503, error_status="UNAVAILABLE", message="overloaded")
    fake_gemini.add_rule(text=ANSWER)
    session = gemini_session(retry_overrides={"max_attempts": 2})
    run = session.run("detect", [folder], "cat", out_dir=tmp_path / "out", concurrency=3)
    list(run)
    assert run.summary.failed == 6 and run.summary.failures == {"TransientError": 6}
    failed = read_ledger(tmp_path / "out" / "results.jsonl").failed
    assert "overloaded" in failed["photo03.jpg"].error
    fake_gemini.clear_rules()
    fake_gemini.add_rule(text=ANSWER)
    assert outage.hits == 12
    retry = session.run("detect", [folder], "cat", out_dir=tmp_path / "out", retry_failed=True)
    list(retry)
    assert retry.summary.done == 6
    assert len(read_ledger(tmp_path / "out" / "results.jsonl").done) == 6


@pytest.mark.slow
def test_vlmkit_label_command_against_the_fake(tmp_path, fake_gemini):
    folder = images(tmp_path / "photos", 5)
    (folder / "notes.txt").write_text("not an image")
    fake_gemini.add_rule(text=ANSWER)
    env = {
        **os.environ,
        "GEMINI_API_KEY": "test-key",
        "VLMKIT_CACHE": "0",
        "VLMKIT_LOAD_PLUGINS": "vlmkit,vlmkit-gemini",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ["PYTHONPATH"]]),
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
        "--model",
        "gemini-2.5-flash",
        "--config",
        f"base_url={fake_gemini.base_url}",
        "--out",
        str(tmp_path / "out"),
        "--sink",
        "coco",
        "--sink",
        "yolo",
        "--no-progress",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "done 5, failed 0, skipped 1" in done.stdout + done.stderr
    assert "test-key" not in done.stdout + done.stderr
    assert (tmp_path / "out" / "annotations.json").exists()
    assert len(list((tmp_path / "out" / "labels").glob("*.txt"))) == 5
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert "resumed 5" in again.stdout + again.stderr
    assert fake_gemini.calls["generate"] == 5  # the re-run sent nothing
