"""The backend conformance check: run it against your backend to prove it plays by the rules.

>>> from vlmkit.testing import check_backend
>>> report = check_backend("my-backend", api_key="...")  # doctest: +SKIP
>>> report.assert_ok()  # doctest: +SKIP

It checks the declarations (convention, options, limits), runs every declared task on the
oracle's awkward images (odd sizes, EXIF-rotated, RGBA, tiny, huge, grayscale), checks each
result has the right type, and — for detect and segment — that every box lands within
:func:`~vlmkit.testing.oracle.tolerance_px` of the truth in the original image (so your fake
model must answer with :func:`~vlmkit.testing.true_answer`). It checks undeclared tasks are
refused with :class:`~vlmkit.UnsupportedTask`, and that every error raised comes from vlmkit's
error tree. By default only the plugin that provides the backend (and vlmkit's built-in sinks)
is loaded: an unrelated broken plugin does not fail your check.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from vlmkit.errors import ConfigError, UnsupportedTask, VlmkitError
from vlmkit.geometry import Convention
from vlmkit.records import TASKS, Option
from vlmkit.testing.oracle import TARGET_COLORS, OracleSample, oracle_samples, tolerance_px
from vlmkit.types import Description, Detections, Mask, OcrResult, Points, Result, VideoResult

__all__ = ["ConformanceReport", "check_backend", "sample_images"]

_RESULT_TYPES: dict[str, type[Result]] = {
    "describe": Description,
    "detect": Detections,
    "segment": Detections,
    "ocr": OcrResult,
    "video": VideoResult,
    "points": Points,
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
    """The awkward test images of :func:`~vlmkit.testing.oracle_samples` as encoded bytes:
    odd sizes, an EXIF-rotated JPEG (upright 90×130), RGBA, tiny, huge and grayscale."""
    return {sample.name: sample.data for sample in oracle_samples()}


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
    for name in ("thread_safe", "sends_image_files"):
        if not isinstance(getattr(backend, name), bool):
            report.problems.append(f"{name} must be True or False, got {getattr(backend, name)!r}")
    if info.options and {o.name for o in info.options} != {o.name for o in backend.options}:
        report.problems.append(
            "BackendInfo.options lists other options than the backend declares: "
            f"{sorted(o.name for o in info.options)} vs {sorted(o.name for o in backend.options)}"
        )
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
    if isinstance(result, Points):
        if result.image_size != size:
            problems.append(f"{where}: image_size {result.image_size} != original size {size}")
        xy, (w, h) = result.xy, size
        if len(xy) and ((xy < 0).any() or (xy[:, 0] > w).any() or (xy[:, 1] > h).any()):
            problems.append(f"{where}: points outside the image: {xy.tolist()}")
    if isinstance(result, (Description, OcrResult, VideoResult)) and not isinstance(
        result.text, str
    ):
        problems.append(f"{where}: text is not a string")
    return problems


def _check_accuracy(
    sample: OracleSample, result: Detections | Points, where: str
) -> tuple[list[str], bool]:
    """Compare boxes (or points, with the targets' centres) with the sample's targets; also say
    whether the answer named any target."""
    problems: list[str] = []
    tolerance = tolerance_px(sample.size)
    named = any(label in TARGET_COLORS for label in result.labels)
    for target in sample.targets:
        if isinstance(result, Points):
            x0, y0, x1, y1 = target.xyxy
            target = attrs.evolve(target, xyxy=((x0 + x1) / 2, (y0 + y1) / 2) * 2)
            boxes = [(p.x, p.y, p.x, p.y) for p in result if p.label == target.label]
        else:
            boxes = [d.box.xyxy for d in result if d.label == target.label]
        if not boxes:
            problems.append(f"{where}: the {target.label} at {list(target.xyxy)} was not found")
            continue
        errors = [float(np.max(np.abs(np.asarray(b) - target.xyxy))) for b in boxes]
        best = int(np.argmin(errors))
        if errors[best] > tolerance:
            problems.append(
                f"{where}: the {target.label} landed {errors[best]:.0f} px from the truth (got "
                f"{np.round(boxes[best], 1).tolist()}, expected {list(target.xyxy)}, tolerance "
                f"{tolerance:.1f} px): check the declared convention, image_policy and "
                "Generation.transforms"
            )
    extra = sorted({d.label for d in result} - {t.label for t in sample.targets})
    if named and extra:
        problems.append(f"{where}: boxes for things that are not in the image: {extra}")
    return problems, named


def check_backend(
    backend: str,
    *,
    plugins: Iterable[object] = (),
    entrypoints: bool | Iterable[str] | None = None,
    tasks: Iterable[str] | None = None,
    accuracy: bool = True,
    huge: bool = True,
    **backend_options: Any,
) -> ConformanceReport:
    """Run the conformance check against the installed (or given) backend named ``backend``.

    ``plugins``: plugins to register (a backend not installed as a distribution); then no
    installed plugin loads unless ``entrypoints`` says so. ``entrypoints`` (default): only the
    installed plugin providing ``backend`` and vlmkit's built-ins; ``True``: every installed
    plugin, strictly. ``tasks``: the tasks to run (default: all of them; undeclared ones must be
    refused). ``accuracy=False`` skips the oracle comparison of boxes (for a backend whose
    model cannot be faked, such as a random test checkpoint); ``huge=False`` leaves out the
    3001×2003 sample. Other keywords go to the backend's factory.
    """
    from vlmkit.media import load_image
    from vlmkit.session import Session
    from vlmkit.testing._select import plugin_under_test

    plugins = tuple(plugins)
    if entrypoints is None:
        entrypoints = False if plugins else plugin_under_test(backend)
    report = ConformanceReport(backend=backend)
    with Session(
        backend, plugins=plugins, entrypoints=entrypoints, strict=True, **backend_options
    ) as session:
        info = session.backend_info
        _check_declarations(session.backend, info, report)
        wanted = set(tasks) if tasks is not None else set(TASKS)
        oracle = {sample.name: sample for sample in oracle_samples(huge=huge)}
        images = {name: sample.data for name, sample in oracle.items()}
        named = False
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
                    found = _check_result(task, result, size, where)
                    if accuracy and not found and isinstance(result, (Detections, Points)):
                        off, hit = _check_accuracy(oracle[name], result, where)
                        found.extend(off)
                        named = named or hit
                    report.problems.extend(found)
                    report.checked.append(where)
        located = wanted & set(info.tasks) & {"detect", "segment", "points"}
        if accuracy and located and not named:
            report.problems = [p for p in report.problems if "was not found" not in p]
            report.problems.append(
                "boxes were not checked: no answer named an oracle target. Make your fake model "
                "answer with vlmkit.testing.true_answer(image_it_received, convention) (see "
                "docs/writing-a-backend.md), or pass accuracy=False"
            )
        elif accuracy and located:
            report.checked.append("boxes: within tolerance of the oracle")
    return report


def _run(session: Any, task: str, data: bytes | None, tmp: Path) -> Any:
    if task == "video":
        return session.video(_sample_video(tmp))
    if task in ("detect", "segment", "points"):
        return getattr(session, task)(data, list(TARGET_COLORS))
    return getattr(session, task)(data)
