"""vlmkit-ray on a local Ray cluster against the fake Gemini: the run folder's guarantees hold
when the items are answered by Ray Data workers, one of them killed mid-run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import supervision as sv
from pycocotools.coco import COCO

import vlmkit.ray
from tests.ray.conftest import ANSWER, MODEL, SKIP_REASON, make_images
from vlmkit.engines import SessionSpec
from vlmkit.ledger import read_ledger

pytest.importorskip("ray", reason=SKIP_REASON)
pytest.importorskip("vlmkit_ray", reason=SKIP_REASON)
from vlmkit_ray import RayEngine

pytestmark = pytest.mark.slow


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def worker_pids() -> list[int]:
    """The processes of this test's Ray Data worker actors: their title names the class, and
    they descend from this process (which started the local cluster), not from another run's."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"LabelWorker" not in (entry / "cmdline").read_bytes():
                continue
            pid = int(entry.name)
            while pid > 1 and pid != os.getpid():
                pid = _parent(pid)
        except (OSError, ValueError, IndexError):
            continue
        if pid == os.getpid():
            pids.append(int(entry.name))
    return pids


def images_seen(fake) -> Counter[str]:
    """How many generate requests the fake received for each image (by its bytes)."""
    return Counter(
        hashlib.sha256(data).hexdigest()
        for request in fake.requests_of("generate")
        for _mime, data in request.inline_data
    )


def settings(fake) -> dict[str, str]:
    return {"api_key": "test-key", "base_url": fake.base_url}


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker's pid in /proc")
@pytest.mark.filterwarnings("error::DeprecationWarning")  # none of Ray's own either
def test_500_images_with_a_worker_killed_mid_run(ray_cluster, fake, tmp_path):
    folder = make_images(tmp_path / "photos", 500)
    fake.latency_s = 0.01
    killed: list[int] = []
    done = [0]

    def progress(outcome) -> None:
        done[0] += 1
        if done[0] == 120 and not killed:
            pids = worker_pids()
            assert pids, "no Ray worker process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    summary = vlmkit.ray.label(
        [folder],
        task="detect",
        prompt=["cat"],
        backend="gemini-api",
        model=MODEL,
        settings=settings(fake),
        out=tmp_path / "out",
        sinks=["coco", "yolo"],
        cache=tmp_path / "cache",
        concurrency=8,
        workers=2,
        progress=progress,
    )
    assert killed
    assert summary.done == 500 and summary.failed == 0, str(summary)
    # every image exactly once in the ledger, and in the sinks
    lines = [
        json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    ]
    keys = [line["key"] for line in lines]
    assert len(keys) == 500 and len(set(keys)) == 500
    assert set(read_ledger(tmp_path / "out" / "results.jsonl").done) == set(keys)
    coco = COCO(str(tmp_path / "out" / "annotations.json"))
    assert len(coco.getImgIds()) == 500 and len(coco.getAnnIds()) == 500
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["cat"]
    yolo = sv.DetectionDataset.from_yolo(
        images_directory_path=str(folder),
        annotations_directory_path=str(tmp_path / "out" / "labels"),
        data_yaml_path=str(tmp_path / "out" / "data.yaml"),
    )
    assert len(yolo) == 500
    assert all(len(detections) == 1 for _path, _image, detections in yolo)
    # the killed worker's batch was answered again: from the cache, or sent once more at most
    seen = images_seen(fake)
    assert len(seen) == 500
    assert max(seen.values()) <= 2
    in_flight = 2 * 8  # a batch per worker (2 x its 4 threads) x 2 workers
    assert sum(seen.values()) <= 500 + in_flight


def test_resume_after_the_driver_stops_schedules_only_unfinished_keys(ray_cluster, fake, tmp_path):
    folder = make_images(tmp_path / "photos", 40)
    spec = SessionSpec(backend="gemini-api", model=MODEL, settings=settings(fake))
    engine = RayEngine(workers=2)
    arguments = {"prompt": "cat", "out_dir": tmp_path / "out", "sinks": ["coco"], "concurrency": 4}
    with spec.session() as session:
        run = engine.run(session, spec, "detect", [folder], **arguments)
        for count, _outcome in enumerate(run, 1):
            if count == 10:
                break  # the driver stops iterating: the dataset's execution is shut down
        assert len(run.scheduled) == 40
        finished = set(read_ledger(tmp_path / "out" / "results.jsonl").done)
        assert 10 <= len(finished) < 40
        again = engine.run(session, spec, "detect", [folder], **arguments)
        outcomes = list(again)
    assert set(again.scheduled) == {f"img{i:03d}.jpg" for i in range(40)} - finished
    context = ray_cluster.data.DataContext.get_current()
    assert context.enable_progress_bars  # turned off for the run's datasets only
    assert again.summary.resumed == len(finished)
    assert {o.key for o in outcomes} == set(again.scheduled)
    assert len(read_ledger(tmp_path / "out" / "results.jsonl").done) == 40
    assert len(json.loads((tmp_path / "out" / "annotations.json").read_text())["images"]) == 40


def test_the_limiter_keeps_the_global_request_rate(ray_cluster, fake, tmp_path):
    folder = make_images(tmp_path / "photos", 30)
    summary = vlmkit.ray.label(
        [folder],
        task="detect",
        prompt="cat",
        backend="gemini-api",
        model=MODEL,
        settings=settings(fake),
        out=tmp_path / "out",
        cache=False,
        concurrency=16,
        workers=2,
        requests_per_s=15,
    )
    assert summary.done == 30
    times = sorted(r.received_at for r in fake.requests_of("generate"))
    assert len(times) == 30
    # 2 workers x 8 threads would send all 30 within a second; the shared limiter lets 15 pass
    # per second across the cluster: count the requests in every 1-second window (generous margin)
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 15 + 3


def test_vlmkit_label_with_engine_ray(ray_cluster, fake, tmp_path):
    from typer.testing import CliRunner

    from vlmkit.cli import app

    folder = make_images(tmp_path / "photos", 12)
    command = [
        "label", str(folder), "--task", "detect", "--prompt", "cat", "--backend", "gemini-api",
        "--model", MODEL, "--config", f"base_url={fake.base_url}",
        "--config", "api_key=test-key-cli", "--out", str(tmp_path / "out"), "--sink", "coco",
        "--no-progress", "--no-cache", "--engine", "ray", "--engine-option", "workers=2",
    ]  # fmt: skip
    done = CliRunner().invoke(app, command)
    assert done.exit_code == 0, done.output
    assert "done 12, failed 0" in done.output
    assert "test-key-cli" not in done.output
    assert len(json.loads((tmp_path / "out" / "annotations.json").read_text())["images"]) == 12
    again = CliRunner().invoke(app, command)
    assert "resumed 12" in again.output
    assert len(fake.requests_of("generate")) == 12  # the re-run scheduled nothing
    other = CliRunner().invoke(app, [*command[:5], "dog", *command[6:]])
    assert other.exit_code != 0 and "different questions" in other.output  # run.json refuses


def test_the_budget_is_one_for_the_whole_cluster(ray_cluster, fake, tmp_path):
    folder = make_images(tmp_path / "photos", 40)
    fake.clear_rules()  # every answer costs about $0.01 (4000 output tokens)
    fake.add_rule(text=ANSWER, usage={"candidates_token_count": 4000})
    summary = vlmkit.ray.label(
        [folder], task="detect", prompt="cat", backend="gemini-api", model=MODEL,
        settings=settings(fake), out=tmp_path / "out", cache=False,
        concurrency=8, workers=2, budget_usd=0.1,
    )  # fmt: skip
    assert summary.stopped == "budget"
    assert summary.cost_usd <= 0.1
    # $0.1 pays for 9 such answers at most; two workers with a budget each would pay 18
    sent = len(fake.requests_of("generate"))
    assert 1 <= sent <= 9 and summary.done == sent
    assert len(read_ledger(tmp_path / "out" / "results.jsonl")) == sent  # the rest stays to do


def test_bad_credentials_stop_the_run_with_the_workers_error(ray_cluster, fake, tmp_path):
    folder = make_images(tmp_path / "photos", 20)
    fake.valid_keys = {"the-right-key"}
    with pytest.raises(vlmkit.AuthError):
        vlmkit.ray.label(
            [folder], task="detect", prompt="cat", backend="gemini-api", model=MODEL,
            settings=settings(fake), out=tmp_path / "out", cache=False, workers=2,
        )  # fmt: skip
    assert len(read_ledger(tmp_path / "out" / "results.jsonl")) == 0  # nothing recorded as failed


def test_a_killed_driver_loses_no_recorded_answer_and_the_command_resumes(
    ray_cluster, fake, tmp_path
):
    folder = make_images(tmp_path / "photos", 100)
    fake.latency_s = 0.02
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "vlmkit.cli", "label", str(folder), "--prompt", "cat",
        "--backend", "gemini-api", "--model", MODEL, "--config", f"base_url={fake.base_url}",
        "--config", "api_key=test-key", "--out", str(out), "--sink", "coco", "--no-progress",
        "--no-cache", "--concurrency", "4", "--engine", "ray",
        "--address", ray_cluster.get_runtime_context().gcs_address,
    ]  # fmt: skip
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger = out / "results.jsonl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and driver.poll() is None:
        if ledger.exists() and ledger.read_bytes().count(b"\n") >= 20:
            break
        time.sleep(0.05)
    assert driver.poll() is None, "the driver ended before it could be killed"
    driver.kill()  # SIGKILL: no clean-up of any kind
    driver.wait()
    kept = read_ledger(ledger).done
    assert 20 <= len(kept) < 100
    assert not (out / "annotations.json").exists()  # sinks only at the end
    # the same run again, in this process: only the keys the ledger lacks are scheduled
    spec = SessionSpec(
        backend="gemini-api",
        model=MODEL,
        settings={"api_key": "test-key", "base_url": fake.base_url},
    )
    with spec.session() as session:
        again = RayEngine().run(
            session, spec, "detect", [folder], prompt="cat", out_dir=out, sinks=["coco"],
            concurrency=4,
        )  # fmt: skip
        list(again)
    assert set(again.scheduled) == {f"img{i:03d}.jpg" for i in range(100)} - set(kept)
    assert again.summary.resumed == len(kept) and again.summary.done == 100 - len(kept)
    keys = [json.loads(line)["key"] for line in ledger.read_text().splitlines() if line.strip()]
    assert len(set(keys)) == 100 and len(keys) == 100  # nothing lost, nothing twice
    assert len(json.loads((out / "annotations.json").read_text())["images"]) == 100
    # the killed driver's workers may have had a few requests out: sent twice at most
    assert max(images_seen(fake).values()) <= 2


def test_retry_failed_on_ray_parses_kept_answers_again_without_paying(
    ray_cluster, fake, tmp_path, monkeypatch
):
    import vlmkit.tasks

    folder = make_images(tmp_path / "photos", 6)
    out = tmp_path / "out"

    def old_parser(text, **kwargs):  # a parser with a bug, fixed in a later vlmkit
        raise vlmkit.ParseError("cannot read this answer", raw_text=text)

    spec = SessionSpec(backend="gemini-api", model=MODEL, settings=settings(fake))
    with monkeypatch.context() as patch, spec.session() as session:  # a local run first
        patch.setattr(vlmkit.tasks, "parse_detections", old_parser)
        first = session.run("detect", [folder], "cat", out_dir=out)
        list(first)
    assert first.summary.failures == {"ParseError": 6}
    paid = len(fake.requests_of("generate"))
    with spec.session() as session:  # the same run folder, on Ray, whose workers parse right
        retry = RayEngine(workers=2).run(
            session, spec, "detect", [folder], prompt="cat", out_dir=out, retry_failed=True
        )
        list(retry)
    assert retry.summary.done == 6 and retry.summary.reparsed == 6
    assert len(fake.requests_of("generate")) == paid  # nothing paid again
    assert len(read_ledger(out / "results.jsonl").done) == 6


def test_any_file_name_travels_to_the_workers_and_back(ray_cluster, fake, tmp_path):
    folder = make_images(tmp_path / "photos", 2)
    odd = os.fsdecode(b"caf\xe9 \xff.jpg")  # not UTF-8: a lone surrogate in Python
    (folder / "img000.jpg").rename(folder / odd)
    summary = vlmkit.ray.label(
        [folder], task="detect", prompt="cat", backend="gemini-api", model=MODEL,
        settings=settings(fake), out=tmp_path / "out", cache=False, workers=1,
    )  # fmt: skip
    assert summary.done == 2 and summary.failed == 0
    assert set(read_ledger(tmp_path / "out" / "results.jsonl").done) == {odd, "img001.jpg"}


def test_a_worker_that_cannot_start_is_a_clear_error(ray_cluster, fake, tmp_path):
    folder = make_images(tmp_path / "photos", 4)
    spec = SessionSpec(  # a plugin module this process lacks too: the workers cannot start
        backend="gemini-api", model=MODEL, settings=settings(fake), plugins=["no_such_plugin"]
    )
    with vlmkit.Session("gemini-api", model=MODEL, **settings(fake)) as session:
        run = RayEngine(workers=1).run(
            session, spec, "detect", [folder], prompt="cat", out_dir=tmp_path / "out"
        )
        with pytest.raises(vlmkit.VlmkitError, match=r"no_such_plugin.*every node has vlmkit"):
            list(run)
    assert run.summary.stopped == "error"
