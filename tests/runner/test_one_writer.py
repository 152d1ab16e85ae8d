"""One writer per run folder: a second process is refused with the holder's pid, the lock of a
dead process is taken over, and temporary files of dead processes are swept."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys

import pytest

import vlmkit
from tests.runner.test_runner import CAT, _driver, _is_json, _wait_for_lines, make_images
from vlmkit.ledger import read_ledger
from vlmkit.testing import scripted_plugin


def _session():
    return vlmkit.Session("scripted", plugins=[scripted_plugin(CAT)], entrypoints=["vlmkit"])


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_second_process_is_refused_naming_the_holder_and_a_dead_ones_lock_is_taken(tmp_path):
    images = tmp_path / "images"
    make_images(images, 12)
    out, calls = tmp_path / "out", tmp_path / "calls.log"
    proc = _driver(images, out, calls, "0.3")
    try:
        _wait_for_lines(calls, 1, proc)
        assert proc.poll() is None
        with _session() as s, pytest.raises(vlmkit.ConfigError) as refused:
            list(s.run("detect", [images], "cat", out_dir=out))
        assert f"process {proc.pid}" in str(refused.value)
        assert s.backend.requests == []  # refused before any request
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished = set(read_ledger(out / "results.jsonl").done)
    with _session() as s:  # the dead process's lock is taken over
        run = s.run("detect", [images], "cat", out_dir=out)
        list(run)
    state = read_ledger(out / "results.jsonl")
    assert len(state.done) == 12 and run.summary.resumed == len(finished)
    # no duplicate done records (a line torn by the SIGKILL is not a record: parse, don't count)
    done_keys = collections.Counter(
        record["key"]
        for line in (out / "results.jsonl").read_text().splitlines()
        if _is_json(line) and (record := json.loads(line)).get("status") == "done"
    )
    assert len(done_keys) == 12 and set(done_keys.values()) == {1}


def test_one_process_cannot_run_two_runs_into_one_folder_at_once(tmp_path):
    images = tmp_path / "images"
    make_images(images, 3)
    with _session() as s:
        first = iter(s.run("detect", [images], "cat", out_dir=tmp_path / "out", concurrency=1))
        next(first)  # the first run holds the folder
        with pytest.raises(vlmkit.ConfigError, match=f"process {os.getpid()}"):
            list(s.run("detect", [images], "cat", out_dir=tmp_path / "out"))
        rest = list(first)
    assert len(rest) == 2


def test_temporary_files_of_dead_processes_are_swept_when_a_run_starts(tmp_path):
    images = tmp_path / "images"
    make_images(images, 2)
    out = tmp_path / "out"
    (out / "labels" / "part0").mkdir(parents=True)
    dead, alive = _dead_pid(), os.getppid()
    stale = [
        out / f".annotations.json.{dead}-0123456789ab.tmp",
        out / "labels" / "part0" / f".img000.txt.{dead}-ba9876543210.tmp",
    ]
    kept = out / f".annotations.json.{alive}-0123456789ab.tmp"  # its process still runs
    for path in [*stale, kept]:
        path.write_text("partial")
    with _session() as s:
        list(s.run("detect", [images], "cat", out_dir=out))
    assert not any(path.exists() for path in stale)
    assert kept.exists()
