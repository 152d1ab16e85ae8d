"""docs/try-offline.md works exactly as written: its two commands, run as a user runs them.

The commands are read from the page. Only three things differ from a terminal: the server's
trailing ``&`` is done with Popen, ``python`` / ``vlmkit`` are this environment's, and the
page's port is swapped for a free one so parallel test runs cannot collide. They run in a
temporary folder holding a copy of ``samples/``; the outputs are read back with pycocotools
(COCO) and supervision (YOLO).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vlmkit_gemini")

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "try-offline.md"
DOCS_PORT = "8765"


def page_commands() -> list[str]:
    section = PAGE.read_text(encoding="utf-8").split("## Two commands", 1)[1]
    block = re.search(r"```bash\n(.+?)\n```", section, re.DOTALL).group(1)
    return [line for line in block.splitlines() if line.strip()]


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def test_the_page_has_exactly_two_commands_and_the_first_runs_in_the_background():
    serve, label = page_commands()
    assert serve.startswith("python -m vlmkit_gemini.testing ") and serve.endswith(" &")
    assert label.startswith("vlmkit label samples/ ")
    assert f"base_url=http://127.0.0.1:{DOCS_PORT}" in label and f"--port {DOCS_PORT}" in serve


@pytest.mark.slow  # two fresh processes that import google-genai
def test_try_offline_page_works_as_written(tmp_path):
    serve, label = page_commands()
    port = _free_port()
    serve_argv = shlex.split(serve.removesuffix("&").replace(DOCS_PORT, port))
    label_argv = shlex.split(label.replace(DOCS_PORT, port))
    assert serve_argv[0] == "python" and label_argv[0] == "vlmkit"
    serve_argv[0] = sys.executable
    label_argv[0] = str(Path(sys.executable).with_name("vlmkit"))
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    env = {**os.environ, "VLMKIT_CACHE_DIR": str(tmp_path / "cache")}

    server = subprocess.Popen(
        serve_argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        done = subprocess.run(
            label_argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
        )
        again = subprocess.run(
            label_argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
        )
    finally:
        server.terminate()
        _, server_log = server.communicate(timeout=30)
    assert done.returncode == 0, done.stderr
    assert "done 4, failed 0, skipped 2" in done.stdout + done.stderr
    assert "resumed 4" in again.stdout + again.stderr
    assert "stopped after 4 generation requests" in server_log  # the re-run sent nothing

    out = tmp_path / "runs" / "offline"
    script = json.loads((tmp_path / "samples" / "offline-answers.json").read_text())
    from pycocotools.coco import COCO

    coco = COCO(str(out / "annotations.json"))
    assert len(coco.getImgIds()) == 4 and len(coco.getAnnIds()) == 10
    for image in coco.loadImgs(coco.getImgIds()):
        names = [coco.cats[a["category_id"]]["name"] for a in coco.imgToAnns[image["id"]]]
        expected = [item["label"] for item in script[Path(image["file_name"]).name]]
        assert sorted(names) == sorted(expected), image["file_name"]

    import supervision as sv

    dataset = sv.DetectionDataset.from_yolo(
        images_directory_path=str(tmp_path / "samples"),
        annotations_directory_path=str(out / "labels"),
        data_yaml_path=str(out / "data.yaml"),
    )
    assert sum(len(detections) for _, _, detections in dataset) == 10
    assert len(list((out / "annotated").glob("*.jpg"))) == 4


def test_the_pages_python_example_runs_as_written(monkeypatch):
    section = PAGE.read_text(encoding="utf-8").split("## Test your own code offline", 1)[1]
    code = re.search(r"```python\n(.+?)\n```", section, re.DOTALL).group(1)
    monkeypatch.chdir(ROOT)  # the example's image path is relative to the repository
    namespace: dict[str, object] = {}
    exec(compile(code, str(PAGE), "exec"), namespace)
    namespace["test_my_pipeline"]()
