"""FileList: the files a sink wrote, read like a list of paths, held as compact text."""

from __future__ import annotations

import pickle
import tracemalloc
from pathlib import Path

import pytest

from vlmkit.filelist import FileList

FILES = ["out/labels/a.txt", "out/labels/b.txt", "out/images/a.jpg", "data.yaml", "/abs/x.json"]


def test_it_reads_like_the_list_of_paths_it_was_made_from():
    files = FileList(FILES)
    paths = [Path(file) for file in FILES]
    assert len(files) == 5 and list(files) == paths
    assert files == paths and files == FILES and files == tuple(paths)  # equal to the list
    assert files != paths[:-1] and files != [*paths[:-1], Path("other")]
    assert files[0] == paths[0] and files[-1] == paths[-1] and isinstance(files[3], Path)
    assert files[1:3] == paths[1:3] and files[::-2] == paths[::-2]
    assert isinstance(files[1:3], FileList)
    assert list(files.texts()) == FILES
    assert Path("out/images/a.jpg") in files and "data.yaml" in files
    assert "out/labels/c.txt" not in files and 3 not in files
    assert files.index(Path("data.yaml")) == 3 and files.count(Path("data.yaml")) == 1
    with pytest.raises(IndexError):
        files[5]
    with pytest.raises(IndexError):
        files[-6]
    assert FileList() == [] and len(FileList()) == 0
    assert pickle.loads(pickle.dumps(files)) == files
    assert "FileList(['out/labels/a.txt'" in repr(files) and "5 files" in repr(files)
    with pytest.raises(TypeError):
        hash(files)


def test_it_holds_a_file_in_a_fraction_of_a_path_object():
    """Two million files (a million-image YOLO run) held as Path objects took 0.35 KB each."""
    texts = [f"/data/runs/street-2026/labels/part{i % 7}/img{i:07d}.txt" for i in range(20_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        as_paths = [Path(text) for text in texts]
        for path in as_paths:
            str(path)  # what reading them once caches
        paths_cost = (tracemalloc.get_traced_memory()[0] - before) / len(texts)
        del as_paths
        before = tracemalloc.get_traced_memory()[0]
        files = FileList(texts)
        list_cost = (tracemalloc.get_traced_memory()[0] - before) / len(texts)
    finally:
        tracemalloc.stop()
    assert len(files) == len(texts)
    assert list_cost < 100 < 250 < paths_cost, (list_cost, paths_cost)


def test_paths_written_loosely_compare_as_paths_do():
    files = FileList(["out//labels/a.txt", "./data.yaml", "out/./images/b.jpg", "out/x/"])
    assert list(files.texts()) == ["out/labels/a.txt", "data.yaml", "out/images/b.jpg", "out/x"]
    assert files == [Path("out/labels/a.txt"), "data.yaml", "out/images//b.jpg", Path("out/x")]
    assert "out/labels//a.txt" in files and Path("./data.yaml") in files
    assert "out/labels" not in files
