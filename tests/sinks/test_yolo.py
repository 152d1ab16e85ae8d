"""The YOLO sink's output reads back with supervision's DetectionDataset.from_yolo."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
import yaml

from tests.sinks.conftest import (
    H,
    W,
    box_det,
    detections,
    held_per_item,
    mask_det,
    two_part_mask,
    write_image,
)
from vlmkit.errors import ConfigError, SinkError
from vlmkit.sink import SinkItem
from vlmkit.sinks.yolo import YoloSink, mask_to_yolo_polygon
from vlmkit.types import Description, Mask


def write(out, items, **options):
    with YoloSink(out, **options) as sink:
        for item in items:
            sink.write(item)
    return sink


def read(images_dir, out, **kwargs):
    return sv.DetectionDataset.from_yolo(
        images_directory_path=str(images_dir),
        annotations_directory_path=str(out / "labels"),
        data_yaml_path=str(out / "data.yaml"),
        **kwargs,
    )


def iou(a, b):
    return float((a & b).sum() / (a | b).sum())


def ultralytics_label_path(image: Path) -> Path:
    """Ultralytics' rule (ultralytics.data.utils.img2label_paths): the last /images/ of an
    image path becomes /labels/, and the suffix .txt."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return Path(sb.join(str(image).rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt")


def test_default_layout_is_trainable_and_relocatable(tmp_path, scene, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="vlmkit.sinks.yolo"):
        files = write(out, scene["items"]).close()
    assert not caplog.records  # nothing to warn about
    for item in scene["items"]:  # hard links: no copy, no disk space
        assert os.path.samefile(out / "images" / item.key, item.image_path)
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data == {
        "train": "images",
        "val": "images",
        "nc": 3,
        "names": {0: "donut", 1: "pair", 2: "cat"},
    }  # no absolute path: the folder moves as a whole
    assert out / "data.yaml" == files[-1]  # the dataset-level file commits last
    moved = tmp_path / "moved"
    shutil.move(out, moved)
    # Ultralytics: resolves train against the YAML's folder and finds every label by its rule
    images = sorted(p for p in (moved / "images").rglob("*") if p.is_file())
    assert [p.relative_to(moved / "images").as_posix() for p in images] == ["a.png", "sub/b.png"]
    for image in images:
        assert ultralytics_label_path(image).is_file()
    # supervision: one folder level per call
    dataset = read(moved / "images", moved, force_masks=True)
    assert dataset.classes == ["donut", "pair", "cat"] and len(dataset) == 1
    sub = sv.DetectionDataset.from_yolo(
        str(moved / "images" / "sub"), str(moved / "labels" / "sub"), str(moved / "data.yaml")
    )
    ((_, _, got),) = list(sub)
    assert [sub.classes[i] for i in got.class_id] == list(scene["items"][1].result.labels)


def test_link_falls_back_to_copy_with_one_warning(tmp_path, scene, monkeypatch, caplog):
    def no_links(*_args):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="vlmkit.sinks.yolo"):
        sink = write(out, scene["items"])
    assert sink.images_copied == 2 and caplog.text.count("could not be hard-linked") == 1
    image = out / "images" / "sub" / "b.png"
    assert image.read_bytes() == scene["items"][1].image_path.read_bytes()
    assert not os.path.samefile(image, scene["items"][1].image_path)


def test_missing_images_still_get_labels_and_one_warning(tmp_path, caplog):
    out = tmp_path / "out"
    result = detections([box_det([1, 1, 5, 5], "a")])
    items = [
        SinkItem(key="gone.jpg", result=result, image_path=tmp_path / "nowhere.jpg"),
        SinkItem(key="none.jpg", result=result),
    ]
    with caplog.at_level(logging.WARNING, logger="vlmkit.sinks.yolo"):
        sink = write(out, items)
    assert sink.images_missing == 2
    assert caplog.text.count("could not be found") == 1 and "--image-root" in caplog.text
    assert (out / "labels" / "gone.txt").exists() and (out / "labels" / "none.txt").exists()
    assert not (out / "images").exists()


def test_labels_only_layout_warns_that_ultralytics_cannot_train(tmp_path, scene, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="vlmkit.sinks.yolo"):
        write(out, scene["items"], copy_images=False)
    assert not (out / "images").exists()
    assert "Ultralytics cannot train" in caplog.text
    assert "--sink-option yolo.copy_images=true" in caplog.text
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "donut", 1: "pair", 2: "cat"} and data["nc"] == 3
    assert data["path"] == str(scene["root"]) and data["train"] == "."
    for item in scene["items"]:  # Ultralytics looks next to the image: nothing there
        assert not ultralytics_label_path(item.image_path).exists()
    assert (out / "labels" / "sub" / "b.txt").exists()
    # supervision looks labels up by stem in one folder: point it at the mirrored subfolder
    dataset = sv.DetectionDataset.from_yolo(
        str(scene["root"] / "sub"), str(out / "labels" / "sub"), str(out / "data.yaml")
    )
    assert dataset.classes == ["donut", "pair", "cat"]
    ((_, _, got),) = list(dataset)
    expected = scene["items"][1].result
    assert np.abs(got.xyxy - expected.xyxy).max() <= 1.0 + 1e-3
    assert [dataset.classes[i] for i in got.class_id] == list(expected.labels)


def test_line_format(tmp_path):
    out = tmp_path / "out"
    write(out, [SinkItem(key="x.jpg", result=detections([box_det([16, 12, 48, 60], "a")]))])
    assert (out / "labels" / "x.txt").read_text() == "0 0.200000 0.300000 0.200000 0.400000\n"


def test_multi_part_mask_stays_one_instance(tmp_path, scene):
    out = tmp_path / "out"
    write(out, scene["items"][:1])
    lines = (out / "labels" / "a.txt").read_text().splitlines()
    assert len(lines) == 2  # ring + pair, each one line
    dataset = read(scene["root"], out, force_masks=True)
    ((_, _, got),) = list(dataset)
    assert list(got.class_id) == [0, 1]
    expected = scene["items"][0].result
    for mask, det in zip(got.mask, expected.items, strict=True):
        truth = det.mask.to_full((W, H))
        assert iou(mask.astype(bool), truth) >= 0.95
    ring = got.mask[0].astype(bool)
    assert not ring[50, 50]  # the hole stays a hole
    assert np.abs(got.xyxy - expected.xyxy).max() <= 1.0 + 1e-3


def test_bridged_polygon_fills_back_exactly_off_the_seams(tmp_path):
    full = two_part_mask()
    ring = mask_to_yolo_polygon(Mask.from_full(full), (W, H))
    filled = sv.polygon_to_mask(ring, (W, H)).astype(bool)
    assert (filled & full).sum() == full.sum()  # nothing lost
    assert (filled & ~full).sum() < 40  # only the 1-pixel seam is extra


def test_copy_images_layout_is_relocatable(tmp_path, scene):
    out = tmp_path / "out"
    sink = write(out, scene["items"], copy_images=True)
    assert (out / "images" / "sub" / "b.png").read_bytes() == scene["items"][
        1
    ].image_path.read_bytes()
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert "path" not in data and data["train"] == "images"
    dataset = read(out / "images", out, force_masks=True)
    assert len(dataset) == 1  # a.png at the top level; sub/ has its own folder
    assert sink.close()  # idempotent enough to call again


def test_link_images(tmp_path, scene):
    out = tmp_path / "out"
    write(out, scene["items"], copy_images="link")
    assert os.path.samefile(out / "images" / "a.png", scene["items"][0].image_path)


def test_same_stem_keys_are_refused(tmp_path):
    out = tmp_path / "out"
    result = detections([box_det([1, 1, 5, 5], "a")])
    with pytest.raises(SinkError, match="rename"):
        write(out, [SinkItem(key="x.jpg", result=result), SinkItem(key="x.png", result=result)])


def test_subfolders_do_not_collide(tmp_path):
    out = tmp_path / "out"
    a = detections([box_det([1, 1, 5, 5], "a")])
    b = detections([box_det([1, 1, 5, 5], "b")])
    write(out, [SinkItem(key="a/x.jpg", result=a), SinkItem(key="b/x.jpg", result=b)])
    assert (out / "labels" / "a" / "x.txt").read_text().startswith("0 ")
    assert (out / "labels" / "b" / "x.txt").read_text().startswith("1 ")


def test_empty_image_gets_empty_label_file_and_others_skip(tmp_path):
    out = tmp_path / "out"
    write(
        out,
        [
            SinkItem(key="e.jpg", result=detections([])),
            SinkItem(key="d.jpg", result=Description(text="x")),
        ],
    )
    assert (out / "labels" / "e.txt").read_text() == ""
    assert not (out / "labels" / "d.txt").exists()


def test_unencodable_label_becomes_replacement_character(tmp_path):
    out = tmp_path / "out"
    result = detections([box_det([1, 1, 5, 5], "\ud800"), box_det([2, 2, 6, 6], "ok")])
    write(out, [SinkItem(key="x.jpg", result=result)], categories=["\udfff"])
    text = (out / "data.yaml").read_bytes().decode("utf-8")  # valid UTF-8
    assert yaml.safe_load(text)["names"] == {0: "\ufffd", 1: "ok"}  # one class for both
    assert (out / "labels" / "x.txt").read_text().splitlines()[0].startswith("0 ")


def test_a_refused_item_leaves_no_trace(tmp_path):
    out = tmp_path / "out"
    result = detections([box_det([1, 1, 5, 5], "only-in-refused")])
    sink = YoloSink(out)
    sink.write(SinkItem(key="x.jpg", result=detections([box_det([1, 1, 5, 5], "a")])))
    with pytest.raises(SinkError, match="rename"):
        sink.write(SinkItem(key="x.png", result=result))
    sink.close()
    assert yaml.safe_load((out / "data.yaml").read_text())["names"] == {0: "a"}


def test_labels_and_keys_cannot_escape(tmp_path):
    out = tmp_path / "out"
    evil = detections([box_det([1, 1, 5, 5], "../../evil"), box_det([1, 1, 5, 5], "a/b")])
    write(out, [SinkItem(key="x.jpg", result=evil)])
    files = sorted(
        os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(tmp_path) for f in fs
    )
    assert files == ["data.yaml", os.path.join("labels", "x.txt")]
    assert "../../evil" in (out / "data.yaml").read_text()  # a label is only data
    for key in ("../x.jpg", "/abs/x.jpg", "a/../../x.jpg"):
        with pytest.raises(SinkError):
            write(out, [SinkItem(key=key, result=evil)])


def test_image_with_mask_and_image_path_for_segment(tmp_path):
    image = write_image(tmp_path / "in" / "m.png")
    det = mask_det(two_part_mask(), "pair")
    out = tmp_path / "out"
    write(out, [SinkItem(key="m.png", result=detections([det]), image_path=image)])
    ((_, _, got),) = list(read(tmp_path / "in", out, force_masks=True))
    assert len(got) == 1


def test_folders_are_checked_once_not_per_file(tmp_path, monkeypatch):
    # One label file and one image link per item go into the same two folders: staging makes
    # (or finds) each folder once, not with a stat and a mkdir per file (issue 16).
    images = [write_image(tmp_path / "in" / f"i{i}.png") for i in range(30)]
    calls: list[str] = []

    def counting(name):
        real = getattr(os, name)

        def call(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)

        return call

    sink = YoloSink(tmp_path / "out")
    for name in ("stat", "mkdir"):
        monkeypatch.setattr(os, name, counting(name))
    for path in images:
        result = detections([box_det([1, 1, 5, 5], "cat")])
        sink.write(SinkItem(key=path.name, result=result, image_path=path))
    written = list(calls)
    calls.clear()
    files = sink.close()
    monkeypatch.undo()
    # out/images/ (and out/), once; labels/ once too, now that label files are staged as
    # items arrive rather than at close
    assert written.count("mkdir") <= 4
    # none per image: in folders the staging made, no image can be in place already
    assert written.count("stat") <= 10  # the two folders made, whatever the number of images
    assert calls.count("mkdir") <= 2 and calls.count("stat") <= 10  # labels/, at close
    assert len(files) == 2 * len(images) + 1
    for path in images:
        assert os.path.samefile(tmp_path / "out" / "images" / path.name, path)
        assert (tmp_path / "out" / "labels" / f"{path.stem}.txt").read_text().startswith("0 ")


def test_key_folders_are_checked_once_not_per_file(tmp_path, monkeypatch):
    # Each item's label file and image go under labels/ and images/: the folders a key names
    # are checked for links out of the output folder once, not walked again for every file
    # (issue 16), and a link in a key's folder is still refused.
    import vlmkit.sinks.yolo as yolo

    images = [write_image(tmp_path / "in" / "sub" / f"i{i}.png") for i in range(30)]
    joins: list[str] = []
    real = yolo.safe_join

    def counting(root, relative):
        joins.append(str(relative))
        return real(root, relative)

    monkeypatch.setattr(yolo, "safe_join", counting)
    sink = YoloSink(tmp_path / "out")
    for path in images:
        result = detections([box_det([1, 1, 5, 5], "cat")])
        sink.write(SinkItem(key=f"sub/{path.name}", result=result, image_path=path))
    files = sink.close()
    assert len(joins) <= 4, joins
    assert len(files) == 2 * len(images) + 1
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "out" / "labels" / "evil").symlink_to(outside, target_is_directory=True)
    sink = YoloSink(tmp_path / "out")
    with pytest.raises(SinkError, match="outside"):
        sink.write(SinkItem(key="evil/x.png", result=detections([]), image_path=images[0]))


def test_label_files_are_staged_as_items_arrive_and_only_changed_ones_at_close(tmp_path):
    # Writing every label file at close put one file creation per image on the end of the
    # run, after the last answer (issue 16). They are staged as items arrive, with the ids
    # known then; close rewrites only the files whose ids changed (ids follow key order).
    images = [write_image(tmp_path / "in" / f"i{i}.png") for i in range(6)]
    sink = YoloSink(tmp_path / "out")
    for path in reversed(images):  # answers arrive in reverse key order
        label = "dog" if path.name == "i0.png" else "cat"  # the first key's label arrives last
        result = detections([box_det([1, 1, 5, 5], label)])
        sink.write(SinkItem(key=path.name, result=result, image_path=path))
    staged = [p.name for p in sink.staging.targets if p.suffix == ".txt"]
    assert sorted(staged) == sorted(f"i{i}.txt" for i in range(6))  # before close
    rewritten: list[str] = []
    write_text = sink.staging.write_text

    def spy(path, text):
        rewritten.append(Path(path).name)
        return write_text(path, text)

    sink.staging.write_text = spy
    sink.close()
    # On arrival "cat" got id 0 and "dog" id 1; in key order "dog" (i0) comes first: both
    # ids changed, so all six files are rewritten, then data.yaml is staged.
    assert sorted(rewritten) == sorted([*(f"i{i}.txt" for i in range(6)), "data.yaml"])
    names = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())["names"]
    assert names == {0: "dog", 1: "cat"}
    assert (tmp_path / "out" / "labels" / "i0.txt").read_text().startswith("0 ")
    assert (tmp_path / "out" / "labels" / "i3.txt").read_text().startswith("1 ")
    sink = YoloSink(tmp_path / "out2")
    for path in images:  # one label: the ids known on arrival are the final ones
        sink.write(SinkItem(key=path.name, result=detections([box_det([1, 1, 5, 5], "cat")])))
    rewritten.clear()
    write_text = sink.staging.write_text
    sink.staging.write_text = spy
    sink.close()
    assert rewritten == ["data.yaml"]


def test_an_item_is_one_label_file_and_one_image_link(tmp_path, monkeypatch):
    # Issue 16: per image the sink looked its label file and its image up (lstat, lstat,
    # stat), opened the image to see that it was readable and created the label file through
    # a Python file object: about twenty system calls for two files. In folders the staging
    # made itself nothing can be in place yet, so an item is one create and one write (its
    # label file) and one link (its image) — nothing looked up, nothing opened to check.
    import builtins

    images = [write_image(tmp_path / "in" / f"i{i}.png") for i in range(12)]

    def item(path):
        result = detections([box_det([1, 1, 5, 5], "cat")])
        return SinkItem(key=path.name, result=result, image_path=path)

    sink = YoloSink(tmp_path / "out")
    sink.write(item(images[0]))  # makes labels/ and images/
    names = ["open", "write", "link", "stat", "lstat", "urandom", "fdopen", "mkdir"]
    calls = dict.fromkeys([*names, "builtins.open"], 0)
    for name in names:
        real = getattr(os, name)

        def call(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, call)
    real_open = builtins.open

    def opened(*args, **kwargs):
        calls["builtins.open"] += 1
        return real_open(*args, **kwargs)

    monkeypatch.setattr(builtins, "open", opened)
    for path in images[1:]:
        sink.write(item(path))
    monkeypatch.undo()
    n = len(images) - 1
    assert calls == dict.fromkeys([*names, "builtins.open"], 0) | {
        "open": n,
        "write": n,
        "link": n,
    }
    files = sink.close()
    assert len(files) == 2 * len(images) + 1
    for path in images:
        assert os.path.samefile(tmp_path / "out" / "images" / path.name, path)
        assert (tmp_path / "out" / "labels" / f"{path.stem}.txt").read_text() == (
            "0 0.018750 0.025000 0.025000 0.033333\n"
        )


def test_an_image_already_in_place_is_kept_and_a_link_out_refused(tmp_path):
    # Where the folders existed before (a re-export into the same folder), the sink still
    # looks: an image already in place is not linked again, a link leading out is refused.
    images = [write_image(tmp_path / "in" / f"i{i}.png") for i in range(3)]
    items = [
        SinkItem(key=p.name, result=detections([box_det([1, 1, 5, 5], "cat")]), image_path=p)
        for p in images
    ]
    write(tmp_path / "out", items)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "out" / "labels" / "i1.txt").unlink()
    (tmp_path / "out" / "labels" / "i1.txt").symlink_to(outside / "i1.txt")
    sink = YoloSink(tmp_path / "out")
    sink.write(items[0])
    assert sink.staged_files() == [tmp_path / "out" / "labels" / "i0.txt"]  # image in place
    with pytest.raises(SinkError, match="outside"):
        sink.write(items[1])
    sink.close()
    assert not (outside / "i1.txt").exists()


def test_what_the_sink_holds_per_image_until_close(tmp_path):
    # Issue 16: memory flat in the number of images beyond what the files need. Until close
    # the sink needs, per image, the class ids of its objects (ids follow key order, fixed at
    # close) and which label file it claimed; the staging, each staged file's target. It held
    # each image's label lines, and the staging path objects and temporary names: 2.4 KB per
    # image here, 1.37 KB with paths as text; now the lines are read back from the staged file
    # in the rare case its ids change and the staging keeps a number per temporary name. The
    # label file's claim is keyed by the staging's own string for it, not a second string
    # (553 -> 482 B here).

    images = [write_image(tmp_path / "in" / f"image_{i:05d}.png", size=(4, 4)) for i in range(400)]
    items = [
        SinkItem(
            key=f"folder/{p.name}",
            result=detections([box_det([1, 1, 3, 3], "cat"), box_det([0, 0, 2, 2], "dog")]),
            image_path=p,
        )
        for p in images
    ]
    sink = YoloSink(tmp_path / "out")
    held = held_per_item(sink, items)
    assert held < 520, held
    sink.close()
    assert (tmp_path / "out" / "labels" / "folder" / "image_00007.txt").read_text().count("\n") == 2


def test_the_files_a_sink_wrote_are_held_as_compact_text(tmp_path):
    """What ``close`` returns — every label file and image link, two per image, which a run
    keeps in its summary — and what the sink keeps of it: as ``Path`` objects 0.66 KB per
    image here; as a :class:`vlmkit.FileList` (names, each folder once) 0.16 KB."""
    import gc
    import tracemalloc

    from vlmkit.filelist import FileList

    images = [write_image(tmp_path / "in" / f"image_{i:05d}.png", size=(4, 4)) for i in range(400)]
    sink = YoloSink(tmp_path / "out")
    for p in images:
        sink.write(
            SinkItem(key=f"folder/{p.name}", result=detections([box_det([1, 1, 3, 3], "cat")]),
                     image_path=p)
        )  # fmt: skip
    sink.prepare()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        files = sink.commit()
        gc.collect()
        held = (tracemalloc.get_traced_memory()[0] - base) / len(images)
    finally:
        tracemalloc.stop()
    assert isinstance(files, FileList)
    assert len(files) == 2 * len(images) + 1  # label files, image links, data.yaml
    assert tmp_path / "out" / "labels" / "folder" / "image_00007.txt" in files
    assert held < 300, held


def test_a_missing_yaml_library_fails_when_the_sink_is_made_not_after_the_last_answer(
    tmp_path, monkeypatch
):
    # data.yaml is written by PyYAML at the commit, after a run's last answer; the library is
    # imported when the sink is made, so a run without it stops before its first request.
    monkeypatch.setitem(sys.modules, "yaml", None)  # what an absent package looks like
    with pytest.raises(ConfigError, match="PyYAML"):
        YoloSink(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_commit_imports_nothing(tmp_path):
    # The commit after a run's last answer is on the run's clock: the one-time import of
    # PyYAML (14-26 ms) happens when the sink is made (issue 16).
    # 40 label files: the commit flushes them the way a run's commit does (one syncfs on Linux).
    script = (
        "import sys\n"
        "import vlmkit\n"
        "from vlmkit.sink import SinkItem\n"
        "from vlmkit.sinks.yolo import YoloSink\n"
        f"sink = YoloSink({str(tmp_path / 'out')!r}, copy_images=False)\n"
        'found = vlmkit.parse(\'[{"box_2d": [1, 2, 300, 400], "label": "cat"}]\', '
        "image_size=(64, 48))\n"
        "for i in range(40):\n"
        "    sink.write(SinkItem(key=f'img{i}.jpg', result=found))\n"
        "before = set(sys.modules)\n"
        "sink.close()\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]", done.stdout
