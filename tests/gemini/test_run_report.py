"""What `vlmkit label` reports about a run against the fake Gemini server: cached input tokens
in the summary, and why an item cut off by thinking failed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vlmkit.cli import app
from vlmkit.ledger import read_ledger

ANSWER = '[{"box_2d": [100, 200, 500, 600], "label": "cat"}]'


@pytest.fixture
def label(tmp_path, fake_gemini):
    """``label(*extra)`` runs ``vlmkit label`` in-process on three photos against the fake."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        pixels = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo{i}.jpg", quality=85)
    env = {
        "GEMINI_API_KEY": "test-key",
        "VLMKIT_CACHE": "0",
        "VLMKIT_LOAD_PLUGINS": "vlmkit,vlmkit-gemini",
        "COLUMNS": "200",
    }

    def run(*extra: str):
        args = [
            "label",
            str(folder),
            "--task",
            "detect",
            "--prompt",
            "cat",
            "--backend",
            "gemini-api",
            "--model",
            "gemini-2.5-flash-lite",
            "--config",
            f"base_url={fake_gemini.base_url}",
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
            *extra,
        ]
        return CliRunner().invoke(app, args, env=env)

    return run


def test_the_summary_shows_cached_input_tokens(label, fake_gemini, tmp_path):
    fake_gemini.add_rule(text=ANSWER, usage={"cachedContentTokenCount": 200})
    done = label()
    assert done.exit_code == 0, done.output
    assert "cached input 600" in done.output  # 3 answers x 200 tokens served from the cache
    assert len(read_ledger(tmp_path / "out" / "results.jsonl").done) == 3


def test_the_json_summary_carries_cached_input_tokens(label, fake_gemini):
    fake_gemini.add_rule(text=ANSWER, usage={"cachedContentTokenCount": 150})
    done = label("--json")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["cached_tokens"] == 450
    assert summary["prompt_tokens"] >= 450


def test_an_item_cut_off_by_thinking_fails_with_the_backends_reason(label, fake_gemini, tmp_path):
    fake_gemini.add_rule(
        text='[{"box_2d": [100, 200',
        finish_reason="MAX_TOKENS",
        usage={"thoughtsTokenCount": 2000},
    )
    done = label("--option", "max_output_tokens=2010")
    assert done.exit_code == 1
    failed = read_ledger(tmp_path / "out" / "results.jsonl").failed
    assert len(failed) == 3
    reason = failed["photo0.jpg"].error
    assert "cut off by the token limit" in reason
    assert "thinking used the token budget: 2,000 thinking tokens" in reason
    assert "max_output_tokens=2,010" in reason
