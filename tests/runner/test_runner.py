"""The batch runner: resumable, nothing lost, one bad item never stops a run."""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

import vlmkit
from vlmkit import FinishReason, Generation
from vlmkit.ledger import read_ledger
from vlmkit.testing import scripted_plugin

CAT = '[{"box_2d": [100, 200, 500, 600], "label": "cat"}]'
DRIVER = Path(__file__).with_name("driver.py")
ROOT = Path(__file__).resolve().parents[2]


def make_images(folder: Path, count: int, *, subfolders: bool = True) -> list[Path]:
    paths = []
    for i in range(count):
        sub = folder / (f"part{i % 3}" if subfolders else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img{i:03d}.png"
        Image.fromarray(np.full((40 + i % 7, 60, 3), i % 255, np.uint8)).save(path)
        paths.append(path)
    return paths


def session(script=CAT, **kwargs):
    return vlmkit.Session(
        "scripted", plugins=[scripted_plugin(script, **kwargs)], entrypoints=["vlmkit"]
    )


def test_a_folder_with_bad_files_finishes_and_reports_them(tmp_path):
    images = tmp_path / "images"
    make_images(images, 5)
    (images / "notes.txt").write_text("not an image")
    (images / "part0" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (images / "part1" / "empty.png").write_bytes(b"")
    with session() as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "out", sinks=["coco"])
        outcomes = {o.key: o for o in run}
    assert run.summary.done == 5 and run.summary.failed == 2 and run.summary.skipped == 1
    assert outcomes[str(images / "notes.txt")].status == "skipped"
    assert outcomes["part0/broken.jpg"].status == "failed"
    assert outcomes["part0/broken.jpg"].error_type == "MediaError"
    state = read_ledger(tmp_path / "out" / "results.jsonl")
    assert set(state.failed) == {"part0/broken.jpg", "part1/empty.png"}
    assert "MediaError 2" in str(run.summary)
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert len(coco["images"]) == 5


def test_rerun_resumes_without_calling_the_model_again(tmp_path):
    images = tmp_path / "images"
    make_images(images, 6)
    with session() as s:
        first = s.run("detect", [images], "cat", out_dir=tmp_path / "out")
        list(first)
        calls = len(s.backend.requests)
        second = s.run("detect", [images], "cat", out_dir=tmp_path / "out")
        assert list(second) == []
        assert len(s.backend.requests) == calls == 6
    assert second.summary.resumed == 6 and second.summary.done == 0


def _busy(seconds):
    """Keep this thread on the CPU for ``seconds`` of process time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_the_summary_counts_the_cpu_its_process_spent_against_the_wall_time(tmp_path):
    """A run whose answers cost CPU in this process shows it (about one core's worth); one
    whose answers only wait does not: ``vlmkit label`` says which one set the pace."""
    images = tmp_path / "images"
    make_images(images, 6)

    def busy(request):
        _busy(0.05)
        return CAT

    def waiting(request):
        time.sleep(0.05)
        return CAT

    with session(busy) as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "busy", concurrency=2)
        list(run)
    assert run.summary.cpu_s >= 6 * 0.05 and run.summary.cpu_share > 0.5, run.summary
    assert run.summary.to_dict()["cpu_s"] == run.summary.cpu_s
    assert f"CPU {run.summary.cpu_s:.2f} s" in str(run.summary)
    with session(waiting) as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "waiting", concurrency=1)
        list(run)
    assert run.summary.wall_s >= 6 * 0.05 and run.summary.cpu_share < 0.5, run.summary


def test_retry_failed_retries_only_the_failures(tmp_path):
    images = tmp_path / "images"
    make_images(images, 6, subfolders=False)
    blocked = Generation(text=None, finish=FinishReason.SAFETY)
    flaky = {"n": 0}

    def answer(request):
        flaky["n"] += 1
        # the first run blocks two images; later calls answer normally
        if flaky["n"] in (2, 4):
            return blocked
        return CAT

    with session(answer) as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "out", concurrency=1)
        list(run)
        assert run.summary.failed == 2
        failed = set(read_ledger(tmp_path / "out" / "results.jsonl").failed)
        s.backend.requests.clear()
        plain = s.run("detect", [images], "cat", out_dir=tmp_path / "out")
        assert list(plain) == [] and s.backend.requests == []  # failures count as finished
        retry = s.run("detect", [images], "cat", out_dir=tmp_path / "out", retry_failed=True)
        retried = {o.key for o in retry}
    assert retried == failed
    assert len(s.backend.requests) == 2
    state = read_ledger(tmp_path / "out" / "results.jsonl")
    assert len(state.done) == 6 and not state.failed
    assert all(record.attempt == 2 for key, record in state.done.items() if key in failed)


def test_outcomes_are_recorded_with_their_reason(tmp_path):
    images = tmp_path / "images"
    make_images(images, 3, subfolders=False)
    script = [
        Generation(text=None, finish=FinishReason.SAFETY),
        Generation(text=CAT[:-1] + ', {"box', finish=FinishReason.MAX_TOKENS),
        vlmkit.RateLimited("quota exhausted after 5 attempts", retry_after=1),
    ]
    with session(script) as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "out", concurrency=1)
        reasons = {o.key: (o.error_type, o.error) for o in run}
    assert reasons["img000.png"] == ("Blocked", "blocked by the provider (safety)")
    assert "cut off by the token limit (kept 1" in reasons["img001.png"][1]
    assert reasons["img002.png"][0] == "RateLimited"
    record = read_ledger(tmp_path / "out" / "results.jsonl").failed["img001.png"]
    assert record.result is not None and len(record.result) == 1  # partial result kept


def test_the_sinks_of_a_resumed_run_equal_a_later_export(tmp_path):
    """A run exports from the ledger state it kept up to date; the files must be exactly what
    ``vlmkit export`` writes from the ledger file (first-seen order, retried items in place)."""
    from vlmkit.export import export

    images = tmp_path / "images"
    paths = make_images(images, 12)
    flaky = {paths[2].name, paths[7].name}

    def script(request):
        name = Path(request.images[0].original.source).name
        if name in flaky:
            raise vlmkit.TransientError("503 overloaded")
        return CAT

    out = tmp_path / "out"
    with session(script) as s:
        first = s.run("detect", [images], "cat", out_dir=out, sinks=["coco", "yolo"])
        assert sum(o.status == "failed" for o in first) == 2
    flaky.clear()
    with session() as s:
        again = s.run(
            "detect", [images], "cat", out_dir=out, sinks=["coco", "yolo"], retry_failed=True
        )
        assert [o.status for o in again] == ["done", "done"]
        files = again.summary.sink_files["yolo"]
        assert isinstance(files, vlmkit.FileList)  # held as text, each folder once
        assert again.summary.to_dict()["sink_files"]["yolo"] == [str(p) for p in files]
        assert len(set(files)) == len(files)  # each once, found in place or committed
        written = {p: p.read_bytes() for p in files}
        coco = (out / "annotations.json").read_bytes()
        export(
            out / "results.jsonl", ["coco", "yolo"], tmp_path / "re", resolve=s.sinks().__getitem__
        )
    assert (tmp_path / "re" / "annotations.json").read_bytes() == coco
    assert len(json.loads(coco)["images"]) == 12
    for path, data in written.items():
        if path.suffix in (".txt", ".yaml"):
            relative = path.relative_to(out)
            assert (tmp_path / "re" / relative).read_bytes().replace(
                str(tmp_path / "re").encode(), str(out).encode()
            ) == data


def test_a_sink_failing_during_the_run_is_written_at_the_end(tmp_path, monkeypatch, caplog):
    """Sinks are fed while the run goes on; a write failing then (a full disk for a moment)
    stops only the feed: the run finishes and the sinks are exported whole at the end."""
    import vlmkit.atomic

    images = tmp_path / "images"
    make_images(images, 10, subfolders=False)
    real = vlmkit.atomic.Staging.place  # YOLO places each image while the run goes on
    calls = [0]

    def flaky(self, path, source, *, link):
        calls[0] += 1
        if calls[0] == 3:
            raise OSError(28, "No space left on device")
        return real(self, path, source, link=link)

    monkeypatch.setattr(vlmkit.atomic.Staging, "place", flaky)
    out = tmp_path / "out"
    with session(latency_s=0.01) as s, caplog.at_level("WARNING"):
        run = s.run("detect", [images], "cat", out_dir=out, sinks=["coco", "yolo"])
        assert [o.status for o in run] == ["done"] * 10
    assert "written at the end instead" in caplog.text
    assert len(json.loads((out / "annotations.json").read_text())["images"]) == 10
    labels = sorted(p.name for p in (out / "labels").iterdir())
    assert labels == [f"img{i:03d}.txt" for i in range(10)]  # no temporary file left over
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        f"img{i:03d}.png" for i in range(10)
    ]


class _CountingSink(vlmkit.Sink):
    """A third-party sink that is not two-phase: it writes when it is closed."""

    accepts = frozenset({"detect"})
    built: ClassVar[list[_CountingSink]] = []

    def __init__(self, out_dir, **options):
        super().__init__(out_dir, **options)
        self.keys: list[str] = []
        self.closed = 0
        _CountingSink.built.append(self)

    def write(self, item):
        self.keys.append(item.key)

    def close(self):
        self.closed += 1
        path = self.out_dir / "keys.txt"
        path.write_text("\n".join(self.keys))
        return [path]


class _CountingPlugin:
    @vlmkit.hookimpl
    def vlmkit_sinks(self):
        yield vlmkit.SinkInfo(name="counting", factory=_CountingSink, accepts={"detect"})


def test_a_sink_that_is_not_two_phase_is_built_once_and_written_at_the_end(tmp_path):
    images = tmp_path / "images"
    make_images(images, 6, subfolders=False)
    _CountingSink.built.clear()
    plugins = [scripted_plugin(CAT), _CountingPlugin()]
    with vlmkit.Session("scripted", plugins=plugins, entrypoints=["vlmkit"]) as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "out", sinks=["counting", "coco"])
        assert len(_CountingSink.built) == 1  # built with the run: its options are checked
        assert len(list(run)) == 6
    [sink] = _CountingSink.built
    assert sink.closed == 1 and sorted(sink.keys) == [f"img{i:03d}.png" for i in range(6)]
    assert (tmp_path / "out" / "keys.txt").read_text().count("\n") == 5
    assert len(json.loads((tmp_path / "out" / "annotations.json").read_text())["images"]) == 6


def test_stopping_early_while_retrying_still_commits_the_fed_sinks(tmp_path, caplog):
    """Items still in flight when the caller stops are recorded after the last pump: the feed
    must take them in before it gives up waiting for the retried keys."""
    from vlmkit.export import export

    images = tmp_path / "images"
    paths = make_images(images, 12, subfolders=False)
    flaky = {p.name for p in paths[::2]}

    def script(request):
        if Path(request.images[0].original.source).name in flaky:
            raise vlmkit.TransientError("503 overloaded")
        return CAT

    out = tmp_path / "out"
    with session(script) as s:
        list(s.run("detect", [images], "cat", out_dir=out, sinks=["coco"]))
    flaky.clear()
    with session(latency_s=0.05) as s, caplog.at_level("WARNING"):
        run = s.run(
            "detect", [images], "cat", out_dir=out, sinks=["coco"], retry_failed=True,
            concurrency=4,
        )  # fmt: skip
        for _ in run:
            break
        export(out / "results.jsonl", ["coco"], tmp_path / "re", resolve=s.sinks().__getitem__)
    assert "written at the end instead" not in caplog.text
    assert (out / "annotations.json").read_bytes() == (
        tmp_path / "re" / "annotations.json"
    ).read_bytes()


def test_batch_size_override_batches_a_local_backend(tmp_path):
    images = tmp_path / "images"
    make_images(images, 16, subfolders=False)
    with session(latency_s=0.01) as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "out", batch_size=4)
        list(run)
        assert s.backend.batch_size == 4 and max(s.backend.batches) > 1
    assert run.summary.done == 16


def test_progress_callback_and_iteration_order(tmp_path):
    images = tmp_path / "images"
    make_images(images, 4, subfolders=False)
    seen = []
    with session() as s:
        run = s.run(
            "describe", [images / "*.png"], "what?", out_dir=tmp_path / "out", progress=seen.append
        )
        keys = [o.key for o in run]
    assert sorted(keys) == [f"img00{i}.png" for i in range(4)]
    assert [o.key for o in seen] == keys


def test_stopping_iteration_early_records_what_was_paid_for(tmp_path):
    images = tmp_path / "images"
    make_images(images, 12, subfolders=False)
    with session(latency_s=0.05) as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "out", concurrency=4)
        for _ in run:
            break  # the caller stops after the first result
        run_calls = len(s.backend.requests)
    recorded = read_ledger(tmp_path / "out" / "results.jsonl")
    assert len(recorded.done) == run_calls  # every call made was recorded
    assert not recorded.failed  # workers still waiting for a slot sent nothing, recorded nothing
    assert run_calls < 12


class _NativeDetect:
    """A plugin answering detect itself, without the runtime's generate (a native route)."""

    def __init__(self, work):
        self.work = work

    @vlmkit.hookimpl
    def vlmkit_detect(self, backend, request, runtime):
        self.work(request)
        return vlmkit.parse(CAT, image_size=request.images[0].size)


@pytest.mark.parametrize("route", ["generic", "native"])
def test_more_workers_than_requests_in_flight_never_exceed_the_concurrency(tmp_path, route):
    """The runner keeps spare workers busy with answers and the next images, but at most
    ``concurrency`` requests are ever out at once, whichever route a task takes."""
    import threading

    images = tmp_path / "images"
    make_images(images, 24, subfolders=False)
    lock = threading.Lock()
    now, peak, workers_seen = [0], [0], [0]

    def work(request):
        alive = sum(t.name.startswith("vlmkit-run-") for t in threading.enumerate())
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
            workers_seen[0] = max(workers_seen[0], alive)
        time.sleep(0.02)
        with lock:
            now[0] -= 1
        return CAT

    plugins = [scripted_plugin(work if route == "generic" else CAT)]
    if route == "native":
        plugins.append(_NativeDetect(work))
    with vlmkit.Session("scripted", plugins=plugins, entrypoints=["vlmkit"]) as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "out", concurrency=3)
        assert [o.status for o in run] == ["done"] * 24
        workers = {t.name for t in threading.enumerate() if t.name.startswith("vlmkit-run-")}
    assert peak[0] == 3 and workers_seen[0] == 6  # twice the workers, never more requests
    assert not workers  # all joined


def _driver(images, out, calls, *extra):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ["PYTHONPATH"]])}
    return subprocess.Popen(
        [sys.executable, str(DRIVER), str(images), str(out), str(calls), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_lines(path: Path, count: int, proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        if proc.poll() is not None:
            return
        time.sleep(0.005)
    raise AssertionError("the run did not make progress")


@pytest.mark.parametrize(
    "seed", [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)]
)
def test_sigkill_at_a_random_point_then_resume_yields_every_input_exactly_once(tmp_path, seed):
    images = tmp_path / "images"
    paths = make_images(images, 30)
    out, calls = tmp_path / "out", tmp_path / "calls.log"
    ledger = out / "results.jsonl"
    proc = _driver(images, out, calls, "0.02", "coco,yolo")
    _wait_for_lines(ledger, random.Random(seed).randint(1, 25), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = read_ledger(ledger)
    recorded_first = set(before.done)
    calls_first = calls.read_text().splitlines()

    resumed = _driver(images, out, calls, "0.001", "coco,yolo")
    _, stderr = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, stderr
    state = read_ledger(ledger)
    keys = {p.relative_to(images).as_posix() for p in paths}
    assert set(state.done) == keys and not state.failed
    # raw lines: every input recorded exactly once (a torn line from the kill is not a record)
    counts = collections.Counter(
        json.loads(line)["key"] for line in ledger.read_text().splitlines() if _is_json(line)
    )
    assert set(counts.values()) == {1}
    # nothing recorded in the first run was sent to the model again
    hashes = {vlmkit.media.load_image(images / key).sha256: key for key in recorded_first}
    calls_second = calls.read_text().splitlines()[len(calls_first) :]
    assert not set(calls_second) & set(hashes)
    # what is sent twice is at most what was out when the kill came: the driver's concurrency
    assert len(set(calls_first) & set(calls_second)) <= 4
    # the sinks hold every input exactly once
    coco = json.loads((out / "annotations.json").read_text())
    assert sorted(i["file_name"] for i in coco["images"]) == sorted(keys)
    assert len(list((out / "labels").rglob("*.txt"))) == len(keys)


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def test_ctrl_c_leaves_a_resumable_ledger(tmp_path):
    images = tmp_path / "images"
    make_images(images, 40, subfolders=False)
    out, calls = tmp_path / "out", tmp_path / "calls.log"
    proc = _driver(images, out, calls, "0.05", "coco,yolo")
    _wait_for_lines(out / "results.jsonl", 5, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    state = read_ledger(out / "results.jsonl")
    assert 5 <= len(state.done) < 40
    # everything sent before Ctrl-C was recorded (the run drains in-flight calls)
    assert len(calls.read_text().splitlines()) == len(state.done)
    # the sinks fed during the run were discarded: nothing written, nothing left staged
    left = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert left == [".vlmkit.lock", "results.jsonl", "run.json"], left  # the lock file stays
    resumed = _driver(images, out, calls, "0.001", "coco,yolo")
    resumed.communicate(timeout=60)
    assert len(read_ledger(out / "results.jsonl").done) == 40
    assert len(calls.read_text().splitlines()) == 40  # nothing sent twice
    assert len(json.loads((out / "annotations.json").read_text())["images"]) == 40


def test_a_missing_input_fails_before_any_model_call(tmp_path):
    with session() as s, pytest.raises(vlmkit.MediaError, match="no such file or folder"):
        s.run("detect", [tmp_path / "photoz"], "cat", out_dir=tmp_path / "out")
    assert s.backend.requests == []


@pytest.mark.parametrize(
    "error",
    [vlmkit.AuthError("invalid API key"), vlmkit.ConfigError("model not found: gemma-99")],
)
def test_errors_that_are_not_about_an_item_stop_the_run(tmp_path, error):
    images = tmp_path / "images"
    make_images(images, 10, subfolders=False)
    with session(error) as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "out", concurrency=2)
        with pytest.raises(type(error), match=str(error)):
            list(run)
        assert len(s.backend.requests) <= 2
    assert run.summary.stopped == "error"
    assert not read_ledger(tmp_path / "out" / "results.jsonl").records  # nothing to retry


def test_resuming_with_other_settings_is_refused(tmp_path):
    images = tmp_path / "images"
    make_images(images, 3, subfolders=False)
    with session() as s:
        list(s.run("detect", [images], "cat", out_dir=tmp_path / "out"))
        for task, prompt in (("ocr", None), ("detect", "dog")):
            with pytest.raises(vlmkit.ConfigError, match="different run"):
                list(s.run(task, [images], prompt, out_dir=tmp_path / "out"))
        assert len(s.backend.requests) == 3
        again = s.run("detect", [images], "cat", out_dir=tmp_path / "out")
        assert list(again) == [] and again.summary.resumed == 3
    with session(model="another-model") as other, pytest.raises(vlmkit.ConfigError, match="model"):
        list(other.run("detect", [images], "cat", out_dir=tmp_path / "out"))


def test_an_unsupported_task_fails_before_the_run(tmp_path):
    images = tmp_path / "images"
    make_images(images, 3, subfolders=False)
    plugin = scripted_plugin(CAT, tasks={"detect"})
    with vlmkit.Session("scripted", plugins=[plugin], entrypoints=False) as s:
        with pytest.raises(vlmkit.UnsupportedTask):
            s.run("ocr", [images], out_dir=tmp_path / "out")
        assert not (tmp_path / "out").exists()


def test_a_bad_sink_option_fails_before_any_model_call(tmp_path):
    images = tmp_path / "images"
    make_images(images, 3, subfolders=False)
    with session() as s:
        for sink_options, match in (
            ({"coco": {"mask_fromat": "polygon"}}, "mask_fromat"),
            ({"coco": {"mask_format": "svg"}}, "svg"),
        ):
            with pytest.raises(vlmkit.VlmkitError, match=match):
                s.run(
                    "detect",
                    [images],
                    "cat",
                    out_dir=tmp_path / "out",
                    sinks=["coco"],
                    sink_options=sink_options,
                )
        assert s.backend.requests == []
    assert not (tmp_path / "out").exists()


def test_a_sink_that_would_overwrite_the_ledger_is_refused_before_any_call(tmp_path):
    images = tmp_path / "images"
    make_images(images, 3, subfolders=False)
    out = tmp_path / "out"
    with session() as s:
        with pytest.raises(vlmkit.SinkError, match="overwrite the ledger"):
            s.run(
                "detect",
                [images],
                "cat",
                out_dir=out,
                sinks=["coco"],
                sink_options={"coco": {"filename": "results.jsonl"}},
            )
        assert s.backend.requests == []
    assert not out.exists()


def test_out_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with session() as s, pytest.raises(vlmkit.ConfigError, match="must be a folder"):
        s.run("detect", [tmp_path], "cat", out_dir=tmp_path / "file")


def test_an_output_folder_inside_the_inputs_is_not_labelled(tmp_path):
    images = tmp_path / "images"
    make_images(images, 4, subfolders=False)
    with session() as s:
        first = s.run("detect", [images], "cat", out_dir=images / "run", sinks=["yolo", "annotate"])
        list(first)
        assert first.summary.done == 4
        again = s.run("detect", [images], "cat", out_dir=images / "run")
        assert list(again) == [] and again.summary.resumed == 4  # its own images/ are not inputs


def test_a_plain_sink_does_not_turn_staging_off_for_the_others(tmp_path, monkeypatch):
    """coco (two-phase) is fed while the run goes on; the plain third-party sink next to it is
    written only at the end; both outputs equal what `vlmkit export` makes of the ledger."""
    from tests.sinks import thirdparty
    from vlmkit.export import export
    from vlmkit.sinks.coco import CocoSink

    events: list[tuple[str, str]] = []
    real_coco, real_target = CocoSink.write, thirdparty.TargetSink.write

    def coco_write(self, item):
        events.append(("coco", item.key))
        return real_coco(self, item)

    def target_write(self, item):
        events.append(("targetsink", item.key))
        return real_target(self, item)

    monkeypatch.setattr(CocoSink, "write", coco_write)
    monkeypatch.setattr(thirdparty.TargetSink, "write", target_write)
    images = tmp_path / "images"
    make_images(images, 4, subfolders=False)
    out = tmp_path / "out"
    plugins = [scripted_plugin(CAT), thirdparty]
    with vlmkit.Session("scripted", plugins=plugins, entrypoints=["vlmkit"]) as s:
        run = s.run(
            "detect",
            [images],
            "cat",
            out_dir=out,
            sinks=["coco", "targetsink"],
            concurrency=1,
            progress=lambda outcome: events.append(("outcome", outcome.key)),
        )
        assert [o.status for o in run] == ["done"] * 4
        last_outcome = max(i for i, (kind, _) in enumerate(events) if kind == "outcome")
        coco_at = [i for i, (kind, _) in enumerate(events) if kind == "coco"]
        target_at = [i for i, (kind, _) in enumerate(events) if kind == "targetsink"]
        assert len(coco_at) == len(target_at) == 4  # every record once to each sink
        assert min(coco_at) < last_outcome  # staged while the run went on
        assert min(target_at) > last_outcome  # the plain sink: at the end
        again = tmp_path / "again"
        export(out / "results.jsonl", ["coco", "targetsink"], again, resolve=s.sink_info)
    for name in ("annotations.json", "keys.txt"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    assert len(json.loads((out / "annotations.json").read_text())["images"]) == 4


def test_a_sessions_mask_limits_bound_a_segment_run_and_belong_to_its_identity(tmp_path):
    from tests.core.test_session_mask_limits import SEGMENT
    from vlmkit.masks import MaskLimits

    images = tmp_path / "images"
    make_images(images, 2, subfolders=False)
    out = tmp_path / "out"

    def limited(pixels):
        plugin = scripted_plugin(SEGMENT)
        limits = MaskLimits(pixels=pixels)
        return vlmkit.Session("scripted", plugins=[plugin], entrypoints=False, mask_limits=limits)

    with limited(100) as s:
        assert [o.status for o in s.run("segment", [images], out_dir=out)] == ["done"] * 2
    for record in read_ledger(out / "results.jsonl"):
        assert [d.mask for d in record.result] == [None, None]
        assert record.result.report.masks_dropped == 2
    with limited(10**9) as s, pytest.raises(vlmkit.ConfigError, match="max_mask_pixels"):
        list(s.run("segment", [images], out_dir=out))  # other limits: another question
    with limited(100) as s:  # the same limits resume
        assert list(s.run("segment", [images], out_dir=out)) == []
