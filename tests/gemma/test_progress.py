"""gemma-local never draws transformers' own bars over vlmkit's progress bar.

transformers draws "Loading weights" (and "Writing model shards" when a checkpoint is saved) on
stderr with tqdm; during `vlmkit label` that tore vlmkit's bar. Loading is logged instead.
"""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("transformers")

import vlmkit
from vlmkit_gemma.testing import build_tiny_gemma3


def test_loading_and_building_draw_no_transformers_bar(tmp_path, capfd, caplog, photo):
    folder = build_tiny_gemma3(tmp_path / "g3", script="hi")
    with (
        caplog.at_level(logging.INFO, logger="vlmkit_gemma"),
        vlmkit.Session(backend="gemma-local", model=str(folder), device="cpu") as session,
    ):
        assert session.describe(photo).text == "hi"
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "Writing model shards" not in err
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("gemma-local: loading ") for m in messages)
    assert any(m.startswith("gemma-local: loaded ") for m in messages)
