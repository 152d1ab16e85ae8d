"""Registers the built-in sinks through the ``vlmkit`` entry-point group, like any plugin.

Each factory imports its sink module only when the sink is built, so listing sinks stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlmkit.hookspecs import hookimpl
from vlmkit.records import SinkInfo
from vlmkit.sink import Sink


def _coco(out_dir: str | Path, **options: Any) -> Sink:
    from vlmkit.sinks.coco import CocoSink

    return CocoSink(out_dir, **options)


def _yolo(out_dir: str | Path, **options: Any) -> Sink:
    from vlmkit.sinks.yolo import YoloSink

    return YoloSink(out_dir, **options)


def _annotate(out_dir: str | Path, **options: Any) -> Sink:
    from vlmkit.sinks.annotate import AnnotateSink

    return AnnotateSink(out_dir, **options)


def _jsonl(out_dir: str | Path, **options: Any) -> Sink:
    from vlmkit.sinks.jsonl import JsonlSink

    return JsonlSink(out_dir, **options)


@hookimpl
def vlmkit_sinks() -> list[SinkInfo]:
    return [
        SinkInfo(
            name="coco",
            factory=_coco,
            accepts={"detect", "segment"},
            description="one COCO JSON (boxes; masks as exact RLE or polygons)",
        ),
        SinkInfo(
            name="yolo",
            factory=_yolo,
            accepts={"detect", "segment"},
            description="YOLO label files (boxes or one polygon per mask) and data.yaml",
        ),
        SinkInfo(
            name="annotate",
            factory=_annotate,
            accepts={"detect", "segment", "ocr", "describe"},
            description="annotated preview images (boxes, masks, labels in any script)",
        ),
        SinkInfo(
            name="jsonl",
            factory=_jsonl,
            accepts={"describe", "detect", "segment", "ocr", "video"},
            description="lossless results as ledger lines (results.jsonl)",
        ),
    ]
