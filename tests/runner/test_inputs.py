"""Collecting a run's inputs: what a folder yields (keys, resolved files, what is skipped and
why), and that a folder's files are resolved through their folder, not each on its own — a
million-image folder is listed before the first request."""

from __future__ import annotations

import os

import pytest

from vlmkit.inputs import collect_inputs


def _touch(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


@pytest.fixture()
def tree(tmp_path):
    """A folder with what a real one holds: nested images, other files, hidden ones, links to
    files and folders (inside and outside), broken links, loops, a FIFO, the run's own output
    folder with an image in it and a link in it to images elsewhere."""
    root = tmp_path / "in"
    for name in ["a.jpg", "B.PNG", "notes.txt", ".hidden.jpg", "sub/c.jpg", "sub/deeper/d.webp"]:
        _touch(root / name)
    _touch(tmp_path / "elsewhere" / "e.jpg")
    _touch(tmp_path / "elsewhere2" / "f.jpg")
    _touch(tmp_path / "elsewhere3" / "g.jpg")
    _touch(root / ".hidden" / "h.jpg")
    (root / "link_file.jpg").symlink_to(tmp_path / "elsewhere" / "e.jpg")
    (root / "link_dir").symlink_to(tmp_path / "elsewhere2")
    (root / "dup.jpg").symlink_to("a.jpg")  # the same file again: the first key holds
    (root / "broken.jpg").symlink_to(tmp_path / "missing.jpg")
    (root / "self.jpg").symlink_to(root / "self.jpg")
    (root / "sub" / "up").symlink_to("..")  # a folder link to an ancestor
    os.mkfifo(root / "pipe.jpg")
    _touch(root / "out" / "x.jpg")  # the run's own output: never an input
    (root / "out" / "escape").symlink_to(tmp_path / "elsewhere3")
    return tmp_path


def _collected(inputs, exclude=None):
    items, skipped = collect_inputs(inputs, exclude=exclude)
    return [(item.key, item.file) for item in items], [(s.file, s.reason) for s in skipped]


def test_a_folder_yields_keys_resolved_files_and_reasons(tree):
    root, real = tree / "in", os.path.realpath(tree)
    items, skipped = _collected([root], exclude=root / "out")
    assert items == [
        ("B.PNG", f"{real}/in/B.PNG"),
        ("a.jpg", f"{real}/in/a.jpg"),
        ("link_dir/f.jpg", f"{real}/elsewhere2/f.jpg"),
        ("link_file.jpg", f"{real}/elsewhere/e.jpg"),
        ("out/escape/g.jpg", f"{real}/elsewhere3/g.jpg"),  # resolves outside the output
        ("sub/c.jpg", f"{real}/in/sub/c.jpg"),
        ("sub/deeper/d.webp", f"{real}/in/sub/deeper/d.webp"),
    ]
    reasons = dict(skipped)
    assert sorted(reasons) == sorted(
        str(root / name) for name in ["broken.jpg", "notes.txt", "pipe.jpg", "self.jpg", "sub/up"]
    )
    assert reasons[str(root / "broken.jpg")] == "a broken symbolic link"
    assert reasons[str(root / "notes.txt")] == "not an image file"
    assert reasons[str(root / "pipe.jpg")].startswith("a FIFO")
    assert reasons[str(root / "self.jpg")] == "a symbolic-link loop"
    assert reasons[str(root / "sub/up")].startswith("a symbolic-link loop")


def test_a_folder_given_through_a_link_or_as_dot_keys_the_same(tree, monkeypatch):
    (tree / "alias").symlink_to(tree / "in")
    direct, _ = _collected([tree / "in"], exclude=tree / "in" / "out")
    through_link, _ = _collected([tree / "alias"], exclude=tree / "in" / "out")
    assert through_link == direct
    monkeypatch.chdir(tree / "in")
    here, skipped = _collected(["."], exclude="out")
    assert here == direct
    assert ("notes.txt", "not an image file") in skipped  # named as the user gave the folder
    monkeypatch.chdir(tree)
    relative, _ = _collected(["in/"], exclude="in/out")
    assert relative == direct


def test_output_folder_given_through_a_link_is_still_left_out(tree):
    (tree / "out-link").symlink_to(tree / "in" / "out")
    items, _ = _collected([tree / "in"], exclude=tree / "out-link")
    assert "out/x.jpg" not in [key for key, _ in items]
    everything, _ = _collected([tree / "in"])
    assert "out/x.jpg" in [key for key, _ in everything]


def test_a_folder_inside_the_root_folder_resolves(tmp_path):
    """The root folder as input and as output folder's parent: no doubled separator."""
    _touch(tmp_path / "a.jpg")
    items, _ = _collected([tmp_path])
    assert items == [("a.jpg", os.path.join(os.path.realpath(tmp_path), "a.jpg"))]


def test_a_folders_files_are_resolved_through_their_folder_not_one_by_one(tmp_path, monkeypatch):
    """Listing 200 plain files in two folders resolves the folders, not every file (it
    resolved each file twice — an ``lstat`` per component of its path, 401 ``realpath`` and
    3,009 ``stat``/``lstat`` calls here — 38 s of CPU before the first request of a
    million-image folder; docs/benchmarks.md)."""
    for index in range(200):
        _touch(tmp_path / "in" / f"part{index % 2}" / f"img{index:03d}.jpg")
    calls = {"realpath": 0, "stat": 0, "lstat": 0}
    real_realpath, real_stat, real_lstat = os.path.realpath, os.stat, os.lstat

    def counting(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(os.path, "realpath", counting("realpath", real_realpath))
    monkeypatch.setattr(os, "stat", counting("stat", real_stat))
    monkeypatch.setattr(os, "lstat", counting("lstat", real_lstat))
    items, skipped = collect_inputs([tmp_path / "in"], exclude=tmp_path / "out")
    monkeypatch.undo()
    assert len(items) == 200 and skipped == []
    assert calls["realpath"] <= 4, calls  # the exclude and the folder, not each file
    assert calls["stat"] + calls["lstat"] <= 40, calls  # not several per file


def test_links_the_listing_cannot_follow_are_resolved_as_links(tmp_path, monkeypatch):
    """A link whose target loops, runs through a file or is too long: it is resolved like any
    link, so whether it lies in the output folder is decided by where it points (found by a
    differential test against the walk before the folder-once listing)."""
    monkeypatch.chdir(tmp_path)
    _touch(tmp_path / "f.txt")
    (tmp_path / "in" / "out").mkdir(parents=True)
    (tmp_path / "in" / "out" / "loop.jpg").symlink_to("loop.jpg")
    (tmp_path / "in" / "out" / "x.jpg").symlink_to(tmp_path / "f.txt" / "x")  # through a file
    _touch(tmp_path / "in" / "out" / "g.txt")
    (tmp_path / "in" / "y.jpg").symlink_to("out/g.txt/y")  # into the output folder
    (tmp_path / "lnk").symlink_to("in")
    _, skipped = _collected(["lnk"], exclude="in/out")
    assert skipped == [("lnk/out/x.jpg", "a broken symbolic link")]  # points outside it
    _, skipped = _collected(["in"], exclude="in/out")
    assert skipped == [("in/out/x.jpg", "a broken symbolic link")]


def test_a_link_with_a_name_too_long_is_skipped_with_its_reason_not_an_os_error(
    tmp_path, monkeypatch
):
    """``Path.is_dir`` raises for a name too long (or a folder it may not read): inside the
    output folder such a link is left out as before, anywhere else — matched by a glob, or
    named — it is skipped with its reason instead of stopping the run with an OSError."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in" / "out").mkdir(parents=True)
    _touch(tmp_path / "in" / "a.jpg")
    (tmp_path / "in" / "out" / "long.jpg").symlink_to("n" * 300)
    (tmp_path / "in" / "long.jpg").symlink_to("n" * 300)
    items, skipped = _collected(["in/out/*"], exclude="in/out")
    assert items == [] and skipped == [("in/out/*", "the pattern matched nothing")]
    items, skipped = _collected(["in/*.jpg"], exclude="in/out")
    assert [key for key, _ in items] == ["a.jpg"]
    assert skipped == [("in/long.jpg", "a broken symbolic link")]
    items, skipped = _collected(["in/long.jpg"], exclude="in/out")
    assert items == [] and skipped == [("in/long.jpg", "a broken symbolic link")]
