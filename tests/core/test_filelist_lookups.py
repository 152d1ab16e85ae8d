"""FileList lookups agree with each other, and comparing never raises where a list would not."""

from __future__ import annotations

from pathlib import Path

from vlmkit.filelist import FileList

FILES = ["out/labels/a.txt", "data.yaml"]


def test_index_and_count_find_what_in_finds():
    files = FileList(FILES)
    assert "data.yaml" in files  # 'in' takes the path as text
    # so must index and count (Sequence's contract: x in s  <=>  s.index(x) succeeds)
    assert files.index("data.yaml") == 1
    assert files.count("data.yaml") == 1
    assert files.index("out/labels//a.txt") == 0  # loosely written, as 'in' accepts it


def test_comparing_with_a_list_of_other_things_is_false_not_an_error():
    files = FileList(FILES)
    paths = [Path(file) for file in FILES]
    assert (paths == [None, 1]) is False  # what the list of Paths it replaces says
    assert (files == [None, 1]) is False
    assert files != ["data.yaml", 2]
