"""`vlmkit label` with the openai backend, as a user runs it against a local vLLM server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import supervision as sv
from pycocotools.coco import COCO

from vlmkit.testing import oracle_samples

ROOT = Path(__file__).resolve().parents[2]


def test_label_a_folder_through_a_served_gemma(tmp_path, server):
    folder = tmp_path / "photos"
    folder.mkdir()
    samples = [s for s in oracle_samples(huge=False) if len(s.targets) == 2][:3]
    for sample in samples:
        (folder / sample.name).write_bytes(sample.data)
    env = {
        **os.environ,
        "VLMKIT_CACHE": "0",
        "VLMKIT_LOAD_PLUGINS": "vlmkit,vlmkit-openai",
        "OPENAI_API_KEY": "sk-cli-secret",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "vlmkit.cli", "label", str(folder), "--task", "detect",
        "--prompt", "red square, blue square", "--backend", "openai",
        "--model", "google/gemma-3-4b-it", "--config", f"base_url={server.url}",
        "--out", str(out), "--sink", "coco", "--sink", "yolo", "--no-progress",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"done {len(samples)}, failed 0" in done.stdout + done.stderr
    assert "sk-cli-secret" not in done.stdout + done.stderr + (out / "run.json").read_text()
    coco = COCO(str(out / "annotations.json"))
    assert len(coco.getImgIds()) == len(samples)
    assert len(coco.getAnnIds()) == 2 * len(samples)
    names = json.loads((out / "annotations.json").read_text())["categories"]
    assert {c["name"] for c in names} == {"red square", "blue square"}
    for sample in samples:
        image = next(i for i in coco.dataset["images"] if i["file_name"].endswith(sample.name))
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            label = coco.loadCats(ann["category_id"])[0]["name"]
            x, y, w, h = ann["bbox"]
            want = next(t.xyxy for t in sample.targets if t.label == label)
            assert np.abs(np.array([x, y, x + w, y + h]) - want).max() <= 3
    data = sv.DetectionDataset.from_yolo(
        images_directory_path=str(folder),
        annotations_directory_path=str(out / "labels"),
        data_yaml_path=str(out / "data.yaml"),
    )
    assert sum(len(d) for _, _, d in data) == 2 * len(samples)
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert f"resumed {len(samples)}" in again.stdout + again.stderr
    assert len(server.requests) == len(samples)  # the re-run sent nothing
