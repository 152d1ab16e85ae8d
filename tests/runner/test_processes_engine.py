"""The ``processes`` engine: a run answered by worker processes on this machine, against the
loopback fake Gemini through the real SDK. The run folder's guarantees hold as for a local run:
every image once in the ledger and the sinks, Ctrl-C and a killed worker lose nothing
recorded, the same call resumes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import supervision as sv
from pycocotools.coco import COCO

from tests.catfake import ANSWER, MODEL, cat_fake, make_images
from vlmkit.engines import SessionSpec, build_engine
from vlmkit.errors import AuthError, VlmkitError
from vlmkit.ledger import read_ledger

pytest.importorskip("vlmkit_gemini.testing", reason="the tests use the fake Gemini")
pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers in /proc")


@pytest.fixture
def fake() -> Any:
    yield from cat_fake()


def spec_for(fake: Any, tmp_path: Path, **settings: str) -> SessionSpec:
    return SessionSpec(
        backend="gemini-api",
        model=MODEL,
        settings={"api_key": "test-key", "base_url": fake.base_url, **settings},
        cache=str(tmp_path / "cache"),
    )


def images_seen(fake: Any) -> Counter[str]:
    return Counter(
        hashlib.sha256(data).hexdigest()
        for request in fake.requests_of("generate")
        for _mime, data in request.inline_data
    )


def workers_alive() -> list[int]:
    """The pids of this process's live worker processes (``python -m vlmkit.processes.worker``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if b"vlmkit.processes.worker" not in (entry / "cmdline").read_bytes():
                continue
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == os.getpid():
            pids.append(int(entry.name))
    return pids


def label(
    spec: SessionSpec,
    folder: Path,
    out: Path,
    progress: Any = False,
    runs: list[Any] | None = None,
    **arguments: Any,
):
    """Label ``folder`` with two worker processes; the run goes into ``runs`` before it starts."""
    with spec.session() as session:
        engine = build_engine(session, "processes", {"workers": "2"})
        arguments = {"sinks": ["coco", "yolo"], "concurrency": 4, **arguments}
        run = engine.run(
            session, spec, "detect", [folder], prompt=["cat"], out_dir=out, progress=progress,
            **arguments,
        )  # fmt: skip
        if runs is not None:
            runs.append(run)
        outcomes = list(run)
        return run, outcomes


def test_two_worker_processes_label_every_image_once_into_the_same_files_as_a_local_run(
    fake, tmp_path
):
    folder = make_images(tmp_path / "photos", 30)
    seen_workers: list[int] = []

    def progress(outcome: Any) -> None:
        if not seen_workers:
            seen_workers.append(len(workers_alive()))

    run, outcomes = label(spec_for(fake, tmp_path), folder, tmp_path / "out", progress)
    assert seen_workers == [2]  # answered by two processes, not by this one's threads
    assert run.summary.done == 30 and run.summary.failed == 0, str(run.summary)
    assert len(outcomes) == 30 and {o.path for o in outcomes} == set(folder.glob("*.jpg"))
    assert max(images_seen(fake).values()) == 1 and len(images_seen(fake)) == 30
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 30 and len({json.loads(line)["key"] for line in lines}) == 30
    assert not workers_alive()

    # the same images labelled by the local engine give the same ledger results and sinks
    with spec_for(fake, tmp_path).session() as session:
        list(
            session.run(
                "detect",
                [folder],
                prompt=["cat"],
                out_dir=tmp_path / "local",
                sinks=["coco", "yolo"],
                concurrency=4,
            )
        )
    mine = read_ledger(tmp_path / "out" / "results.jsonl").done
    local = read_ledger(tmp_path / "local" / "results.jsonl").done
    assert set(mine) == set(local)
    for key, record in mine.items():
        assert np.array_equal(record.result.xyxy, local[key].result.xyxy)
        assert record.result.labels == local[key].result.labels
    coco = COCO(str(tmp_path / "out" / "annotations.json"))
    assert len(coco.getImgIds()) == 30 and len(coco.getAnnIds()) == 30
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["cat"]
    yolo = sv.DetectionDataset.from_yolo(
        images_directory_path=str(folder),
        annotations_directory_path=str(tmp_path / "out" / "labels"),
        data_yaml_path=str(tmp_path / "out" / "data.yaml"),
    )
    assert len(yolo) == 30
    assert all(len(detections) == 1 for _path, _image, detections in yolo)
    assert (tmp_path / "out" / "labels" / "img000.txt").read_text() == (
        tmp_path / "local" / "labels" / "img000.txt"
    ).read_text()


def test_ctrl_c_records_what_is_in_flight_and_the_same_call_resumes(fake, tmp_path):
    folder = make_images(tmp_path / "photos", 40)
    fake.latency_s = 0.05
    spec = spec_for(fake, tmp_path)
    count = [0]
    runs: list[Any] = []

    def progress(outcome: Any) -> None:
        count[0] += 1
        if count[0] == 8:
            runs[0]._dispatcher.request_interrupt()  # what a first Ctrl-C does

    with pytest.raises(KeyboardInterrupt):
        label(spec, folder, tmp_path / "out", progress, runs, sinks=["coco"])
    run = runs[0]
    assert run.summary.stopped == "interrupted"
    recorded = read_ledger(tmp_path / "out" / "results.jsonl").done
    # what was in flight when Ctrl-C came was finished and recorded, nothing new was started
    assert 8 <= len(recorded) < 40
    assert sum(images_seen(fake).values()) == len(recorded)
    assert not (tmp_path / "out" / "annotations.json").exists()  # no sinks from a stopped run
    assert not workers_alive()

    again, _outcomes = label(spec, folder, tmp_path / "out")
    assert again.summary.resumed == len(recorded)
    assert again.summary.done == 40 - len(recorded)
    ledger = read_ledger(tmp_path / "out" / "results.jsonl")
    assert len(ledger.done) == 40 and len(list(ledger)) == 40
    assert max(images_seen(fake).values()) == 1  # nothing asked twice
    assert len(COCO(str(tmp_path / "out" / "annotations.json")).getImgIds()) == 40


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="kills a worker with SIGKILL")
def test_a_killed_worker_stops_the_run_keeping_what_was_recorded_and_a_rerun_finishes(
    fake, tmp_path
):
    folder = make_images(tmp_path / "photos", 40)
    fake.latency_s = 0.05
    spec = spec_for(fake, tmp_path)
    killed: list[int] = []

    def progress(outcome: Any) -> None:
        if not killed:
            victim = workers_alive()[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    with pytest.raises(VlmkitError, match="a worker process died") as caught:
        label(spec, folder, tmp_path / "out", progress)
    assert f"pid {killed[0]}, exit code -9" in str(caught.value)
    assert not workers_alive()  # the other worker was stopped, not left running
    recorded = read_ledger(tmp_path / "out" / "results.jsonl").done
    assert 1 <= len(recorded) < 40

    again, _outcomes = label(spec, folder, tmp_path / "out")
    assert again.summary.done + again.summary.resumed == 40
    assert len(read_ledger(tmp_path / "out" / "results.jsonl").done) == 40
    # the dead worker's answers that reached the cache cost nothing the second time; at most
    # what it had in flight (its 2 threads) was asked twice
    seen = images_seen(fake)
    assert len(seen) == 40 and sum(seen.values()) <= 40 + 2
    assert len(COCO(str(tmp_path / "out" / "annotations.json")).getImgIds()) == 40


def test_bad_credentials_in_a_worker_stop_the_run_with_the_same_error(fake, tmp_path):
    folder = make_images(tmp_path / "photos", 6)
    fake.add_rule(
        status=403, error_status="PERMISSION_DENIED", message="API key not valid", first=True
    )
    with pytest.raises(AuthError):
        label(spec_for(fake, tmp_path), folder, tmp_path / "out")
    assert not workers_alive()
    assert not read_ledger(tmp_path / "out" / "results.jsonl").done  # no item failed for it


def test_the_budget_is_split_between_the_workers_and_never_passed(fake, tmp_path, monkeypatch):
    from vlmkit.processes.pool import Collector, WorkerProcess

    events: list[str] = []
    give, stop_all = WorkerProcess.give, Collector.stop_all

    def given(self, message):
        events.append(type(message).__name__)
        return give(self, message)

    def stopped(self):
        events.append("stop")
        return stop_all(self)

    monkeypatch.setattr(WorkerProcess, "give", given)
    monkeypatch.setattr(Collector, "stop_all", stopped)
    folder = make_images(tmp_path / "photos", 40)
    fake.clear_rules()  # every answer costs about $0.01 (4000 output tokens)
    fake.add_rule(text=ANSWER, usage={"candidates_token_count": 4000})
    run, _outcomes = label(spec_for(fake, tmp_path), folder, tmp_path / "out", budget_usd=0.1)
    assert run.summary.stopped == "budget"
    assert run.summary.cost_usd <= 0.1
    sent = len(fake.requests_of("generate"))
    assert 1 <= sent <= 9 and run.summary.done == sent  # $0.1 pays for 9 such answers at most
    assert len(read_ledger(tmp_path / "out" / "results.jsonl")) == sent  # the rest stays to do
    assert "stop" in events  # once a worker reached its share, nothing more was handed out
    assert all(event == "stop" for event in events[events.index("stop") :]), events


def test_vlmkit_label_with_engine_processes(fake, tmp_path):
    from typer.testing import CliRunner

    from vlmkit.cli import app

    folder = make_images(tmp_path / "photos", 12)
    command = [
        "label", str(folder), "--task", "detect", "--prompt", "cat", "--backend", "gemini-api",
        "--model", MODEL, "--config", f"base_url={fake.base_url}",
        "--config", "api_key=test-key-cli", "--out", str(tmp_path / "out"), "--sink", "coco",
        "--no-progress", "--no-cache", "--engine", "processes", "--engine-option", "workers=2",
    ]  # fmt: skip
    done = CliRunner().invoke(app, command)
    assert done.exit_code == 0, done.output
    assert "done 12, failed 0" in done.output
    assert "test-key-cli" not in done.output
    assert len(json.loads((tmp_path / "out" / "annotations.json").read_text())["images"]) == 12
    again = CliRunner().invoke(app, command)
    assert "resumed 12" in again.output
    assert len(fake.requests_of("generate")) == 12  # the re-run sent nothing
    wrong = CliRunner().invoke(app, [*command[:-1], "workers=0"])
    assert wrong.exit_code != 0 and "workers" in wrong.output


def test_records_appended_together_are_flushed_once_and_written_as_given(tmp_path, monkeypatch):
    import vlmkit.ledger as ledger_module
    from vlmkit.ledger import Ledger, LedgerRecord

    flushes: list[int] = []
    real_fsync = ledger_module.os.fsync
    monkeypatch.setattr(ledger_module.os, "fsync", lambda fd: (flushes.append(fd), real_fsync(fd)))
    records = [
        LedgerRecord(key=f"k{i}", status="failed", error="no", error_type="ParseError")
        for i in range(5)
    ]
    with Ledger(tmp_path / "results.jsonl") as ledger:
        for record in records:
            ledger.append(record, line=record.to_line(), sync=False)
        assert flushes == []
        ledger.sync()
        assert len(flushes) == 1  # one flush makes the five lines durable
    lines = (tmp_path / "results.jsonl").read_bytes().splitlines(keepends=True)
    assert lines == [record.to_line() for record in records]
    assert list(read_ledger(tmp_path / "results.jsonl").failed) == [f"k{i}" for i in range(5)]


SCRIPT = """
import os, sys
from pathlib import Path
from vlmkit.engines import SessionSpec, build_engine

# no `if __name__ == "__main__":` guard: the workers must not run this script again
base_url, folder, out, signal_file = sys.argv[1:5]
spec = SessionSpec(backend="gemini-api", model="gemini-3.5-flash-lite", cache=False,
                   settings={"api_key": "test-key", "base_url": base_url})
seen = [0]

def progress(outcome):
    seen[0] += 1
    if seen[0] == 5:
        Path(signal_file).write_text("5")

with spec.session() as session:
    engine = build_engine(session, "processes", {"workers": 2})
    run = engine.run(session, spec, "detect", [folder], prompt="cat", out_dir=out,
                     concurrency=2, progress=progress)
    for _ in run:
        pass
print("done", run.summary.done, "resumed", run.summary.resumed)
"""


def processes_marked(mark: str) -> list[int]:
    """Live processes whose environment carries ``mark`` (a run and its workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark.encode() in (entry / "environ").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow  # several interpreters: the CLI and its workers, twice
def test_a_script_without_a_main_guard_works_and_a_killed_parent_leaves_no_worker_behind(
    fake, tmp_path
):
    import subprocess
    import sys
    import time
    import uuid

    folder = make_images(tmp_path / "photos", 40)
    fake.latency_s = 0.1
    script = tmp_path / "label.py"
    script.write_text(SCRIPT)
    mark = f"VLMKIT_TEST_RUN={uuid.uuid4().hex}"
    env = {**os.environ, mark.split("=")[0]: mark.split("=")[1]}
    arguments = [sys.executable, str(script), fake.base_url, str(folder), str(tmp_path / "out")]
    signal_file = tmp_path / "five-done"
    parent = subprocess.Popen([*arguments, str(signal_file)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not signal_file.exists() and parent.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert signal_file.exists(), f"the run did not get going (exit code {parent.poll()})"
        assert len(processes_marked(mark)) == 3  # the parent and its two workers, no more
        parent.kill()  # SIGKILL: no cleanup runs in the parent
        parent.wait()
        deadline = time.monotonic() + 30
        while processes_marked(mark) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_marked(mark) == []  # the workers saw their pipe end and exited
    finally:
        parent.kill()
    recorded = len(read_ledger(tmp_path / "out" / "results.jsonl").done)
    assert 5 <= recorded < 40

    again = subprocess.run(
        [*arguments, str(tmp_path / "unused")], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.split() == ["done", str(40 - recorded), "resumed", str(recorded)]
    assert len(read_ledger(tmp_path / "out" / "results.jsonl").done) == 40


def test_the_workers_do_not_repeat_the_warnings_of_building_the_session(fake, tmp_path, capfd):
    from typer.testing import CliRunner

    from vlmkit.cli import app

    folder = make_images(tmp_path / "photos", 4)
    command = [
        "label", str(folder), "--task", "detect", "--prompt", "cat", "--backend", "gemini-api",
        "--model", "gemini-2.5-flash", "--config", f"base_url={fake.base_url}",
        "--config", "api_key=test-key", "--out", str(tmp_path / "out"), "--no-progress",
        "--no-cache", "--engine", "processes", "--engine-option", "workers=2",
    ]  # fmt: skip
    with pytest.warns(UserWarning, match="gemini-2.5-flash was shut down"):  # the parent's
        done = CliRunner().invoke(app, command)
    assert done.exit_code == 0, done.output
    said = done.output + capfd.readouterr().err
    assert "was shut down" not in said  # not once more per worker process


def test_an_error_from_another_process_is_raised_here_as_the_same_kind():
    from vlmkit.errors import ParseError, RateLimited, error_named

    assert type(error_named("AuthError", "bad key")) is AuthError
    assert str(error_named("AuthError", "bad key")) == "bad key"
    assert type(error_named("RateLimited", "slow down")) is RateLimited
    assert type(error_named("ParseError", "no JSON")) is ParseError
    for name in ("KeyError", "os", "error_named", ""):  # not a vlmkit error class
        assert type(error_named(name, "it failed")) is VlmkitError


@pytest.mark.slow  # several interpreters: the CLI and its workers, twice
def test_a_real_ctrl_c_to_the_terminals_group_records_what_was_sent_and_stops_the_workers(
    fake, tmp_path
):
    import subprocess
    import sys
    import time
    import uuid

    folder = make_images(tmp_path / "photos", 40)
    fake.latency_s = 0.1
    out = tmp_path / "out"
    mark = uuid.uuid4().hex
    env = {**os.environ, "VLMKIT_TEST_RUN": mark}
    command = [
        sys.executable, "-m", "vlmkit.cli", "label", str(folder), "--task", "detect",
        "--prompt", "cat", "--backend", "gemini-api", "--model", MODEL,
        "--config", f"base_url={fake.base_url}", "--config", "api_key=test-key",
        "--out", str(out), "--sink", "coco", "--no-progress", "--no-cache",
        "--concurrency", "2", "--engine", "processes", "--engine-option", "workers=2",
    ]  # fmt: skip
    # its own process group, as a terminal's foreground job: Ctrl-C goes to the whole group
    proc = subprocess.Popen(
        command, env=env, start_new_session=True, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        ledger = out / "results.jsonl"
        while time.monotonic() < deadline and proc.poll() is None:
            if ledger.exists() and len(ledger.read_text().splitlines()) >= 5:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    done = read_ledger(out / "results.jsonl").done
    assert 5 <= len(done) < 40
    assert len(fake.requests_of("generate")) == len(done)  # everything sent was recorded
    assert processes_marked(f"VLMKIT_TEST_RUN={mark}") == []  # no worker left running
    left = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert left == [".vlmkit.lock", "results.jsonl", "run.json"], left
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert len(read_ledger(out / "results.jsonl").done) == 40
    assert len(fake.requests_of("generate")) == 40  # nothing sent twice
    assert len(COCO(str(out / "annotations.json")).getImgIds()) == 40


def test_a_plugin_file_reaches_the_workers_on_this_machine(tmp_path, capfd):
    from typer.testing import CliRunner

    from vlmkit.cli import app

    plugin = Path(__file__).parents[1] / "cli" / "scripted_backends.py"
    folder = make_images(tmp_path / "photos", 6)
    command = [
        "--plugin", str(plugin), "label", str(folder), "--task", "detect", "--prompt", "cat",
        "--backend", "scripted", "--out", str(tmp_path / "out"), "--sink", "coco",
        "--no-progress", "--no-cache", "--engine", "processes", "--engine-option", "workers=2",
    ]  # fmt: skip
    done = CliRunner().invoke(app, command)
    assert done.exit_code == 0, done.output + capfd.readouterr().err
    assert "done 6, failed 0" in done.output
    assert "workers lack them" not in done.output
    coco = COCO(str(tmp_path / "out" / "annotations.json"))
    assert len(coco.getImgIds()) == 6 and len(coco.getAnnIds()) == 6


def test_a_full_disk_stops_the_run_with_a_clear_error_keeping_what_was_recorded(
    fake, tmp_path, monkeypatch
):
    import errno

    from vlmkit.ledger import Ledger

    folder = make_images(tmp_path / "photos", 30)
    fake.latency_s = 0.05
    real_append = Ledger.append
    count = [0]

    def append(self, record, **kwargs):
        count[0] += 1
        if count[0] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_append(self, record, **kwargs)

    monkeypatch.setattr(Ledger, "append", append)
    with pytest.raises(VlmkitError, match=r"could not write the run's ledger .*No space left"):
        label(spec_for(fake, tmp_path), folder, tmp_path / "out")
    assert not workers_alive()
    assert len(read_ledger(tmp_path / "out" / "results.jsonl").done) == 5
    monkeypatch.setattr(Ledger, "append", real_append)
    again, _outcomes = label(spec_for(fake, tmp_path), folder, tmp_path / "out")
    assert again.summary.resumed == 5 and again.summary.done == 25
    # what the workers had answered but could not be recorded came from the cache
    assert len(images_seen(fake)) == 30 and max(images_seen(fake).values()) == 1


def test_every_worker_starts_before_any_is_sent_its_items(fake, tmp_path, monkeypatch):
    """A shard larger than a pipe's buffer blocks its send until the worker has started up
    and reads it: sending one before starting the next would start the workers one by one."""
    from vlmkit.processes.pool import WorkerProcess
    from vlmkit.processes.worker import Shard

    steps: list[str] = []
    start, give = WorkerProcess.start.__func__, WorkerProcess.give

    def started(cls, index):
        steps.append(f"start {index}")
        return start(cls, index)

    def given(self, message):
        if isinstance(message, Shard):
            steps.append(f"give {message.index} ({len(message.items)} items)")
        else:  # what it is sent when it asks for more
            steps.append(f"{message} to {self.index}")
        return give(self, message)

    monkeypatch.setattr(WorkerProcess, "start", classmethod(started))
    monkeypatch.setattr(WorkerProcess, "give", given)
    folder = make_images(tmp_path / "photos", 8)
    run, _outcomes = label(spec_for(fake, tmp_path), folder, tmp_path / "out")
    assert run.summary.done == 8
    assert steps[:4] == ["start 0", "start 1", "give 0 (4 items)", "give 1 (4 items)"]
    assert sorted(steps[4:]) == ["done to 0", "done to 1"]  # both asked for more: none left


@pytest.mark.slow  # each worker imports torch and transformers and loads the checkpoint
def test_a_local_model_in_worker_processes_batches_and_gives_the_local_runs_results(tmp_path):
    gemma = pytest.importorskip("vlmkit_gemma.testing", reason="builds a tiny Gemma checkpoint")
    answer = '[{"box_2d": [100, 200, 500, 600], "label": "cat"}]'
    checkpoint = gemma.build_tiny_gemma4(tmp_path / "tiny", script=answer)
    folder = make_images(tmp_path / "photos", 6)
    spec = SessionSpec(
        backend="gemma-local", model=str(checkpoint), settings={"device": "cpu"}, cache=None
    )
    run, _outcomes = label(spec, folder, tmp_path / "out", batch_size=2, concurrency=4)
    assert run.summary.done == 6 and run.summary.failed == 0, str(run.summary)
    with spec.session() as session:
        session.set_batch_size(2)
        list(session.run("detect", [folder], prompt=["cat"], out_dir=tmp_path / "local"))
    mine = read_ledger(tmp_path / "out" / "results.jsonl").done
    local = read_ledger(tmp_path / "local" / "results.jsonl").done
    assert set(mine) == set(local) and len(mine) == 6
    for key, record in mine.items():
        assert np.array_equal(record.result.xyxy, local[key].result.xyxy)
        assert record.result.labels == local[key].result.labels == ("cat",)


def test_workers_blocked_sending_to_a_stopped_run_exit_on_their_own(fake, tmp_path, monkeypatch):
    """A run that stops (here a full disk) stops reading: a worker whose pipe is full (more
    than 64 KiB of records unread) gets a broken pipe and exits, rather than hanging until
    the parent kills it."""
    import errno

    from vlmkit.ledger import Ledger
    from vlmkit.processes.pool import WorkerProcess

    folder = make_images(tmp_path / "photos", 200)
    fake.latency_s = 0.3  # 64 requests in flight per worker when the run stops: their records
    count = [0]  # (~1.3 KB each) are more than a pipe holds
    real_append, real_finish = Ledger.append, WorkerProcess.finish
    exits: list[int | None] = []

    def append(self, record, **kwargs):
        count[0] += 1
        if count[0] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_append(self, record, **kwargs)

    def finish(self, timeout=30.0):
        real_finish(self, timeout)
        exits.append(self.process.returncode)

    monkeypatch.setattr(Ledger, "append", append)
    monkeypatch.setattr(WorkerProcess, "finish", finish)
    with pytest.raises(VlmkitError, match="could not write the run's ledger"):
        label(spec_for(fake, tmp_path), folder, tmp_path / "out", concurrency=128)
    assert exits == [0, 0]  # neither was killed (-9)
    assert not workers_alive()


def test_a_worker_held_up_by_a_slow_item_leaves_the_rest_to_the_other(fake, tmp_path, monkeypatch):
    """The workers pull their items in chunks as they need them: while one waits on a slow
    answer, the other takes the items that would otherwise queue behind it (dealt up front,
    each would get half of them)."""
    import io

    from PIL import Image

    from vlmkit.processes.pool import WorkerProcess

    folder = make_images(tmp_path / "photos", 24)
    Image.new("RGB", (56, 40), "orange").save(folder / "img000.jpg")  # the slow one

    def slow(request: Any) -> bool:
        sizes = [Image.open(io.BytesIO(data)).size for _mime, data in request.inline_data]
        return (56, 40) in sizes

    fake.add_rule(match=slow, text=ANSWER, delay_s=3.0, first=True)
    handed: dict[int, list[str]] = {}
    start = WorkerProcess.start.__func__

    class Down:  # this side of a worker's pipe: notes the items in what is sent on it
        def __init__(self, index: int, down: Any) -> None:
            self.index, self.down = index, down

        def send(self, message: Any) -> None:
            paths = [Path(path).name for _key, path in getattr(message, "items", ())]
            handed.setdefault(self.index, []).extend(paths)
            self.down.send(message)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.down, name)

    def started(cls, index):
        worker = start(cls, index)
        worker.down = Down(index, worker.down)
        return worker

    monkeypatch.setattr(WorkerProcess, "start", classmethod(started))
    run, _outcomes = label(spec_for(fake, tmp_path), folder, tmp_path / "out", concurrency=2)
    assert run.summary.done == 24 and run.summary.failed == 0, str(run.summary)
    assert sorted(name for names in handed.values() for name in names) == sorted(
        path.name for path in folder.glob("*.jpg")
    )  # every image handed out once
    held_up = next(index for index, names in handed.items() if "img000.jpg" in names)
    other = 1 - held_up
    # the worker stuck on the slow answer got fewer than its even half; the other took the rest
    assert len(handed[held_up]) < 12 < len(handed[other]), handed
    assert max(images_seen(fake).values()) == 1 and len(images_seen(fake)) == 24
    assert not workers_alive()


def test_a_worker_asks_for_more_once_fewer_than_its_threads_wait_and_stops_waiting_when_told():
    import threading

    from vlmkit.inputs import InputItem
    from vlmkit.processes.backlog import Backlog

    items = [InputItem(key=f"k{i}", path=Path(f"img{i}.jpg")) for i in range(5)]
    asks: list[int] = []
    stop = threading.Event()
    backlog = Backlog(items[:3], threads=2, ask=lambda: asks.append(1), stop=stop)
    assert next(backlog) == items[0] and asks == []  # two wait: as many as its threads
    assert next(backlog) == items[1] and asks == [1]  # one waits: it asks
    assert next(backlog) == items[2] and asks == [1]  # once, until the answer comes
    backlog.add(items[3:4])
    assert next(backlog) == items[3] and asks == [1, 1]

    taken: list[Any] = []
    waiting = threading.Thread(target=lambda: taken.append(next(backlog, "stopped")))
    waiting.start()  # an empty backlog: the thread waits for the next chunk ...
    backlog.add(items[4:])
    waiting.join(30)
    assert taken == [items[4]]  # ... and takes it when it comes
    waiting = threading.Thread(target=lambda: taken.append(next(backlog, "stopped")))
    waiting.start()
    stop.set()  # the worker is told to start nothing new: the waiting thread stops
    waiting.join(30)
    assert taken == [items[4], "stopped"]
    backlog.add(items[:1])  # a chunk that crossed the stop is not started
    assert next(backlog, "stopped") == "stopped"
    closed = Backlog(items[:1], threads=1, ask=lambda: None, stop=threading.Event())
    closed.close()  # "done": what it holds is still taken, then it ends
    assert list(closed) == items[:1]


def test_the_dealer_hands_out_even_first_chunks_then_a_threads_worth_until_none_is_left():
    from vlmkit.inputs import InputItem
    from vlmkit.processes.deal import Dealer

    pending = [InputItem(key=f"k{i}", path=Path(f"img{i}.jpg")) for i in range(15)]
    dealer = Dealer(pending, {"k0": 2, "k9": 1}, {"k9": "[]"}, workers=2, threads=3)
    first = [dealer.first(), dealer.first()]
    assert [len(chunk.items) for chunk in first] == [6, 6]  # twice the threads each
    assert first[0].items[0] == ("k0", "img0.jpg") and first[0].attempts == {"k0": 2}
    assert first[1].attempts == {"k9": 1} and first[1].replays == {"k9": "[]"}
    more = [dealer.more() for _ in range(3)]
    assert [len(chunk.items) for chunk in more if chunk] == [2, 1]  # near the end: even shares
    assert more[2] is None and dealer.left == 0
    assert more[0].attempts == {} and more[0].replays == {}
    assert [key for chunk in first + more[:2] for key, _path in chunk.items] == [
        item.key for item in pending
    ]  # each once, in order
    assert Dealer(pending[:3], {}, {}, workers=2, threads=8).first().items[-1][0] == "k1"
