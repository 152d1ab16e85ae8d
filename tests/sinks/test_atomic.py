"""Atomic writes leave the old file or the new one, never half of one, and no temp files."""

from __future__ import annotations

import os

import pytest

from vlmkit.atomic import atomic_open, atomic_write_bytes, atomic_write_text, safe_join
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
