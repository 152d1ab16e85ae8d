"""Registers the built-in sinks through the ``vlmkit`` entry-point group, like any plugin.

Each factory imports its sink module only when the sink is built, so listing sinks stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlmkit.hookspecs import hookimpl
from vlmkit.records import Option, SinkInfo
from vlmkit.sink import Sink


def _as_given(value: Any) -> Any:
    """Option values the sink converts itself (a list or comma-separated text)."""
    return value


_CATEGORIES = Option(
    name="categories",
    type=_as_given,
    help="class names in order (comma-separated): fixes the class ids",
)


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
            accepts={"detect", "segment", "points"},
            description="one COCO JSON (boxes; masks as exact RLE or polygons; points: keypoints)",
            options=(
                Option(name="filename", default="annotations.json", help="the JSON file"),
                _CATEGORIES,
                Option(name="mask_format", choices=("rle", "polygon"), default="rle"),
                Option(name="indent", type=_as_given, help="indent the JSON (spaces)"),
            ),
        ),
        SinkInfo(
            name="yolo",
            factory=_yolo,
            accepts={"detect", "segment"},
            description="YOLO label files (boxes or one polygon per mask) and data.yaml",
            options=(
                _CATEGORIES,
                Option(
                    name="copy_images",
                    type=_as_given,
                    default="link",
                    help="link, copy or false: put the images next to the labels",
                ),
                Option(name="names", choices=("dict", "list"), default="dict"),
            ),
        ),
        SinkInfo(
            name="annotate",
            factory=_annotate,
            accepts={"detect", "segment", "ocr", "describe", "points"},
            description="annotated preview images (boxes, masks, labels in any script)",
            options=(
                Option(name="folder", default="annotated", help="sub-folder of the images"),
                _CATEGORIES,
                Option(name="font_path", input_file=True, help="a TrueType font to use"),
                Option(name="font_size", type=int, min=1),
                Option(name="thickness", type=int, min=1),
                Option(name="opacity", type=float, min=0, max=1, default=0.5),
                Option(name="quality", type=int, min=1, max=100, default=90),
                Option(name="masks", type=bool, default=True),
                Option(name="labels", type=bool, default=True),
                Option(
                    name="workers",
                    type=int,
                    min=1,
                    help="previews drawn at once (default: one per CPU, at most 4)",
                ),
            ),
        ),
        SinkInfo(
            name="jsonl",
            factory=_jsonl,
            accepts={"describe", "detect", "segment", "ocr", "video", "points"},
            description="lossless results as ledger lines (results.jsonl)",
            options=(Option(name="filename", default="results.jsonl", help="the JSONL file"),),
        ),
    ]
