"""The backend conformance check: run it against your backend to prove it plays by the rules.

>>> from vlmkit.testing import check_backend
>>> report = check_backend("my-backend", api_key="...")  # doctest: +SKIP
>>> report.assert_ok()  # doctest: +SKIP

It checks the declarations (convention, options, limits), runs every declared task on sample
images of awkward shapes and modes (RGB, RGBA, grayscale, an EXIF-rotated JPEG), checks each
result has the right type and lives in the original image's pixel space, checks undeclared
tasks are refused with :class:`~vlmkit.UnsupportedTask`, and that every error raised comes from
vlmkit's error tree.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from vlmkit.errors import ConfigError, UnsupportedTask, VlmkitError
from vlmkit.geometry import Convention
from vlmkit.records import TASKS, Option
from vlmkit.types import Description, Detections, Mask, OcrResult, Result, VideoResult

__all__ = ["ConformanceReport", "check_backend", "sample_images"]

_RESULT_TYPES: dict[str, type[Result]] = {
    "describe": Description,
    "detect": Detections,
    "segment": Detections,
    "ocr": OcrResult,
    "video": VideoResult,
}


@attrs.define
class ConformanceReport:
    """What :func:`check_backend` found. ``problems`` is empty when the backend conforms."""

    backend: str
    checked: list[str] = attrs.field(factory=list)
    problems: list[str] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def assert_ok(self) -> None:
        if self.problems:
            raise AssertionError(
                f"backend {self.backend!r} does not conform:\n- " + "\n- ".join(self.problems)
            )


def sample_images() -> dict[str, bytes]:
    """Small test images as encoded bytes: odd sizes, RGBA, grayscale, and an EXIF-rotated JPEG
    whose upright size is 48×64 (stored 64×48 with Orientation=6)."""
    from PIL import Image

    def encode(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **kwargs)
        return buffer.getvalue()

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (61, 97, 3), dtype=np.uint8), "RGB")
    rgba = Image.fromarray(rng.integers(0, 255, (64, 64, 4), dtype=np.uint8), "RGBA")
    gray = Image.fromarray(rng.integers(0, 255, (120, 40), dtype=np.uint8), "L")
    stored = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "rgb-97x61.png": encode(rgb, "PNG"),
        "rgba-64x64.png": encode(rgba, "PNG"),
        "gray-40x120.png": encode(gray, "PNG"),
        "exif-rotated.jpg": encode(stored, "JPEG", quality=90, exif=exif.tobytes()),
    }


def _sample_video(folder: Path) -> Path:
    import av

    path = folder / "sample.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(8):
            frame = np.full((48, 64, 3), (i * 30) % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _check_declarations(backend: Any, info: Any, report: ConformanceReport) -> None:
    try:
        Convention.parse(backend.convention)
    except ConfigError as err:
        report.problems.append(f"convention: {err}")
    for option in backend.options:
        if not isinstance(option, Option):
            report.problems.append(f"options must be vlmkit.Option records, got {option!r}")
    for name in ("concurrency", "batch_size"):
        value = getattr(backend, name)
        if not isinstance(value, int) or value < 1:
            report.problems.append(f"{name} must be a positive int, got {value!r}")
    if backend.max_images is not None and (
        not isinstance(backend.max_images, int) or backend.max_images < 1
    ):
        report.problems.append(f"max_images must be None or a positive int: {backend.max_images!r}")
    if not info.description:
        report.problems.append("BackendInfo.description is empty: `vlmkit backends` shows it")
    report.checked.append("declarations")


def _check_result(task: str, result: Any, size: tuple[int, int], where: str) -> list[str]:
    problems: list[str] = []
    expected = _RESULT_TYPES[task]
    if not isinstance(result, expected):
        return [f"{where}: {task} returned {type(result).__name__}, expected {expected.__name__}"]
    if result.provenance is None:
        problems.append(f"{where}: {task} result has no provenance")
    if isinstance(result, Detections):
        if result.image_size != size:
            problems.append(f"{where}: image_size {result.image_size} != original size {size}")
        xyxy = result.xyxy
        w, h = size
        if len(xyxy) and (
            (xyxy < 0).any() or (xyxy[:, [0, 2]] > w).any() or (xyxy[:, [1, 3]] > h).any()
        ):
            problems.append(f"{where}: boxes outside the image: {xyxy.tolist()}")
        for detection in result:
            if not isinstance(detection.label, str):
                problems.append(f"{where}: label is not a string: {detection.label!r}")
            if detection.mask is not None and not isinstance(detection.mask, Mask):
                problems.append(f"{where}: mask is not a vlmkit.Mask")
    if isinstance(result, (Description, OcrResult, VideoResult)) and not isinstance(
        result.text, str
    ):
        problems.append(f"{where}: text is not a string")
    return problems


def check_backend(
    backend: str,
    *,
    plugins: Iterable[object] = (),
    entrypoints: bool | Iterable[str] | None = None,
    tasks: Iterable[str] | None = None,
    **backend_options: Any,
) -> ConformanceReport:
    """Run the conformance check against the installed (or given) backend named ``backend``."""
    from vlmkit.media import load_image
    from vlmkit.session import Session

    report = ConformanceReport(backend=backend)
    with Session(
        backend, plugins=plugins, entrypoints=entrypoints, strict=True, **backend_options
    ) as session:
        info = session.backend_info
        _check_declarations(session.backend, info, report)
        wanted = set(tasks) if tasks is not None else set(TASKS)
        images = sample_images()
        with tempfile.TemporaryDirectory(prefix="vlmkit-conformance-") as tmp:
            for task in sorted(wanted):
                if task not in info.tasks:
                    try:
                        _run(session, task, next(iter(images.values())), Path(tmp))
                    except UnsupportedTask:
                        report.checked.append(f"{task}: refused")
                    except Exception as err:
                        report.problems.append(
                            f"{task} is not declared but calling it raised {type(err).__name__}"
                            f" instead of UnsupportedTask: {err}"
                        )
                    else:
                        report.problems.append(f"{task} is not declared but calling it worked")
                    continue
                samples = {"sample.mp4": None} if task == "video" else images
                for name, data in samples.items():
                    where = f"{task}({name})" if name else task
                    try:
                        result = _run(session, task, data, Path(tmp))
                    except VlmkitError as err:
                        report.problems.append(f"{where}: raised {type(err).__name__}: {err}")
                        continue
                    except Exception as err:
                        report.problems.append(
                            f"{where}: raised {type(err).__name__} (not a vlmkit error): {err}"
                        )
                        continue
                    size = load_image(data).size if data is not None else (0, 0)
                    report.problems.extend(_check_result(task, result, size, where))
                    report.checked.append(where)
    return report


def _run(session: Any, task: str, data: bytes | None, tmp: Path) -> Any:
    if task == "video":
        return session.video(_sample_video(tmp))
    if task == "describe":
        return session.describe(data)
    return getattr(session, task)(data)
