"""Keys: an image keeps its key whatever else is on the command line, and a resumed run never
re-sends a finished image because the inputs were given differently. Inputs that are no
regular files are skipped with their reason."""

from __future__ import annotations

import json
import os
import threading

import pytest

import vlmkit
from tests.runner.test_runner import CAT, make_images
from vlmkit.ledger import read_ledger
from vlmkit.testing import scripted_plugin


def _session():
    return vlmkit.Session("scripted", plugins=[scripted_plugin(CAT)], entrypoints=["vlmkit"])


def test_adding_a_folder_and_a_link_never_rekeys_or_resends_finished_images(tmp_path):
    images, more, elsewhere = tmp_path / "images", tmp_path / "more", tmp_path / "elsewhere"
    make_images(images, 6)
    make_images(more, 2, subfolders=False)
    [far] = make_images(elsewhere, 1, subfolders=False)
    link = tmp_path / "link.png"
    link.symlink_to(far)
    out = tmp_path / "out"
    with _session() as s:
        first = s.run("detect", [images], "cat", out_dir=out, sinks=["coco", "yolo"])
        keys = {o.key for o in first}
        s.backend.requests.clear()
        second = s.run("detect", [images, more, link], "cat", out_dir=out, sinks=["coco", "yolo"])
        added = {o.key for o in second}
        assert len(s.backend.requests) == 3  # only the new files
    assert keys == {f"part{i % 3}/img{i:03d}.png" for i in range(6)}
    assert added == {"img000.png", "img001.png", "link.png"}
    assert second.summary.resumed == 6
    state = read_ledger(out / "results.jsonl")
    assert set(state.done) == keys | added
    coco = json.loads((out / "annotations.json").read_text())
    assert len(coco["images"]) == 9  # one per file, none twice
    assert len(list((out / "labels").rglob("*.txt"))) == 9


def test_a_glob_keys_relative_to_its_folder_and_a_file_by_its_name(tmp_path):
    images = tmp_path / "images"
    make_images(images, 3)
    with _session() as s:
        run = s.run("detect", [f"{images}/**/*.png"], "cat", out_dir=tmp_path / "a")
        assert {o.key for o in run} == {"part0/img000.png", "part1/img001.png", "part2/img002.png"}
        single = s.run("detect", [images / "part1" / "img001.png"], "cat", out_dir=tmp_path / "b")
        assert [o.key for o in single] == ["img001.png"]


def test_two_files_with_one_key_are_refused_before_any_request(tmp_path):
    make_images(tmp_path / "cam1", 1, subfolders=False)
    make_images(tmp_path / "cam2", 1, subfolders=False)
    with _session() as s, pytest.raises(vlmkit.ConfigError, match=r"img000\.png"):
        list(s.run("detect", [tmp_path / "cam1", tmp_path / "cam2"], "cat", out_dir=tmp_path / "o"))
    assert s.backend.requests == []


def test_a_ledger_keyed_the_old_way_resumes_by_file(tmp_path):
    images = tmp_path / "images"
    make_images(images, 4)
    out = tmp_path / "out"
    with _session() as s:
        list(s.run("detect", [images], "cat", out_dir=out))
    ledger = out / "results.jsonl"
    # an older vlmkit keyed on the common folder of all inputs: "images/part0/img000.png"
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    for line in lines:
        line["key"] = "images/" + line["key"]
    ledger.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with _session() as s:
        run = s.run("detect", [images], "cat", out_dir=out)
        assert list(run) == [] and s.backend.requests == []
    assert run.summary.resumed == 4


def test_fifos_device_files_and_link_loops_are_skipped_with_their_reason(tmp_path):
    images = tmp_path / "images"
    make_images(images, 2, subfolders=False)
    os.mkfifo(images / "pipe.png")
    (images / "null.png").symlink_to(os.devnull)
    (images / "loop").symlink_to(images)  # a folder link back to itself
    (images / "self.png").symlink_to(images / "self.png")
    (images / "gone.png").symlink_to(tmp_path / "missing.png")
    fifo_arg = tmp_path / "named.png"
    os.mkfifo(fifo_arg)
    result: dict[str, object] = {}

    def label() -> None:
        with _session() as s:
            run = s.run("detect", [images, fifo_arg], "cat", out_dir=tmp_path / "out")
            result["outcomes"] = list(run)
            result["summary"] = run.summary

    worker = threading.Thread(target=label, daemon=True)  # a FIFO read would block forever
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the run blocked on a FIFO"
    reasons = {o.path.name: o.error for o in result["outcomes"] if o.status == "skipped"}
    assert "FIFO" in reasons["pipe.png"] and "FIFO" in reasons["named.png"]
    assert "device file" in reasons["null.png"]
    assert "loop" in reasons["loop"] and "loop" in reasons["self.png"]
    assert "broken symbolic link" in reasons["gone.png"]
    summary = result["summary"]
    assert summary.done == 2 and summary.skipped == 6
    assert f"{images / 'pipe.png'} (a FIFO" in str(summary)  # the summary names them
    assert summary.to_dict()["skipped_inputs"][str(fifo_arg)].startswith("a FIFO")
