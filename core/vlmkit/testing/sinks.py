"""The sink conformance check: run it against your sink to prove it plays by the rules.

>>> from vlmkit.testing import check_sink
>>> check_sink("csvboxes").assert_ok()  # doctest: +SKIP

It checks the declarations (a description, the accepted tasks, declared options), then runs
every task the sink accepts through a real run (a scripted backend answering like a perfect
model on the oracle's awkward images) into a temporary folder, and checks that the run
finished, that every file the sink wrote lies inside the output folder, that the ledger is
untouched, and that the sink is two-phase (:class:`vlmkit.StagedSink`), so its files appear
with everyone else's at the commit and a failed run changes none of them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vlmkit.testing.conformance import ConformanceReport
from vlmkit.testing.oracle import TARGET_COLORS, oracle_samples, true_answer

__all__ = ["check_sink"]


def _perfect(request: Any) -> str:
    if request.task == "video":
        return "00:00 - 00:01 a grey screen"
    if request.task == "describe":
        return "A red and a blue square on grey."
    if request.task == "ocr":
        return '[{"text": "SQUARES", "box_2d": [100, 100, 300, 900]}]' if request.json else "SQ"
    return true_answer(request.images[0].image, "yxyx-1000", task=request.task)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def check_sink(
    sink: str,
    *,
    plugins: Iterable[object] = (),
    entrypoints: bool | Iterable[str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> ConformanceReport:
    """Run the sink conformance check against the installed (or given) sink named ``sink``.

    ``plugins``: plugins to register (a sink not installed as a distribution); then only
    vlmkit's built-ins load from entry points unless ``entrypoints`` says otherwise. By default
    only the installed plugin providing ``sink`` loads. ``options``: the sink's options.
    """
    from vlmkit.session import Session
    from vlmkit.sink import StagedSink
    from vlmkit.testing._select import CORE_ENTRY_POINT, plugin_under_test
    from vlmkit.testing.scripted import scripted_plugin

    plugins = tuple(plugins)
    if entrypoints is None:
        entrypoints = (CORE_ENTRY_POINT,) if plugins else plugin_under_test(sink, kind="sink")
    report = ConformanceReport(backend=f"sink {sink}")
    backend = scripted_plugin(_perfect, name="vlmkit-check-sink")
    with (
        Session(
            "vlmkit-check-sink",
            plugins=(backend, *plugins),
            entrypoints=entrypoints,
            strict=True,
        ) as session,
        tempfile.TemporaryDirectory(prefix="vlmkit-check-sink-") as tmp,
    ):
        info = session.sink_info(sink)
        if not info.description:
            report.problems.append("SinkInfo.description is empty: `vlmkit sinks` shows it")
        if info.options is None:
            report.problems.append(
                "SinkInfo.options is not declared: declare the options (even none: options=()) "
                "so the core can check them"
            )
        built = session.sink(sink, Path(tmp) / "probe", **dict(options or {}))
        if not isinstance(built, StagedSink):
            report.problems.append(
                f"{type(built).__name__} is not a vlmkit.StagedSink: its files show before the "
                "run commits, and a failed run can leave them half-written"
            )
        report.checked.append("declarations")
        inputs = Path(tmp) / "inputs"
        inputs.mkdir()
        for sample in oracle_samples(huge=False):
            (inputs / sample.name).write_bytes(sample.data)
        for task in sorted(info.accepts - {"video"}):
            root = Path(tmp) / task
            out = root / "out"
            prompt = list(TARGET_COLORS) if task in ("detect", "segment") else None
            try:
                outcomes = list(
                    session.run(
                        task,
                        [inputs],
                        prompt,
                        out_dir=out,
                        sinks=[sink],
                        sink_options={sink: dict(options or {})},
                    )
                )
            except Exception as err:
                report.problems.append(f"{task}: the run failed: {type(err).__name__}: {err}")
                continue
            failed = [o for o in outcomes if o.status != "done"]
            if failed:
                report.problems.append(f"{task}: {len(failed)} item(s) failed: {failed[0]}")
            ledger = out / "results.jsonl"
            lines = ledger.read_text(encoding="utf-8").splitlines() if ledger.exists() else []
            if len(lines) != len(outcomes):
                report.problems.append(f"{task}: the ledger was changed by the sink")
            outside = [
                str(path)
                for path in out.parent.rglob("*")
                if path.is_file()
                and not _inside(path, out)
                and not _inside(path, inputs)
                and "probe" not in path.parts
            ]
            if outside:
                report.problems.append(
                    f"{task}: files written outside the output folder: {outside}"
                )
            report.checked.append(f"{task}: run")
    return report
