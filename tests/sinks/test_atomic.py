"""Atomic writes leave the old file or the new one, never half of one, and no temp files."""

from __future__ import annotations

import os
import sys

import pytest

from vlmkit.atomic import (
    Staging,
    atomic_open,
    atomic_write_bytes,
    atomic_write_text,
    safe_join,
    utf8_safe,
)
from vlmkit.errors import SinkError


def test_write_replaces_whole_file(tmp_path):
    target = tmp_path / "deep" / "out.txt"
    atomic_write_text(target, "first\n")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["out.txt"]


def test_new_file_gets_umask_permissions(tmp_path):
    target = atomic_write_text(tmp_path / "f.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_error_in_block_keeps_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as handle:
        handle.write("half of a new")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_failed_replace_leaves_no_partial_target(tmp_path, monkeypatch):
    def boom(*_args):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_text(tmp_path / "new.txt", "data")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "/etc/passwd",
        "\\\\server\\share\\x",
        "C:\\x.jpg",
        "c:x.jpg",
        "../x",
        "a/../../x",
        "a\\..\\..\\x",
        "a\x00b",
        ".",
        "./",
    ],
)
def test_safe_join_refuses(tmp_path, bad):
    with pytest.raises(SinkError):
        safe_join(tmp_path, bad)


def test_safe_join_accepts_normal_keys(tmp_path):
    assert safe_join(tmp_path, "a/b c/d.jpg") == tmp_path / "a" / "b c" / "d.jpg"
    assert safe_join(tmp_path, "a//./b.jpg") == tmp_path / "a" / "b.jpg"
    assert safe_join(tmp_path, "..hidden.jpg") == tmp_path / "..hidden.jpg"


def test_safe_join_refuses_symlink_escape(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SinkError, match="symlink"):
        safe_join(root, "link/x.txt")


def test_safe_join_refuses_text_no_file_name_can_hold(tmp_path):
    with pytest.raises(SinkError, match="file name"):
        safe_join(tmp_path, "a\ud800.jpg")
    if os.name != "nt":  # a non-UTF-8 file name as Python decodes it (surrogateescape)
        assert safe_join(tmp_path, "caf\udce9.jpg") == tmp_path / "caf\udce9.jpg"


def test_utf8_safe():
    assert utf8_safe("plain 猫") == "plain 猫"
    assert utf8_safe("a\ud800b\udfff") == "a\ufffdb\ufffd"
    assert utf8_safe("\ud83d\ude00") == "\U0001f600"  # a surrogate pair is one character
    utf8_safe("x\udce9").encode("utf-8")


def test_staging_changes_nothing_until_commit(tmp_path):
    (tmp_path / "old.txt").write_text("old")
    staging = Staging()
    staging.write_text(tmp_path / "old.txt", "new")
    staging.write_bytes(tmp_path / "deep" / "er" / "a.bin", b"1")
    staging.write_text(tmp_path / "last.txt", "first version")
    staging.write_text(tmp_path / "last.txt", "second version")  # restaged, same position
    assert (tmp_path / "old.txt").read_text() == "old"
    assert not (tmp_path / "last.txt").exists() and len(staging) == 3
    assert staging.commit() == [
        tmp_path / "old.txt",
        tmp_path / "deep" / "er" / "a.bin",
        tmp_path / "last.txt",
    ]
    assert (tmp_path / "old.txt").read_text() == "new"
    assert (tmp_path / "last.txt").read_text() == "second version"
    assert sorted(os.listdir(tmp_path)) == ["deep", "last.txt", "old.txt"]  # no temp files
    assert len(staging) == 0 and staging.commit() == []


def test_staging_discard_removes_files_and_new_folders(tmp_path):
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "x.txt").write_text("x")
    staging = Staging()
    staging.write_text(tmp_path / "keep" / "x.txt", "y")
    staging.write_text(tmp_path / "new" / "sub" / "z.txt", "z")
    staging.discard()
    assert sorted(os.listdir(tmp_path)) == ["keep"]
    assert (
        os.listdir(tmp_path / "keep") == ["x.txt"]
        and (tmp_path / "keep" / "x.txt").read_text() == "x"
    )


def test_staging_place_links_or_copies(tmp_path, monkeypatch):
    source = tmp_path / "src.jpg"
    source.write_bytes(b"pixels")
    staging = Staging()
    assert staging.place(tmp_path / "out" / "a.jpg", source, link=True)
    assert not staging.place(tmp_path / "out" / "b.jpg", source, link=False)

    def no_links(*_args):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    assert not staging.place(tmp_path / "out" / "c.jpg", source, link=True)  # copied instead
    staging.commit()
    assert os.path.samefile(tmp_path / "out" / "a.jpg", source)
    assert not os.path.samefile(tmp_path / "out" / "c.jpg", source)
    assert (tmp_path / "out" / "c.jpg").read_bytes() == b"pixels"
    with pytest.raises(FileNotFoundError):
        staging.place(tmp_path / "gone" / "d.jpg", tmp_path / "missing.jpg", link=True)
    assert not (tmp_path / "gone").exists()


def test_failed_commit_leaves_no_temp_files(tmp_path, monkeypatch):
    staging = Staging()
    staging.write_text(tmp_path / "new" / "a.txt", "a")

    def boom(*_args):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk gone"):
        staging.commit()
    assert os.listdir(tmp_path) == []


def test_safe_join_follows_symlinks_that_stay_inside(tmp_path):
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    assert safe_join(root, "alias/x.txt") == root / "alias" / "x.txt"


def test_safe_join_refuses_symlink_chains_and_file_links_leading_out(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s")
    root = tmp_path / "root"
    (root / "inner").mkdir(parents=True)
    (root / "hop").symlink_to(outside, target_is_directory=True)
    (root / "inner" / "via").symlink_to(root / "hop", target_is_directory=True)  # in, then out
    (root / "file.txt").symlink_to(outside / "secret.txt")  # the last component itself
    for key in ("inner/via/x.txt", "file.txt"):
        with pytest.raises(SinkError, match="symlink"):
            safe_join(root, key)


def test_commit_fsyncs_every_written_file_before_any_rename(tmp_path, monkeypatch):
    import vlmkit.atomic as atomic

    events: list[tuple[str, str]] = []
    real_fsync, real_replace = atomic._fsync_file, os.replace
    monkeypatch.setattr(
        atomic, "_fsync_file", lambda p: (events.append(("sync", str(p))), real_fsync(p))
    )
    monkeypatch.setattr(
        os, "replace", lambda a, b: (events.append(("move", str(a))), real_replace(a, b))
    )
    source = tmp_path / "src.jpg"
    source.write_bytes(b"pixels")
    staging = Staging()
    for index in range(5):
        staging.write_text(tmp_path / "out" / f"{index}.txt", str(index))
    staging.write_text(tmp_path / "out" / "0.txt", "again")  # restaged: only the new one counts
    staging.place(tmp_path / "out" / "img.jpg", source, link=True)  # a link: nothing written
    staging.commit()
    synced = [path for kind, path in events if kind == "sync"]
    moved = [path for kind, path in events if kind == "move"]
    assert len(synced) == 5 and set(synced) < set(moved)  # each written file, once
    assert events.index(("move", moved[0])) > max(events.index(("sync", p)) for p in synced)
    assert (tmp_path / "out" / "0.txt").read_text() == "again"
    assert sorted(os.listdir(tmp_path / "out")) == [
        "0.txt",
        "1.txt",
        "2.txt",
        "3.txt",
        "4.txt",
        "img.jpg",
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="syncfs(2) is Linux's")
def test_a_large_commit_flushes_the_file_system_once_before_any_rename(tmp_path, monkeypatch):
    """Issue 16: a YOLO export stages one label file per image; from SYNCFS_FROM files on, a
    commit flushes each file system once (one syncfs) instead of opening and fsyncing every
    file (2,000 label files: 0.26-0.35 s of CPU -> 0.05-0.07 s, docs/benchmarks.md)."""
    import vlmkit.atomic as atomic

    events: list[tuple[str, str]] = []
    real_syncfs, real_replace = atomic._syncfs, os.replace
    monkeypatch.setattr(atomic, "_fsync_file", lambda p: events.append(("fsync", str(p))))
    monkeypatch.setattr(
        atomic, "_syncfs", lambda f: (events.append(("syncfs", str(f))), real_syncfs(f))[1]
    )
    monkeypatch.setattr(
        os, "replace", lambda a, b: (events.append(("move", str(a))), real_replace(a, b))
    )
    count = atomic.SYNCFS_FROM + 8
    staging = Staging()
    for index in range(count):
        staging.write_text(tmp_path / "labels" / f"d{index % 3}" / f"{index}.txt", str(index))
    staging.commit()
    kinds = [kind for kind, _ in events]
    assert kinds.count("syncfs") == 1  # three folders, one file system
    assert "fsync" not in kinds
    assert kinds.index("syncfs") < kinds.index("move") and kinds.count("move") == count
    assert (tmp_path / "labels" / "d1" / "4.txt").read_text() == "4"

    events.clear()  # a small group keeps one fsync per file
    small = Staging()
    for index in range(3):
        small.write_text(tmp_path / "small" / f"{index}.txt", "x")
    monkeypatch.setattr(atomic, "_fsync_file", lambda p: events.append(("fsync", str(p))))
    small.commit()
    kinds = [kind for kind, _ in events]
    assert kinds.count("fsync") == 3 and "syncfs" not in kinds


@pytest.mark.skipif(os.name != "posix", reason="the sweep needs to tell dead processes (POSIX)")
def test_commit_sweeps_temporary_files_a_killed_process_left(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    dead = int(done.stdout)
    out = tmp_path / "labels"
    out.mkdir()
    stale = out / f".img0001.txt.{dead}-0123456789ab.tmp"  # a killed process's staged file
    stale.write_text("half")
    live = [
        out / f".img0002.txt.{os.getpid()}-0123456789ab.tmp",  # this process: another Staging
        out / f".img0003.txt.{os.getppid()}-0123456789ab.tmp",  # a running process
    ]
    for path in live:
        os.link(stale, path)  # hard links keep old times: age must not matter
    mine = out / ".notes.tmp"  # not a name Staging makes: never touched
    mine.write_text("keep")
    staging = Staging()
    staging.write_text(out / "img0004.txt", "0 0.5 0.5 0.1 0.1\n")
    staging.commit()
    assert sorted(os.listdir(out)) == sorted([".notes.tmp", "img0004.txt", *(p.name for p in live)])


def test_safe_join_checks_the_root_as_it_is_now(tmp_path):
    """The root's resolution is cached; a root symlink pointed elsewhere later must not let a
    link under the new target lead out."""
    first, second, outside = tmp_path / "first", tmp_path / "second", tmp_path / "outside"
    for folder in (first, second, outside):
        folder.mkdir()
    root = tmp_path / "root"
    root.symlink_to(first, target_is_directory=True)
    assert safe_join(root, "a.txt") == root / "a.txt"  # caches root -> first
    root.unlink()
    root.symlink_to(second, target_is_directory=True)
    (second / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SinkError, match="symlink"):
        safe_join(root, "escape/x.txt")


def _counting(monkeypatch, module, names):
    """Count the calls of ``module``'s functions ``names`` (a dict name -> count)."""
    calls = dict.fromkeys(names, 0)
    for name in names:
        real = getattr(module, name)

        def call(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, call)
    return calls


def test_staging_a_file_is_one_create_one_write_and_draws_no_randomness(tmp_path, monkeypatch):
    """Issue 16: a YOLO run stages one label file per image. Each went through a Python file
    object (open, fstat, ioctl, lseek, write, close) and drew its temporary name from the
    operating system (``secrets``: a getrandom call, 60 us on this VM); now a file is one
    create, one write and one close, and its name comes from the staging's own generator."""
    staging = Staging()
    staging.write_text(tmp_path / "out" / "first.txt", "x")  # makes the folder
    calls = _counting(monkeypatch, os, ["urandom", "fdopen", "open", "write", "stat", "lstat"])
    for index in range(20):
        staging.write_bytes(tmp_path / "out" / f"{index}.txt", b"0 0.5 0.5 0.1 0.1\n")
    monkeypatch.undo()
    assert calls == {"urandom": 0, "fdopen": 0, "open": 20, "write": 20, "stat": 0, "lstat": 0}
    names = os.listdir(tmp_path / "out")
    assert len(set(names)) == 21 and all(name.endswith(".tmp") for name in names)
    staging.commit()
    assert (tmp_path / "out" / "7.txt").read_bytes() == b"0 0.5 0.5 0.1 0.1\n"
    assert sorted(os.listdir(tmp_path / "out")) == sorted(
        ["first.txt", *(f"{index}.txt" for index in range(20))]
    )


def test_a_failed_staged_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    staging = Staging()
    staging.write_text(tmp_path / "out" / "a.txt", "a")

    def full(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space"):
        staging.write_bytes(tmp_path / "out" / "b.txt", b"b")
    monkeypatch.undo()
    assert len(staging) == 1 and len(os.listdir(tmp_path / "out")) == 1
    staging.commit()
    assert os.listdir(tmp_path / "out") == ["a.txt"]


def test_staging_knows_the_folders_it_made(tmp_path):
    """A folder staging created holds nothing but its staged files until the commit, so a
    sink need not look for an existing file there (issue 16)."""
    (tmp_path / "old").mkdir()
    staging = Staging()
    staging.write_text(tmp_path / "old" / "a.txt", "a")
    staging.write_text(tmp_path / "new" / "sub" / "b.txt", "b")
    assert not staging.made(tmp_path / "old")
    assert staging.made(tmp_path / "new") and staging.made(tmp_path / "new" / "sub")
    staging.commit()
    assert not staging.made(tmp_path / "new" / "sub")  # it holds committed files now


def test_a_key_is_checked_without_building_path_objects(monkeypatch):
    """Issue 16: three sinks check every key (the exporter, COCO, YOLO); parsing it as a
    Windows path each time to find a drive or root cost more than the other rules together.
    The same keys are refused: a drive letter and a colon, or a leading separator (which also
    starts every UNC path)."""
    from pathlib import PureWindowsPath

    import vlmkit.atomic as atomic
    from vlmkit.atomic import relative_parts

    keys = ["a.png", "sub/b.png", "1:x.png", "é:x.png", "C:x", "c:/x", "ab:c.png", "x:", "a b:c"]
    keys += ["\\\\server\\share\\x.png", "//server/share/x.png", "\\x", "/x", "a\\b.png", ":x"]
    built = []

    class Counting(PureWindowsPath):
        def __new__(cls, *args):
            built.append(args)
            return PureWindowsPath(*args)

    monkeypatch.setattr(atomic, "PureWindowsPath", Counting, raising=False)
    refused = []
    for key in keys:
        try:
            relative_parts(key)
        except SinkError:
            refused.append(key)
    assert built == []
    assert refused == [k for k in keys if PureWindowsPath(k).anchor or k.startswith("/")]


def test_staging_reads_back_what_it_staged(tmp_path):
    staging = Staging()
    staging.write_text(tmp_path / "a.txt", "first")
    staging.write_text(tmp_path / "a.txt", "second")  # restaged: the first temporary file goes
    assert staging.read_bytes(tmp_path / "a.txt") == b"second"
    assert len(os.listdir(tmp_path)) == 1
    with pytest.raises(KeyError):
        staging.read_bytes(tmp_path / "b.txt")
    staging.discard()
    assert os.listdir(tmp_path) == []
