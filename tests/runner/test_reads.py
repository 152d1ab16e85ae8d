"""What a run does to read each input: the file is opened once, its bytes read once.

Each item used to be opened twice: once to read its header (the pixel size the run's pixel
budget asks before decoding) and once to read its bytes. On a busy run every system call is a
point where a worker drops the GIL and another takes it, so the second open, with its fstat,
ioctl and seeks, cost more than its own work (issue 16: about 0.2 ms of CPU per item at 4 in
flight, 20–30 % of the framework's CPU).
"""

from __future__ import annotations

import builtins
import collections
import io
import os

import vlmkit
from tests.runner.test_runner import make_images, session
from vlmkit.ledger import read_ledger


def _count_opens(monkeypatch, folder):
    """Count every open of a file under ``folder``, through any of Python's ways to open one."""
    opened: collections.Counter[str] = collections.Counter()
    prefix = str(folder)

    def counting(real):
        def wrapper(file, *args, **kwargs):
            if isinstance(file, str | os.PathLike) and os.fspath(file).startswith(prefix):
                opened[os.path.relpath(os.fspath(file), prefix)] += 1
            return real(file, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(builtins, "open", counting(builtins.open))
    monkeypatch.setattr(io, "open", counting(io.open))
    monkeypatch.setattr(os, "open", counting(os.open))
    return opened


def test_a_run_opens_each_image_once(tmp_path, monkeypatch):
    images = tmp_path / "images"
    paths = make_images(images, 6)
    with session() as s:
        opened = _count_opens(monkeypatch, images)
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "out", concurrency=2)
        outcomes = list(run)
        monkeypatch.undo()
    assert [outcome.status for outcome in outcomes] == ["done"] * 6
    assert opened == {os.path.relpath(path, images): 1 for path in paths}
    # the image was decoded from those bytes: its size is in the record, boxes in pixels
    records = read_ledger(tmp_path / "out" / "results.jsonl").records
    for path in paths:
        record = records[os.path.relpath(path, images)]
        width, height = record.image_size
        assert (width, height) == vlmkit.load_image(path).size
        box = record.result.xyxy[0]
        assert 0 < box[0] < box[2] <= width and 0 < box[1] < box[3] <= height
