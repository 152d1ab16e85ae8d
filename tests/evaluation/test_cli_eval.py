"""`vlmkit eval` as a user runs it: one run against ground truth, and a pilot of settings."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import vlmkit
from tests.evaluation.fake_models import answers, dataset
from tests.evaluation.helpers import coco_ground_truth, detection, write_run
from vlmkit.cli import app

GT = {
    "val/a.jpg": [("cat", [10, 10, 50, 50]), ("car", [120, 20, 190, 90])],
    "val/b.jpg": [("dog", [20, 20, 80, 80])],
}
RUN = {
    "a.jpg": [detection("Cat", [10, 10, 50, 50]), detection("automobile", [120, 20, 190, 90])],
    "b.jpg": [detection("dog", [25, 25, 85, 85]), detection("dog", [150, 10, 190, 40])],
}
REQUIRED = (
    "images", "map", "map50", "map75", "precision", "recall", "f1", "per_class",
    "parse_failures", "cost_per_image", "latency_p50_s",
)  # fmt: skip


@pytest.fixture
def vlm(tmp_path):
    runner = CliRunner()
    env = {"VLMKIT_LOAD_PLUGINS": "vlmkit", "VLMKIT_CACHE_DIR": str(tmp_path / "cache")}

    def invoke(*args, extra_env=None):
        return runner.invoke(app, list(args), env={**env, **(extra_env or {})})

    return invoke


@pytest.fixture
def case(tmp_path):
    return write_run(tmp_path / "run", RUN), coco_ground_truth(tmp_path / "gt.json", GT)


def test_json_has_the_documented_keys_and_the_api_numbers(vlm, case):
    run, gt = case
    result = vlm("eval", str(run), "--gt", str(gt), "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(REQUIRED) <= set(document)
    expected = vlmkit.evaluate(run, gt).to_dict()
    assert document == json.loads(json.dumps(expected))
    assert document["per_class"]["cat"] == {"ap": pytest.approx(1.0), "ap50": pytest.approx(1.0)}
    assert document["unmapped_labels"] == {"automobile": 1}
    assert "not scored" in result.stderr and "automobile" in result.stderr


def test_map_scores_a_synonym(vlm, case):
    run, gt = case
    result = vlm("eval", str(run), "--gt", str(gt), "--json", "--map", "automobile=car")
    document = json.loads(result.stdout)
    assert document["true_positives"] == 3 and document["unmapped_labels"] == {}
    assert document["per_class"]["car"]["ap50"] == pytest.approx(1.0)


def test_human_output_is_a_table(vlm, case):
    run, gt = case
    result = vlm("eval", str(run), "--gt", str(gt))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.startswith("mAP@.50") and "%" in line for line in lines)
    assert any(line.split()[:1] == ["dog"] for line in lines)  # the per-class table
    assert any(line.startswith("cost/image") and "$0.00100" in line for line in lines)


def test_unmatched_images_are_a_usage_error(vlm, tmp_path, case):
    _run, gt = case
    other = write_run(tmp_path / "other", {"zebra.jpg": []})
    result = vlm("eval", str(other), "--gt", str(gt))
    assert result.exit_code == 2
    assert "zebra.jpg" in result.stderr and "no ground truth" in result.stderr


def test_several_paths_need_try(vlm, case):
    run, gt = case
    result = vlm("eval", str(run), str(run), "--gt", str(gt))
    assert result.exit_code == 2 and "add --try" in result.stderr


def test_pilot_from_the_command_line(vlm, tmp_path, fake_gemini):
    folder, gt, truth = dataset(tmp_path)
    fake_gemini.add_rule(text=answers(truth))
    secret = "sk-test-secret-key-12345"
    config = f"--config base_url={fake_gemini.base_url} --config api_key={secret}"
    result = vlm(
        "eval", str(folder), "--gt", str(gt), "--sample", "4", "--no-progress",
        "--try", f"--model gemini-3.5-flash-lite {config}",
        "--try", f"--model gemini-3.1-pro {config}",
        "--out", str(tmp_path / "pilot"),
        extra_env={"VLMKIT_LOAD_PLUGINS": "vlmkit,vlmkit-gemini"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = [line for line in result.stdout.splitlines() if line[:2] in ("1 ", "2 ")]
    assert "gemini-3.1-pro" in table[0] and "gemini-3.5-flash-lite" in table[1]
    command = next(line for line in result.stdout.splitlines() if "vlmkit label" in line)
    assert "--model gemini-3.1-pro" in command and "api_key=***" in command
    assert secret not in result.output
    assert secret not in (tmp_path / "pilot" / "report.md").read_text()
    assert secret not in (tmp_path / "pilot" / "report.json").read_text()
    assert fake_gemini.calls["generate"] == 8
