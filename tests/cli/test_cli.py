"""The ``vlmkit`` command line, driven like a user would: scripted backends come in through
``--plugin`` (tests/cli/scripted_backends.py), only the core's own plugins load from entry
points, and answers are cached in a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import vlmkit
import vlmkit.runner
from vlmkit.cli import app
from vlmkit.ledger import Ledger, LedgerRecord
from vlmkit.serialize import result_from_dict
from vlmkit.types import Box, Detection, Detections, Provenance

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SCRIPTED = "tests.cli.scripted_backends"
COMMANDS = ("backends", "sinks", "detect", "segment", "describe", "ocr", "video", "export", "label")


@pytest.fixture
def env(tmp_path):
    return {
        "VLMKIT_LOAD_PLUGINS": "vlmkit",  # the core sinks only; backends come from --plugin
        "VLMKIT_CACHE_DIR": str(tmp_path / "cache"),
        "VLMKIT_PLUGINS": None,
        "VLMKIT_BACKEND": None,
        "COLUMNS": "200",
    }


@pytest.fixture
def vlm(env):
    """``vlm("detect", ...)`` runs the CLI in-process with the scripted backends loaded."""
    runner = CliRunner()

    def invoke(*args: str, plugins=(SCRIPTED,), extra_env=None):
        flags = [arg for plugin in plugins for arg in ("--plugin", plugin)]
        return runner.invoke(app, [*flags, *args], env={**env, **(extra_env or {})})

    return invoke


@pytest.fixture
def image(tmp_path) -> str:
    path = tmp_path / "blue.png"
    Image.new("RGB", (400, 200), (40, 90, 160)).save(path)
    return str(path)


# -- listings -------------------------------------------------------------------------------
def test_help_mentions_every_command(vlm):
    result = vlm("--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


def test_version(vlm):
    result = vlm("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"vlmkit {vlmkit.__version__}"


def test_backends_table_and_json(vlm):
    table = vlm("backends")
    assert table.exit_code == 0, table.output
    rows = {line.split()[0]: line for line in table.stdout.splitlines()[1:] if line.strip()}
    assert "describe, detect, ocr, points, segment, video" in rows["scripted"]
    assert "image, video" in rows["scripted"]
    assert "problems" not in table.stdout

    listed = json.loads(vlm("backends", "--json").stdout)
    by_name = {b["name"]: b for b in listed["backends"]}
    assert by_name["detect-only"]["tasks"] == ["detect"]
    assert by_name["scripted"]["plugin"] == SCRIPTED
    assert listed["problems"] == {"failures": [], "conflicts": []}


def test_sinks_lists_the_core_sinks_with_their_distribution(vlm):
    result = vlm("sinks")
    assert result.exit_code == 0
    for name in ("coco", "yolo", "annotate", "jsonl"):
        assert name in result.stdout
    listed = json.loads(vlm("sinks", "--json").stdout)
    coco = next(s for s in listed["sinks"] if s["name"] == "coco")
    assert coco["accepts"] == ["detect", "points", "segment"]
    assert coco["distribution"].startswith("vlmkit ")


def test_broken_plugins_are_listed_with_their_reason_not_fatal(vlm):
    broken = str(HERE / "broken_plugin.py")
    result = vlm(
        "backends",
        plugins=(SCRIPTED, broken),
        extra_env={"VLMKIT_PLUGINS": "vlmkit_no_such_plugin"},
    )
    assert result.exit_code == 0
    assert "scripted" in result.stdout  # the working plugin still works
    problems = result.stdout.split("problems", 1)[1]
    assert "broken_plugin.py" in problems and "imaginary-sdk" in problems
    assert "vlmkit_no_such_plugin" in problems and "ModuleNotFoundError" in problems
    assert "2 plugin problem(s)" in result.stderr
    assert "Traceback" not in result.output

    listed = json.loads(vlm("backends", "--json", plugins=(SCRIPTED, broken)).stdout)
    [failure] = listed["problems"]["failures"]
    assert failure["error_type"] == "ImportError" and "imaginary-sdk" in failure["error"]


def test_a_broken_plugin_is_a_warning_for_tasks_and_an_error_when_strict(vlm, image):
    plugins = (SCRIPTED, "vlmkit_no_such_plugin")
    result = vlm("detect", image, "-b", "scripted", plugins=plugins)
    assert result.exit_code == 0
    assert "warning: plugin 'vlmkit_no_such_plugin'" in result.stderr
    strict = vlm("--strict", "detect", image, "-b", "scripted", plugins=plugins)
    assert strict.exit_code == 1
    assert strict.stderr.startswith("error: could not import plugin 'vlmkit_no_such_plugin'")


def test_name_conflicts_name_both_providers(vlm, tmp_path):
    twin = tmp_path / "twin_backend.py"
    twin.write_text(
        "import vlmkit\n"
        "@vlmkit.hookimpl\n"
        "def vlmkit_backends():\n"
        "    yield vlmkit.BackendInfo(name='scripted', factory=dict, tasks={'detect'})\n"
    )
    result = vlm("backends", plugins=(SCRIPTED, str(twin)))
    assert result.exit_code == 0
    assert f"backend 'scripted' is registered by both '{SCRIPTED}' and 'twin_backend'" in (
        result.stdout
    )


def test_global_options_also_work_after_the_command(vlm, image):
    result = vlm("detect", image, "-b", "scripted", "--plugin", SCRIPTED, "-v", plugins=())
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("cat  ")
    assert "info: vlmkit.cli: backend scripted" in result.stderr


# -- single-image tasks ---------------------------------------------------------------------
def test_detect_prints_boxes_in_pixels(vlm, image):
    result = vlm("detect", image, "--prompt", "cat", "--backend", "scripted")
    assert result.exit_code == 0, result.output
    # box_2d [100, 200, 500, 600] (yxyx on 0-1000) of a 400 x 200 image
    assert result.stdout == "cat  [80.0, 20.0, 240.0, 100.0]\n"
    assert result.stderr == ""


def test_detect_json_is_the_serialized_result(vlm, image):
    result = vlm("detect", image, "-l", "cat", "-l", "dog", "-b", "scripted", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["type"] == "detections"
    assert document["image_size"] == [400, 200]
    [item] = document["items"]
    assert item["label"] == "cat"
    np.testing.assert_allclose(item["box"], [80, 20, 240, 100])
    assert '"cat", "dog"' in document["provenance"]["prompt"]  # exact labels
    restored = result_from_dict(document)
    np.testing.assert_allclose(restored.xyxy, [[80, 20, 240, 100]])


def test_repairs_and_an_unusual_finish_are_reported(vlm, image):
    result = vlm("detect", image, "-b", "sloppy")
    assert result.exit_code == 0, result.output
    # the escape in the model's label reaches the terminal as text, not as a control sequence
    assert result.stdout == "cat\\x1b[2J  [80.0, 20.0, 240.0, 100.0]  score=0.88\n"
    assert result.stderr.splitlines() == [
        "warning: parse report: swapped=1, truncated",
        "warning: finish reason: max_tokens (the answer was cut off by the token limit; "
        "only complete items were kept)",
    ]


def test_out_writes_the_json_and_keeps_the_human_output(vlm, image, tmp_path):
    out = tmp_path / "answers" / "dets.json"
    result = vlm("detect", image, "-b", "scripted", "--out", str(out))
    assert result.exit_code == 0
    assert result.stdout.startswith("cat  [80.0")
    assert json.loads(out.read_text())["items"][0]["label"] == "cat"


def test_option_values_are_validated_by_the_session(vlm, image):
    good = vlm("detect", image, "-b", "scripted", "--option", "max_soft_tokens=280", "--json")
    assert good.exit_code == 0, good.output
    assert json.loads(good.stdout)["provenance"]["options"] == {"max_soft_tokens": 280}

    bad = vlm("detect", image, "-b", "scripted", "--option", "max_soft_tokens=100")
    assert bad.exit_code == 2
    assert bad.stderr == (
        f"error: {image}: option max_soft_tokens='100' is not allowed; "
        "choose one of [70, 140, 280]\n"
    )
    unknown = vlm("detect", image, "-b", "scripted", "--option", "temprature=0.1")
    assert unknown.exit_code == 2
    assert "has no option(s) temprature; its options are: api_token, max_soft_tokens" in (
        unknown.stderr
    )
    malformed = vlm("detect", image, "-b", "scripted", "--option", "max_soft_tokens")
    assert malformed.exit_code == 2
    assert "--option takes KEY=VALUE" in malformed.stderr


def test_usage_errors_exit_2(vlm, image):
    missing = vlm("detect", image)  # the default backend (gemini-api) is not loaded here
    assert missing.exit_code == 2
    assert "no backend named 'gemini-api'; installed: detect-only, scripted" in missing.stderr
    unsupported = vlm("ocr", image, "-b", "detect-only")
    assert unsupported.exit_code == 2
    assert "does not support ocr; installed backends that can: scripted" in unsupported.stderr
    both = vlm("detect", image, "-b", "scripted", "-p", "cat", "-l", "dog")
    assert both.exit_code == 2
    threshold = vlm("segment", image, "-b", "scripted", "--threshold", "300")
    assert threshold.exit_code == 2


def test_unreadable_image_is_one_clean_line(vlm, tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not a JPEG")
    for path in (junk, tmp_path / "missing.png"):
        result = vlm("detect", str(path), "-b", "scripted")
        assert result.exit_code == 1
        assert result.stdout == ""
        assert result.stderr.startswith(f"error: {path}") and result.stderr.count("\n") == 1
        assert "Traceback" not in result.output
    verbose = vlm("-v", "detect", str(junk), "-b", "scripted")
    assert verbose.exit_code == 1 and "Traceback" in verbose.stderr


def test_segment_shows_mask_areas_and_json_carries_the_masks(vlm, image):
    result = vlm("segment", image, image, "-p", "ramp", "-b", "scripted")
    assert result.exit_code == 0, result.output
    # box [0, 0, 200, 100]; the left half of the mask is on
    assert result.stdout.splitlines() == [
        f"==> {image} <==",
        "ramp  [0.0, 0.0, 200.0, 100.0]  mask=10000px",
        f"==> {image} <==",
        "ramp  [0.0, 0.0, 200.0, 100.0]  mask=10000px",
    ]
    documents = json.loads(vlm("segment", image, image, "-b", "scripted", "--json").stdout)
    assert [d["input"] for d in documents] == [image, image]
    mask = result_from_dict(documents[0]["result"])[0].mask
    assert mask.area == 10000 and mask.region == (0, 0, 200, 100)


def test_ocr_plain_and_with_boxes(vlm, image):
    plain = vlm("ocr", image, "-b", "scripted")
    assert plain.exit_code == 0
    assert plain.stdout == "HELLO\nWORLD\n"
    boxes = vlm("ocr", image, "--boxes", "-b", "scripted")
    assert boxes.stdout == "[0.0, 0.0, 200.0, 20.0]  HELLO\n"


def test_describe_sends_two_images_in_one_call(vlm, image, tmp_path):
    other = tmp_path / "other.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(other)
    result = vlm("describe", image, str(other), "-b", "scripted")
    assert result.exit_code == 0
    assert result.stdout == "2 image(s): a blue square.\n"
    document = json.loads(vlm("describe", image, "-b", "scripted", "--json").stdout)
    assert document["type"] == "description" and document["text"].startswith("1 image(s)")


def tiny_video(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(8):
            frame = np.full((32, 32, 3), i * 30, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_video_prints_timed_events(vlm, tmp_path):
    clip = str(tiny_video(tmp_path / "clip.mp4"))
    result = vlm("video", clip, "--fps", "2", "--start", "0:00", "--end", "2", "-b", "scripted")
    assert result.exit_code == 0, result.output
    assert result.stdout == "00:00–00:01 a grey screen\n00:01–00:02 it turns white\n"
    document = json.loads(vlm("video", clip, "-b", "scripted", "--json").stdout)
    assert [e["start"] for e in document["events"]] == [0.0, 1.0]
    bad = vlm("video", clip, "--start", "soon", "-b", "scripted")
    assert bad.exit_code == 2 and "--start 'soon' is not a time" in bad.stderr


def test_times_read_as_mm_ss():
    from vlmkit.cli.output import format_time

    times = (0, 75, 1.5, 3725, 59.96)
    assert [format_time(t) for t in times] == ["00:00", "01:15", "00:01.5", "1:02:05", "01:00"]


def test_the_cache_answers_a_repeated_call(vlm, image):
    first = json.loads(vlm("detect", image, "-b", "scripted", "--json").stdout)
    again = json.loads(vlm("detect", image, "-b", "scripted", "--json").stdout)
    fresh = json.loads(vlm("detect", image, "-b", "scripted", "--json", "--no-cache").stdout)
    assert (first["provenance"]["cached"], again["provenance"]["cached"]) == (False, True)
    assert fresh["provenance"]["cached"] is False


def test_secrets_are_masked_everywhere(vlm, image):
    secret = "sk-live-0123456789abcdef"
    answer = vlm(
        "-v", "detect", image, "-b", "scripted",
        "--config", f"api_key={secret}", "--option", f"api_token={secret}", "--json",
    )  # fmt: skip
    assert answer.exit_code == 0, answer.output
    assert secret not in answer.output
    assert json.loads(answer.stdout)["provenance"]["options"]["api_token"] == "***"
    assert "config {'api_key': '***'}" in answer.stderr
    # an option that fails validation echoes its value in the error
    bad = vlm("detect", image, "-b", "scripted", "--option", f"seed_key={secret}")
    assert bad.exit_code == 2
    assert bad.stderr == f"error: {image}: option seed_key='***' is not a valid int\n"
    leaked = vlm("detect", image, "-b", "scripted", extra_env={"MY_SERVICE_TOKEN": secret},
                 plugins=(SCRIPTED, f"no_such_{secret}"))  # fmt: skip
    assert secret not in leaked.output and "no_such_***" in leaked.stderr


# -- export and label -----------------------------------------------------------------------
def cat_ledger(tmp_path, image) -> Path:
    """A run's ledger: one cat on ``image`` (blue.png) and one failed item."""
    detections = Detections(
        image_size=(400, 200),
        items=[Detection(box=Box.from_xyxy([80, 20, 240, 100]), label="cat", score=0.9)],
        provenance=Provenance(task="detect", backend="scripted"),
    )
    ledger = tmp_path / "run" / "results.jsonl"
    with Ledger(ledger, fsync=False) as writer:
        writer.append(
            LedgerRecord(
                key="blue.png",
                status="done",
                result=detections,
                image_path=image,
                image_size=(400, 200),
            )
        )
        writer.append(LedgerRecord(key="bad.png", status="failed", error="unreadable"))
    return ledger


def test_export_rebuilds_coco_and_yolo_from_a_ledger(vlm, tmp_path, image):
    ledger = cat_ledger(tmp_path, image)
    out = tmp_path / "dataset"
    result = vlm(
        "export", str(ledger.parent), "--sink", "coco", "--sink", "yolo", "--out", str(out),
        "--sink-option", "coco.indent=2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    written = [line.split(": ", 1) for line in result.stdout.splitlines()]
    assert {sink for sink, _ in written} == {"coco", "yolo"}
    assert all(Path(path).is_file() for _, path in written)

    coco = json.loads((out / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["cat"]
    [annotation] = coco["annotations"]
    np.testing.assert_allclose(annotation["bbox"], [80, 20, 160, 80])
    [labels] = [Path(p) for sink, p in written if sink == "yolo" and p.endswith("blue.txt")]
    class_id, *xywh = labels.read_text().split()
    assert class_id == "0"
    np.testing.assert_allclose([float(v) for v in xywh], [0.4, 0.3, 0.4, 0.4])


def test_export_takes_progress_flags_and_prints_only_files_to_stdout(vlm, tmp_path, image):
    ledger = cat_ledger(tmp_path, image)
    outputs = []
    for flag in ("--progress", "--no-progress"):
        out = tmp_path / flag.strip("-")
        result = vlm("export", str(ledger), "--sink", "coco", "--out", str(out), flag)
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout.replace(str(out), "OUT"))
    assert outputs[0] == outputs[1] == "coco: OUT/annotations.json\n"


def test_export_errors(vlm, tmp_path):
    ledger = tmp_path / "results.jsonl"
    ledger.write_text("")
    unknown = vlm("export", str(ledger), "--sink", "cocoa", "--out", str(tmp_path / "o"))
    assert unknown.exit_code == 2
    assert "no sink named 'cocoa'; installed: annotate, coco, jsonl, yolo" in unknown.stderr
    stray = vlm("export", str(ledger), "--sink", "coco", "--out", str(tmp_path / "o"),
                "--sink-option", "yolo.names=list")  # fmt: skip
    assert stray.exit_code == 2 and "not among the --sink values" in stray.stderr
    missing = vlm("export", str(tmp_path / "nope.jsonl"), "--sink", "coco", "--out", "o")
    assert missing.exit_code == 2


class FakeSummary:
    def __init__(self, done: int, failed: int) -> None:
        self.done, self.failed, self.skipped = done, failed, 0
        self.tokens, self.cost_usd, self.wall_s, self.items_per_s = 0, None, 0.1, 20.0

    def __str__(self) -> str:
        return f"{self.done} done, {self.failed} failed"


class FakeRun:
    """What Session.run returns: an iterable of results with a summary once it is done."""

    def __init__(self, failed: int) -> None:
        self.failed = failed
        self.summary = None

    def __iter__(self):
        yield from ("first", "second")
        self.summary = FakeSummary(2 - self.failed, self.failed)


def test_label_builds_the_run_from_its_options(vlm, monkeypatch, tmp_path):
    calls, outcome = [], {"failed": 0}

    def run(self, task, inputs, **kwargs):
        calls.append((task, inputs, kwargs))
        return FakeRun(outcome["failed"])

    monkeypatch.setattr(vlmkit.Session, "run", run, raising=False)
    out = tmp_path / "run"
    result = vlm(
        "label", "photos/", "more/*.jpg", "--task", "segment", "-l", "cat", "-b", "scripted",
        "--out", str(out), "--sink", "coco", "--sink", "yolo", "--sink-option",
        "coco.mask_format=polygon", "--concurrency", "4", "--option", "max_soft_tokens=140",
        "--retry-failed", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == "2 done, 0 failed\n"
    [(task, inputs, kwargs)] = calls
    assert (task, inputs) == ("segment", ["photos/", "more/*.jpg"])
    assert kwargs == {
        "prompt": ["cat"],
        "out_dir": out,
        "sinks": ["coco", "yolo"],
        "sink_options": {"coco": {"mask_format": "polygon"}},
        "retry_failed": True,
        "budget_usd": None,
        "progress": False,
        "options": {"max_soft_tokens": "140"},
        "concurrency": 4,
    }
    outcome["failed"] = 1
    failed = vlm("label", "x.png", "-b", "scripted", "--out", str(out), "--budget", "1.5")
    assert failed.exit_code == 1
    assert failed.stdout == "1 done, 1 failed\n" and "1 item(s) failed" in failed.stderr
    assert calls[-1][2]["budget_usd"] == 1.5 and calls[-1][2]["prompt"] is None


@pytest.mark.skipif(not hasattr(vlmkit.Session, "run"), reason="the batch runner is not here")
def test_label_end_to_end_with_the_real_runner(vlm, tmp_path, image):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    Image.open(image).save(photos / "a.png")
    Image.new("RGB", (200, 100), (9, 9, 9)).save(photos / "sub" / "b.png")
    (photos / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "run"
    args = ("label", str(photos), "-l", "cat", "-b", "scripted", "--out", str(out))
    first = vlm(*args, "-s", "coco", "-s", "yolo", "--no-progress")
    assert first.exit_code == 1, first.output  # one bad image fails alone
    assert "done 2, failed 1" in first.stdout
    assert "1 item(s) failed" in first.stderr
    coco = json.loads((out / "annotations.json").read_text())
    assert len(coco["images"]) == 2 and len(coco["annotations"]) == 2
    again = vlm(*args, "--no-progress")
    assert again.exit_code == 0 and "done 0" in again.stdout  # resumed, nothing re-asked


def test_label_keeps_the_start_up_heap_out_of_full_collections(vlm, monkeypatch, tmp_path, image):
    import gc

    seen: list[tuple[str, int]] = []
    real_iter = vlmkit.runner.Run.__iter__

    def spying_iter(run):
        seen.append(("run", gc.get_freeze_count()))
        yield from real_iter(run)

    monkeypatch.setattr(vlmkit.runner.Run, "__iter__", spying_iter)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.open(image).save(photos / "a.png")
    result = vlm("label", str(photos), "-l", "cat", "-b", "scripted", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert seen and seen[0][1] > 0  # frozen while the run ran
    assert gc.get_freeze_count() == 0  # and thawed after it


@pytest.mark.parametrize("answer_costs", ["cpu", "waiting"])
def test_label_says_when_its_own_process_set_the_pace(
    vlm, monkeypatch, tmp_path, image, answer_costs
):
    """A run that kept this process's core busy with many requests in flight points to the
    processes engine (the client, not the model, set the pace); a run that waited on its
    answers does not. The answers cost 1.2 s of CPU in all (or 0.3 s of waiting, longer than
    the shortest run the hint speaks of), so that the run's own waits (the ledger's fsyncs,
    slow for minutes on a busy file system) cannot take the busy run below the hint's 85 %:
    with 0.4 s of CPU they once did in CI."""
    import os
    import time

    from tests.cli import scripted_backends
    from vlmkit.cli import engine as cli_engine

    def answer(request):
        end = time.thread_time() + 0.15
        while answer_costs == "cpu" and time.thread_time() < end:
            pass
        if answer_costs == "waiting":
            time.sleep(0.3)
        return scripted_backends.DETECT

    monkeypatch.setitem(scripted_backends.SCRIPT, "detect", answer)
    monkeypatch.setattr(cli_engine, "HINT_MIN_WALL_S", 0.2)  # short, but not start-up alone
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(8):
        Image.open(image).save(photos / f"{i}.png")
    out = str(tmp_path / "o")
    result = vlm(
        "label", str(photos), "-l", "cat", "-b", "scripted", "--out", out, "--concurrency", "16"
    )
    assert result.exit_code == 0, result.output
    assert "CPU " in result.stdout
    hinted = "--engine processes" in result.stderr
    assert hinted == (answer_costs == "cpu"), result.stderr
    if hinted:
        assert "16 requests in flight" in result.stderr and "8 cores here" in result.stderr


def test_the_pace_hint_needs_a_long_busy_run_with_many_requests_and_another_core():
    from vlmkit.cli.engine import cpu_bound_hint
    from vlmkit.outcomes import RunSummary

    busy = RunSummary(done=1000, wall_s=10.0, cpu_s=9.5)
    assert "95% busy with 64 requests in flight" in cpu_bound_hint(busy, 64, 4)
    assert cpu_bound_hint(busy, 64, 1) is None  # no other core to spread to
    assert cpu_bound_hint(busy, 4, 4) is None  # a local model or a deliberate limit
    assert cpu_bound_hint(RunSummary(wall_s=2.0, cpu_s=2.0), 64, 4) is None  # start-up
    assert cpu_bound_hint(RunSummary(wall_s=10.0, cpu_s=5.0), 64, 4) is None  # it waited
    # several cores busy: a local model's native code, where more processes mean more copies
    assert cpu_bound_hint(RunSummary(wall_s=10.0, cpu_s=35.0), 64, 8) is None
    # a local model generating in batches (on a GPU one Python thread feeding it keeps about
    # one core busy): more processes would load more copies of it, not go faster
    assert cpu_bound_hint(busy, 64, 4, batch_size=4) is None
    assert cpu_bound_hint(busy, 64, 4, batch_size=1) is not None


def test_label_without_a_runner_says_so(vlm, monkeypatch, tmp_path):
    monkeypatch.delattr(vlmkit.Session, "run", raising=False)
    result = vlm("label", "x.png", "-b", "scripted", "--out", str(tmp_path))
    assert result.exit_code == 1
    assert "the batch runner is not available" in result.stderr


def test_interrupt_exits_130(vlm, image, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(vlmkit.Session, "detect", interrupted)
    result = vlm("detect", image, "-b", "scripted")
    assert result.exit_code == 130
    assert result.stderr == "error: interrupted\n"


# -- the installed console script -----------------------------------------------------------
def test_console_script_in_a_subprocess(env, image):
    script = Path(sys.executable).with_name("vlmkit")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "vlmkit.cli"]
    environment = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    plugin = str(HERE / "scripted_backends.py")  # a plain file: no package import needed
    done = subprocess.run(
        [*command, "--plugin", plugin, "detect", image, "-b", "scripted", "--json"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(json.loads(done.stdout)["items"][0]["box"], [80, 20, 240, 100])
    failed = subprocess.run(
        [sys.executable, "-m", "vlmkit.cli", "detect", image, "-b", "nothing-here"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert failed.returncode == 2
    assert failed.stderr.startswith("error: no backend named 'nothing-here'")
    assert "Traceback" not in failed.stderr


def test_cached_answers_are_said_by_detect_and_counted_by_label_json(vlm, tmp_path, image):
    first = vlm("detect", image, "-l", "cat", "-b", "scripted")
    assert first.exit_code == 0 and "cache" not in first.stderr
    again = vlm("detect", image, "-l", "cat", "-b", "scripted")
    assert again.exit_code == 0 and "answer from the answer cache" in again.stderr
    as_json = vlm("detect", image, "-l", "cat", "-b", "scripted", "--json")
    assert json.loads(as_json.stdout)["provenance"]["cached"] is True
    args = ("label", image, "-l", "cat", "-b", "scripted", "--no-progress", "--json")
    run = vlm(*args, "--out", str(tmp_path / "run"))
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout)
    assert summary["done"] == 1 and summary["cached"] == 1 and summary["cost_usd"] in (None, 0)


_INTERRUPT_IMPORTS = """
import importlib.metadata, sys

class CtrlCWhileImporting:  # the user presses Ctrl-C while vlmkit's imports load
    def find_spec(self, name, path=None, target=None):
        if name == "vlmkit.cli.app":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, CtrlCWhileImporting())
[script] = importlib.metadata.entry_points(group="console_scripts", name="vlmkit")
script.load()()
"""


def test_ctrl_c_while_the_command_line_loads_exits_130_without_a_traceback():
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_IMPORTS], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr == "interrupted\n"


def test_backends_and_sinks_show_each_plugins_options(vlm, tmp_path, image):
    listed = json.loads(vlm("sinks", "--json").stdout)
    coco = next(s for s in listed["sinks"] if s["name"] == "coco")
    mask_format = next(o for o in coco["options"] if o["name"] == "mask_format")
    assert mask_format["choices"] == ["rle", "polygon"]
    table = vlm("sinks").stdout
    assert "mask_format=rle|polygon" in table

    third = vlm("sinks", plugins=("tests.sinks.thirdparty",))
    assert "sep=,|;" in third.stdout

    backends = json.loads(vlm("backends", "--json").stdout)
    assert all("settings" in b and "options" in b for b in backends["backends"])

    # a sink option that targets the ledger or leaves --out fails the command, not the data
    out = tmp_path / "run"
    ran = vlm("label", image, "--task", "detect", "--backend", "scripted", "--out", str(out))
    assert ran.exit_code == 0, ran.output
    ledger = (out / "results.jsonl").read_bytes()
    for option in ("targetsink.filename=results.jsonl", "targetsink.filename=../escaped.txt"):
        refused = vlm(
            *("label", image, "--task", "detect", "--backend", "scripted", "--out", str(out)),
            *("--sink", "targetsink", "--sink-option", option),
            plugins=(SCRIPTED, "tests.sinks.thirdparty"),
        )
        assert refused.exit_code != 0 and "targetsink.filename" in refused.output
    assert (out / "results.jsonl").read_bytes() == ledger
    assert not (tmp_path / "escaped.txt").exists()


def test_export_keeps_the_class_ids_of_the_runs_label_list(vlm, tmp_path, image):
    """`-l` labels fix the class ids of a run's sinks; `vlmkit export` of its ledger reads them
    from run.json, so the exported dataset is the same, byte for byte."""
    out = tmp_path / "run"
    ran = vlm(
        "label", image, "-l", "b", "-l", "a", "-l", "unicorn", "-b", "scripted",
        "--out", str(out), "-s", "coco", "-s", "yolo", "--no-progress",
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    again = tmp_path / "again"
    exported = vlm(
        "export", str(out / "results.jsonl"), "-s", "coco", "-s", "yolo", "--out", str(again)
    )
    assert exported.exit_code == 0, exported.output
    for name in ("annotations.json", "data.yaml"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    names = [c["name"] for c in json.loads((again / "annotations.json").read_text())["categories"]]
    assert names[:3] == ["b", "a", "unicorn"]

    # the user's own categories still win
    mine = tmp_path / "mine"
    chosen = vlm(
        "export", str(out), "-s", "coco", "--out", str(mine),
        "--sink-option", "coco.categories=cat",
    )  # fmt: skip
    assert chosen.exit_code == 0, chosen.output
    coco = json.loads((mine / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["cat"]


def test_label_refuses_a_sink_that_does_not_accept_the_task_before_any_request(
    vlm, monkeypatch, tmp_path, image
):
    from vlmkit.testing import ScriptedBackend

    sent = []
    real_generate = ScriptedBackend.generate

    def generate(self, request):
        sent.append(request)
        return real_generate(self, request)

    monkeypatch.setattr(ScriptedBackend, "generate", generate)
    out = tmp_path / "run"
    refused = vlm(
        "label", image, "--task", "ocr", "-b", "scripted", "--out", str(out),
        "-s", "csvboxes", "--no-progress", plugins=(SCRIPTED, "tests.sinks.thirdparty"),
    )  # fmt: skip
    assert refused.exit_code != 0
    assert "sink 'csvboxes' does not accept ocr results (it accepts: detect, segment)" in (
        refused.stderr
    )
    assert sent == []  # no model call
    assert not (out / "results.jsonl").exists()


def test_detect_keeps_the_good_items_of_an_answer_with_huge_integers(vlm, image):
    """An integer >= 10**309 in a box or a score drops that item (reported), never the answer,
    and never reaches the user as an OverflowError."""
    plugins = ("tests.cli.huge_numbers",)
    result = vlm("detect", image, "-b", "huge-numbers", plugins=plugins)
    assert result.exit_code == 0, result.output
    assert "OverflowError" not in result.output
    assert "unexpected" not in result.output
    assert "cat" in result.stdout
    as_json = vlm("detect", image, "-b", "huge-numbers", "--json", plugins=plugins)
    document = json.loads(as_json.stdout)
    assert [item["label"] for item in document["items"]] == ["cat", "dog"]  # good boxes kept
    skipped = document["report"]["skipped"]
    assert [s["index"] for s in skipped] == [1, 3]  # the boxes with huge numbers, reported
    assert all("out of range" in s["reason"] for s in skipped)
    assert "skipped=2" in result.stderr


def test_mask_limits_from_the_command_line(vlm, tmp_path, image):
    """--max-mask-pixels bounds the masks of each answer for segment and label --task segment:
    masks beyond it are dropped (detections kept) and reported as masks_dropped."""
    plain = json.loads(vlm("segment", image, "-b", "scripted", "--json").stdout)
    assert plain["items"][0]["mask"] is not None and plain["report"]["masks_dropped"] == 0
    low = vlm("segment", image, "-b", "scripted", "--json", "--max-mask-pixels", "100")
    assert low.exit_code == 0, low.output
    document = json.loads(low.stdout)
    assert [item["label"] for item in document["items"]] == ["ramp"]
    assert document["items"][0].get("mask") is None
    assert document["report"]["masks_dropped"] == 1
    bad = vlm("segment", image, "-b", "scripted", "--max-mask-pixels", "-3")
    assert bad.exit_code == 2

    out = tmp_path / "run"
    ran = vlm(
        "label", image, "--task", "segment", "-b", "scripted", "--out", str(out),
        "--max-mask-pixels", "100", "--no-progress",
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    [record] = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    result = result_from_dict(record["result"])
    assert [d.label for d in result] == ["ramp"] and result[0].mask is None
    assert result.report.masks_dropped == 1
    assert json.loads((out / "run.json").read_text())["options"] == {"max_mask_pixels": 100}
