"""The pilot against the fake Gemini: three models whose answers are derived from the ground
truth with known error rates; the pilot must rank them in that order and render its report."""

from __future__ import annotations

import shlex

import pytest
from PIL import Image

pytest.importorskip("vlmkit_gemini")
pytest.importorskip("google.genai")

from tests.evaluation.fake_models import answers, dataset
from vlmkit.evaluation.pilot import Setting, pilot

SETTINGS = [
    "--backend gemini-api --model gemini-3.5-flash-lite --config base_url={url}",
    "--backend gemini-api --model gemini-3.1-pro --config base_url={url}",
    "--backend gemini-api --model gemini-3.6-flash --option thinking_level=minimal "
    "--config base_url={url} --name 'flash, no thinking'",
]


def test_a_pilot_of_three_settings_ranks_them_and_renders_its_report(
    tmp_path,
    fake_gemini,
    monkeypatch,
):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    folder, gt, truth = dataset(tmp_path)
    fake_gemini.add_rule(text=answers(truth))
    settings = [s.format(url=fake_gemini.base_url) for s in SETTINGS]
    report = pilot(
        [folder],
        gt,
        settings,
        out_dir=tmp_path / "pilot",
        sample=6,
        seed=3,
        cache=tmp_path / "cache",
    )
    order = [row.setting.model for row in report.rows]
    assert order == ["gemini-3.1-pro", "gemini-3.6-flash", "gemini-3.5-flash-lite"]
    best, middle, worst = (row.evaluation.to_dict() for row in report.rows)
    assert best["map50"] == pytest.approx(1.0) and best["recall"] == pytest.approx(1.0)
    assert best["map50"] > middle["map50"] > worst["map50"]
    assert middle["precision"] == pytest.approx(1.0) and middle["recall"] < 1.0
    for document in (best, middle, worst):
        assert document["images"] == 6 and document["failed"] == 0
        assert document["cost_per_image"] > 0 and document["latency_p50_s"] is not None
    assert best["cost_per_image"] > middle["cost_per_image"]  # pro is dearer than flash
    # the same seeded sample for every setting: 6 images, each sent once per setting
    assert len(report.sample) == 6 and fake_gemini.calls["generate"] == 18
    # the report: a Markdown table in rank order, a chart, the command for the winner
    markdown = (tmp_path / "pilot" / "report.md").read_text()
    rows = [
        line for line in markdown.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")
    ]
    assert "gemini-3.1-pro" in rows[0] and "flash, no thinking" in rows[1]
    with Image.open(tmp_path / "pilot" / "chart.png") as chart:
        assert chart.size == (900, 600) and len(chart.getcolors(1 << 16)) > 10
    command = shlex.split(" ".join(report.label_command))
    assert command[:2] == ["vlmkit", "label"] and "gemini-3.1-pro" in command
    assert "--label" in command and "cat" in command  # the ground truth's classes
    # again: every run resumes from its ledger, nothing is sent twice
    again = pilot(
        [folder],
        gt,
        settings,
        out_dir=tmp_path / "pilot",
        sample=6,
        seed=3,
        cache=tmp_path / "cache",
    )
    assert fake_gemini.calls["generate"] == 18
    assert [r.setting.model for r in again.rows] == order
    # a new report folder: new runs, answered from the cache, still nothing sent
    cached = pilot(
        [folder], gt, settings, out_dir=tmp_path / "pilot2", sample=6, seed=3,
        cache=tmp_path / "cache",
    )  # fmt: skip
    assert fake_gemini.calls["generate"] == 18
    assert [r.evaluation.to_dict()["cached"] for r in cached.rows] == [6, 6, 6]
    assert cached.rows[0].evaluation.to_dict()["map50"] == best["map50"]


def test_settings_read_like_label_options():
    setting = Setting.parse(
        "-b gemini-api -m gemini-3.6-flash --option thinking_level=minimal "
        "-l car -l 'traffic light'"
    )
    assert (setting.backend, setting.model, setting.labels) == (
        "gemini-api",
        "gemini-3.6-flash",
        ("car", "traffic light"),
    )
    assert setting.options == {"thinking_level": "minimal"}
    assert setting.label_args()[:4] == ["--task", "detect", "--backend", "gemini-api"]
    masked = Setting.parse("--config api_key=sk-123 --config base_url=http://x")
    assert "api_key=***" in masked.label_args(mask=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("--modle x", "No such option"),
        ("--prompt cat --label cat", "either --prompt or --label"),
        ("--option thinking", "not KEY=VALUE"),
        ("--model 'unbalanced", "closing quotation"),
    ],
)
def test_bad_settings_are_clear_errors(text, message):
    from vlmkit.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        Setting.parse(text)


def test_a_broken_setting_gets_an_error_row_and_the_others_still_run(
    tmp_path, fake_gemini, monkeypatch
):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    folder, gt, truth = dataset(tmp_path)
    fake_gemini.add_rule(text=answers(truth))
    url = fake_gemini.base_url
    report = pilot(
        [folder],
        gt,
        [
            f"--model gemini-3.6-flash --option no_such_option=1 --config base_url={url}",
            f"--model gemini-3.1-pro --config base_url={url}",
        ],
        out_dir=tmp_path / "pilot",
        sample=2,
        cache=False,
    )
    good, broken = report.rows
    assert good.setting.model == "gemini-3.1-pro" and good.evaluation is not None
    assert broken.evaluation is None and "no_such_option" in broken.error
    markdown = (tmp_path / "pilot" / "report.md").read_text()
    assert "error: " in markdown and "gemini-3.1-pro" in report.label_command


def test_a_setting_the_ground_truth_cannot_score_is_refused_before_any_call(tmp_path, fake_gemini):
    from vlmkit.errors import ConfigError

    folder, gt, _truth = dataset(tmp_path)
    with pytest.raises(ConfigError, match="has no segmentation"):
        pilot([folder], gt, ["--task segment --model gemini-3.1-pro"], out_dir=tmp_path / "p")
    with pytest.raises(ConfigError, match="cannot score"):
        pilot([folder], gt, ["--task ocr --model gemini-3.1-pro"], out_dir=tmp_path / "p")
    assert fake_gemini.calls["generate"] == 0
