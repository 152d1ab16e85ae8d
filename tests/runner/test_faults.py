"""Faults in the middle of a run: a full disk under the ledger, Ctrl-C during the sinks'
commit. The run stops cleanly, says why, and loses no paid answer."""

from __future__ import annotations

import errno
import json
import os
import signal
import threading
import time
import types

import pytest
from PIL import Image

import vlmkit
import vlmkit.atomic
import vlmkit.ledger
from tests.runner.test_runner import CAT, make_images
from vlmkit.ledger import read_ledger
from vlmkit.testing import scripted_plugin


def _full_disk_after(lines: int):
    """The ``os`` module as the ledger sees it, on a disk that fills up after ``lines`` writes:
    the next write stores half its bytes, then every write fails with ENOSPC."""
    count = [0]

    def write(fd, data):
        count[0] += 1
        if count[0] == lines + 1:
            os.write(fd, bytes(data[: len(data) // 2]))
        if count[0] > lines:
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)

    return types.SimpleNamespace(**{**vars(os), "write": write}), count


def test_a_full_disk_under_the_ledger_stops_the_run_cleanly_and_loses_no_answer(
    tmp_path, monkeypatch
):
    images = tmp_path / "images"
    make_images(images, 30, subfolders=False)
    out, cache = tmp_path / "out", tmp_path / "cache"
    crashed = []
    monkeypatch.setattr(threading, "excepthook", crashed.append)
    fake_os, _count = _full_disk_after(5)
    monkeypatch.setattr(vlmkit.ledger, "os", fake_os)
    plugin = scripted_plugin(CAT, latency_s=0.01)
    with vlmkit.Session("scripted", plugins=[plugin], entrypoints=["vlmkit"], cache=cache) as s:
        run = s.run("detect", [images], "cat", out_dir=out, concurrency=4)
        with pytest.raises(vlmkit.VlmkitError, match="No space left on device") as stopped:
            list(run)
        paid = len(s.backend.requests)
    assert "could not write the run's ledger" in str(stopped.value)
    assert crashed == []  # no "Exception in thread vlmkit-run-N"
    assert run.summary.stopped == "error" and "stopped early" in str(run.summary)
    assert run.summary.done == 5 and paid <= 5 + 2 * 4  # stopped at once, not 30 requests
    monkeypatch.setattr(vlmkit.ledger, "os", os)  # space freed
    plugin = scripted_plugin(CAT)
    with vlmkit.Session("scripted", plugins=[plugin], entrypoints=["vlmkit"], cache=cache) as s:
        again = s.run("detect", [images], "cat", out_dir=out)
        list(again)
        asked = len(s.backend.requests)
    state = read_ledger(out / "results.jsonl")
    assert len(state.done) == 30 and state.torn_lines <= 1  # the half line, sealed
    assert asked == 30 - paid  # every answer received before the stop came from the cache
    assert again.summary.cached == paid - 5


def test_ctrl_c_during_the_sink_commit_is_all_or_nothing(tmp_path, monkeypatch):
    images = tmp_path / "images"
    make_images(images, 6, subfolders=False)
    out = tmp_path / "out"
    real = os.replace
    moves = [0]

    def replace(source, target):  # Ctrl-C right in the middle of the burst of renames
        moves[0] += 1
        if moves[0] == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return real(source, target)

    monkeypatch.setattr(vlmkit.atomic.os, "replace", replace)
    with vlmkit.Session("scripted", plugins=[scripted_plugin(CAT)], entrypoints=["vlmkit"]) as s:
        run = s.run("detect", [images], "cat", out_dir=out, sinks=["coco", "yolo", "annotate"])
        outcomes = list(run)
    assert len(outcomes) == 6 and moves[0] > 4
    assert len(json.loads((out / "annotations.json").read_text())["images"]) == 6
    assert (out / "data.yaml").exists() and len(list((out / "labels").iterdir())) == 6
    assert len(list((out / "annotated").iterdir())) == 6
    assert not [p for p in out.rglob("*.tmp")]
    assert run.summary.wall_s > 0


def test_huge_images_are_taken_within_a_pixel_budget_across_workers(tmp_path, monkeypatch):
    import vlmkit.session

    images = tmp_path / "images"
    images.mkdir()
    for i in range(6):
        Image.new("RGB", (3000, 3000), (i, i, i)).save(images / f"big{i}.png")  # 9 MP each
    for i in range(6):
        Image.new("RGB", (100, 100), (i, i, i)).save(images / f"small{i}.png")
    lock, held, peak = threading.Lock(), [0], [0]
    real_load = vlmkit.session.load_image

    def load(image, **options):  # a big image is held from its decoding until its answer
        loaded = real_load(image, **options)
        if loaded.size[0] * loaded.size[1] > 1_000_000:
            with lock:
                held[0] += 1
                peak[0] = max(peak[0], held[0])
        return loaded

    def answer(request):
        size = request.images[0].original.size
        time.sleep(0.05)  # lets the other workers try to start meanwhile
        if size[0] * size[1] > 1_000_000:
            with lock:
                held[0] -= 1
        return CAT

    monkeypatch.setattr(vlmkit.session, "load_image", load)
    with vlmkit.Session("scripted", plugins=[scripted_plugin(answer)], entrypoints=["vlmkit"]) as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "out", concurrency=8,
                    pixel_budget=20_000_000)  # fmt: skip
        assert [o.status for o in run] == ["done"] * 12
    assert peak[0] <= 2  # two 9 MP images fit under 20 MP, a third waits (8 without a budget)


def test_pillows_decompression_bomb_warning_becomes_vlmkits_own(tmp_path, monkeypatch):
    from PIL import Image as PILImage
    from typer.testing import CliRunner

    from vlmkit.cli import app

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 500_000)  # Pillow warns above this
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (800, 700), (9, 9, 9)).save(images / "huge.png")  # 560,000 pixels
    result = CliRunner().invoke(
        app,
        ["--plugin", "tests.cli.scripted_backends", "label", str(images), "-b", "scripted",
         "--out", str(tmp_path / "out"), "--no-progress"],
        env={"VLMKIT_LOAD_PLUGINS": "vlmkit", "VLMKIT_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "huge.png: 800 × 700 pixels is beyond Pillow's decompression-bomb" in result.stderr
    assert "DecompressionBombWarning" not in result.output
