"""Stable, complete datasets: deterministic class and image ids, every -l label a class, no
plausible empty dataset when nothing was answered, COCO annotations evaluable as results."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

import vlmkit
from vlmkit import Generation
from vlmkit.testing import scripted_plugin

RED, BLUE = (200, 10, 10), (10, 10, 200)


def _answer(request):
    red = request.images[0].original.image.getpixel((0, 0))[0] > 100
    label, score = ("cat", ', "score": 0.875') if red else ("astronaut", "")
    return f'[{{"box_2d": [100, 200, 500, 600], "label": "{label}"{score}}}]'


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (60, 40), RED).save(folder / "a.png")
    Image.new("RGB", (60, 40), BLUE).save(folder / "b.png")
    return folder


def _label(inputs, out, prompt):
    with vlmkit.Session(
        "scripted", plugins=[scripted_plugin(_answer)], entrypoints=["vlmkit"]
    ) as s:
        run = s.run("detect", inputs, prompt, out_dir=out, sinks=["coco", "yolo"], concurrency=1)
        list(run)
    return run


@pytest.mark.parametrize("prompt", [["unicorn", "cat", "astronaut"], "animals"])
def test_ids_do_not_depend_on_the_order_answers_arrived(tmp_path, photos, prompt):
    # one item at a time, in argument order: the two runs finish the images in opposite orders
    _label([photos / "b.png", photos / "a.png"], tmp_path / "one", prompt)
    _label([photos / "a.png", photos / "b.png"], tmp_path / "two", prompt)
    for name in ("annotations.json", "data.yaml", "labels/a.txt", "labels/b.txt"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()
    coco = json.loads((tmp_path / "one" / "annotations.json").read_text())
    assert [(i["id"], i["file_name"]) for i in coco["images"]] == [(1, "a.png"), (2, "b.png")]
    names = yaml.safe_load((tmp_path / "one" / "data.yaml").read_text())["names"]
    if isinstance(prompt, list):  # -l order, all of them: unicorn has no instance and stays
        assert names == {0: "unicorn", 1: "cat", 2: "astronaut"}
        assert [c["name"] for c in coco["categories"]] == ["unicorn", "cat", "astronaut"]
    else:  # first appearance, images in key order
        assert names == {0: "cat", 1: "astronaut"}
    astronaut = next(k for k, v in names.items() if v == "astronaut")
    assert (tmp_path / "one" / "labels" / "b.txt").read_text().startswith(f"{astronaut} ")


def test_coco_annotations_load_as_results_and_evaluate(tmp_path, photos):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    _label([photos], tmp_path / "out", ["cat", "astronaut"])
    path = tmp_path / "out" / "annotations.json"
    data = json.loads(path.read_text())
    scores = {a["image_id"]: a["score"] for a in data["annotations"]}
    assert scores == {1: 0.875, 2: 1.0}  # the model's confidence, else 1.0
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(path))
        results = truth.loadRes(data["annotations"])
        evaluation = COCOeval(truth, results, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # the run's own answers match themselves


def test_a_run_with_no_answer_leaves_no_dataset(tmp_path, photos, caplog):
    out = tmp_path / "out"
    plugin = scripted_plugin(vlmkit.AuthError("bad key"))
    session = vlmkit.Session("scripted", plugins=[plugin], entrypoints=["vlmkit"])
    with session as s, pytest.raises(vlmkit.AuthError), caplog.at_level("WARNING"):
        list(s.run("detect", [photos], ["cat"], out_dir=out, sinks=["coco", "yolo"]))
    blocked = Generation(text=None, finish=vlmkit.FinishReason.SAFETY)
    with vlmkit.Session(
        "scripted", plugins=[scripted_plugin(blocked)], entrypoints=["vlmkit"]
    ) as s:
        run = s.run("detect", [photos], ["cat"], out_dir=out, sinks=["coco", "yolo"])
        list(run)
    assert run.summary.failed == 2
    assert not (out / "annotations.json").exists() and not (out / "data.yaml").exists()
    assert not (out / "labels").exists()
    assert "no sink file was written" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == [".vlmkit.lock", "results.jsonl", "run.json"]


def test_an_empty_input_is_a_warning_and_a_non_zero_exit(tmp_path):
    from vlmkit.cli import app

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "LICENSES.md").write_text("MIT")
    result = CliRunner().invoke(
        app,
        ["--plugin", "tests.cli.scripted_backends", "label", str(docs), "-b", "scripted",
         "--out", str(tmp_path / "out"), "-s", "coco", "--no-progress"],
        env={"VLMKIT_LOAD_PLUGINS": "vlmkit", "VLMKIT_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "no images found" in result.stderr
    assert f"{docs / 'LICENSES.md'} (not an image file)" in result.stdout
    assert not (tmp_path / "out" / "annotations.json").exists()
