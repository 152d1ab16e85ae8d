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


def test_a_large_file_is_read_only_once_the_pixel_budget_admits_it(tmp_path, monkeypatch):
    """A worker waiting for the pixel budget holds no large file's bytes (up to twice the
    requests in flight wait so, and a file may be 200 MB): a file over
    ``READ_AHEAD_MAX_BYTES`` is read once its image is admitted, a small one before."""
    import contextlib

    import numpy as np
    from PIL import Image

    import vlmkit.dispatch
    import vlmkit.imagefile
    from vlmkit.pixels import PixelBudget

    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(folder / "a_small.png")
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "b_large.png")
    assert (folder / "b_large.png").stat().st_size > 1024 > (folder / "a_small.png").stat().st_size
    monkeypatch.setattr(vlmkit.dispatch, "READ_AHEAD_MAX_BYTES", 1024, raising=False)
    events = []
    real_read, real_hold = vlmkit.imagefile._read, PixelBudget.hold

    def read(path, name, **kwargs):
        data = real_read(path, name, **kwargs)
        if data is not None:
            events.append(("read", os.path.basename(name)))
        return data

    @contextlib.contextmanager
    def hold(self, pixels, stop):
        events.append(("admitted", pixels))
        with real_hold(self, pixels, stop):
            yield

    monkeypatch.setattr(vlmkit.imagefile, "_read", read)
    monkeypatch.setattr(PixelBudget, "hold", hold)
    with session() as s:
        run = s.run("detect", [folder], "cat", out_dir=tmp_path / "out", concurrency=1)
        assert [outcome.status for outcome in run] == ["done", "done"]
    assert events == [
        ("read", "a_small.png"),
        ("admitted", 64),
        ("admitted", 4096),
        ("read", "b_large.png"),
    ]
    records = read_ledger(tmp_path / "out" / "results.jsonl").records
    assert records["b_large.png"].image_size == (64, 64)


def test_the_image_plugins_are_imported_when_the_run_is_made(tmp_path, monkeypatch):
    # Pillow imports its format plugins on the first Image.open of a process (18 ms here). In
    # a run's first wave that import held every worker thread behind the import lock and the
    # GIL; the run imports them when it is made, with the rest of its set-up, so its first
    # requests leave without waiting for it.
    import threading

    from PIL import Image

    images = tmp_path / "images"
    make_images(images, 4)
    first: list[list[str]] = []
    preinit = Image.preinit

    def noting() -> None:
        if not first:
            first.append([thread.name for thread in threading.enumerate()])
        preinit()

    monkeypatch.setattr(Image, "preinit", noting)
    with session() as s:
        run = s.run("detect", [images], "cat", out_dir=tmp_path / "out", concurrency=4)
        assert first, "the run was made without importing Pillow's plugins"
        outcomes = list(run)
    assert [outcome.status for outcome in outcomes] == ["done"] * 4
    (threads,) = first
    assert not [name for name in threads if name.startswith("vlmkit-run")], threads
