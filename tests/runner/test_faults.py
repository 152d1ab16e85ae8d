"""Faults in the middle of a run: a full disk under the ledger, Ctrl-C during the sinks'
commit. The run stops cleanly, says why, and loses no paid answer."""

from __future__ import annotations

import errno
import json
import os
import signal
import threading
import types

import pytest

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
