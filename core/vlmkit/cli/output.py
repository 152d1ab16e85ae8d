"""How the CLI shows things: results as short human lines or one JSON document, plugin tables.

Model-controlled text (labels, answers) is data: control characters are escaped before it
reaches a terminal, and it is never interpreted as markup.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vlmkit.cli.context import CliState, mask_secrets
from vlmkit.serialize import to_json

if TYPE_CHECKING:
    from vlmkit.plugins import PluginFailure
    from vlmkit.types import Box, Detections, OcrResult, Points, Result, VideoResult

__all__ = ["ResultPrinter", "format_time", "print_listing"]

log = logging.getLogger("vlmkit.cli")

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # keeps \t and \n
_LINE_BREAKS = re.compile(r"[\t\n]")
_MAX_LABEL_WIDTH = 32
_FINISH_HINTS = {
    "max_tokens": "the answer was cut off by the token limit; only complete items were kept",
    "safety": "the answer was withheld by a safety filter",
    "blocked": "the prompt was refused",
    "empty": "the model answered nothing",
}


def safe_text(text: str) -> str:
    """``text`` with terminal control characters (ANSI escapes included) shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def safe_line(text: str) -> str:
    return _LINE_BREAKS.sub(" ", safe_text(text))


def format_box(box: Box) -> str:
    return "[" + ", ".join(f"{v:.1f}" for v in box.xyxy) + "]"


def format_time(seconds: float) -> str:
    """``75.0`` → ``01:15``; ``3725`` → ``1:02:05``; a fraction is kept: ``1.5`` → ``00:01.5``."""
    whole = int(seconds)
    fraction = round(seconds - whole, 1)
    if fraction >= 1.0:
        whole, fraction = whole + 1, 0.0
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
    return text + (f"{fraction:.1f}"[1:] if fraction else "")


# -- results --------------------------------------------------------------------------------
def detection_lines(result: Detections) -> list[str]:
    labels = [safe_line(label) or "(no label)" for label in result.labels]
    width = min(max((len(label) for label in labels), default=0), _MAX_LABEL_WIDTH)
    lines = []
    for label, detection in zip(labels, result.items, strict=True):
        parts = [label.ljust(width), format_box(detection.box)]
        if detection.score is not None:
            parts.append(f"score={detection.score:.2f}")
        if detection.mask is not None:
            parts.append(f"mask={detection.mask.area}px")
        lines.append("  ".join(parts))
    return lines


def point_lines(result: Points) -> list[str]:
    labels = [safe_line(label) or "(no label)" for label in result.labels]
    width = min(max((len(label) for label in labels), default=0), _MAX_LABEL_WIDTH)
    lines = []
    for label, point in zip(labels, result.items, strict=True):
        line = f"{label.ljust(width)}  ({point.x:.1f}, {point.y:.1f})"
        lines.append(line + (f"  score={point.score:.2f}" if point.score is not None else ""))
    return lines


def ocr_lines(result: OcrResult, *, boxes: bool) -> list[str]:
    if boxes and any(block.box is not None for block in result.blocks):
        return [
            (format_box(block.box) + "  " if block.box is not None else "") + safe_line(block.text)
            for block in result.blocks
        ]
    return [safe_text(result.text)] if result.text else []


def video_lines(result: VideoResult) -> list[str]:
    if not result.events:
        return [safe_text(result.text)] if result.text else []
    lines = []
    for event in result.events:
        span = format_time(event.start)
        if event.end is not None:
            span += "–" + format_time(event.end)
        lines.append(f"{span} {safe_line(event.text or event.label or '')}".rstrip())
    return lines


def human_lines(result: Result, *, boxes: bool = False) -> list[str]:
    from vlmkit.types import Description, Detections, OcrResult, Points, VideoResult

    if isinstance(result, Detections):
        return detection_lines(result)
    if isinstance(result, Points):
        return point_lines(result)
    if isinstance(result, OcrResult):
        return ocr_lines(result, boxes=boxes)
    if isinstance(result, VideoResult):
        return video_lines(result)
    if isinstance(result, Description):
        return [safe_text(result.text)] if result.text else []
    return [safe_text(str(result))]


def notes(result: Result) -> list[str]:
    """What deserves a look: repairs and skipped items, an unusual finish, an empty answer."""
    from vlmkit.types import Detections, Points

    found = []
    if result.provenance is not None and result.provenance.cached:
        found.append("answer from the answer cache (no model call; --no-cache to ask again)")
    if not result.report.clean:
        found.append(f"parse report: {result.report.summary()}")
    finish = result.finish.value
    if finish != "stop":
        hint = _FINISH_HINTS.get(finish)
        found.append(f"finish reason: {finish}" + (f" ({hint})" if hint else ""))
    if isinstance(result, Detections) and not len(result):
        found.append("no detections")
    if isinstance(result, Points) and not len(result):
        found.append("no points")
    return found


def result_document(result: Result) -> dict[str, Any]:
    """``serialize.result_to_dict`` with secret-looking provenance options masked."""
    from vlmkit.serialize import result_to_dict

    document = result_to_dict(result)
    if document.get("provenance"):
        document["provenance"]["options"] = mask_secrets(document["provenance"]["options"])
    return document


class ResultPrinter:
    """Shows results as they arrive (human lines) or collects them into one JSON document.

    One input gives the result's dict; several give a list of ``{"input", "result"}``. With
    ``out`` the JSON goes to that file (human lines still go to stdout unless ``as_json``).
    """

    def __init__(
        self, state: CliState, *, as_json: bool, out: Path | None, several: bool, boxes: bool
    ) -> None:
        self.state = state
        self.as_json = as_json
        self.out = out
        self.several = several
        self.boxes = boxes
        self.collected: list[tuple[str, Result]] = []

    def add(self, source: str, result: Result) -> None:
        self.collected.append((source, result))
        usage = result.usage
        log.info(
            "%s: %d prompt + %d output tokens, %.2f s%s%s",
            source,
            usage.prompt_tokens,
            usage.output_tokens + usage.thinking_tokens,
            usage.latency_s,
            f", ${usage.cost_usd:.4f}" if usage.cost_usd is not None else "",
            " (from the cache)" if result.provenance and result.provenance.cached else "",
        )
        if self.as_json:
            for note in notes(result):
                self.state.warn(f"{source}: {note}" if self.several else note)
            return
        if self.several:
            typer.echo(f"==> {safe_line(source)} <==")
        for line in human_lines(result, boxes=self.boxes):
            typer.echo(line)
        for note in notes(result):
            self.state.warn(note)

    def finish(self) -> None:
        if not (self.as_json or self.out is not None):
            return
        if self.several:
            document: Any = [
                {"input": source, "result": result_document(result)}
                for source, result in self.collected
            ]
        else:
            document = result_document(self.collected[0][1])
        text = self.state.scrub(to_json(document, indent=2))
        if self.out is None:
            typer.echo(text)
            return
        from vlmkit.atomic import atomic_write_text

        self.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out, text + "\n")
        typer.echo(f"wrote {self.out}", err=True)


# -- plugin listings ------------------------------------------------------------------------
def _option_record(option: Any) -> dict[str, Any]:
    kind = getattr(option.type, "__name__", "value")
    row: dict[str, Any] = {"name": option.name, "type": kind if kind != "<lambda>" else "value"}
    if option.choices is not None:
        row["choices"] = list(option.choices)
    if option.default is not None:
        row["default"] = option.default
    if option.help:
        row["help"] = option.help
    return row


def _backend_options(info: Any) -> list[Any]:
    """Per-call options: as the record repeats them, else from the Backend class when the
    factory is one (never by building the backend)."""
    if info.options:
        return list(info.options)
    factory = info.factory
    options = getattr(factory, "options", ()) if isinstance(factory, type) else ()
    return list(options or ())


def _record(kind: str, info: Any) -> dict[str, Any]:
    what = "tasks" if kind == "backend" else "accepts"
    record = {"name": info.name, what: sorted(getattr(info, what))}
    if kind == "backend":
        record["media"] = sorted(info.media)
        record["track_routes"] = sorted(getattr(info, "track_routes", ()))  # Session.track
        record["settings"] = [_option_record(o) for o in info.settings]  # --config
        record["options"] = [_option_record(o) for o in _backend_options(info)]  # --option
    else:
        record["options"] = [_option_record(o) for o in info.options or ()]  # --sink-option
    record.update(description=info.description, plugin=info.plugin, distribution=info.distribution)
    return record


def _options_text(record: dict[str, Any]) -> str:
    """``config: model=..., base_url; option: temperature`` (backends) or the options alone."""
    groups = []
    for flag, key in (("config", "settings"), ("option", "options")):
        parts = []
        for row in record.get(key, ()):
            text = row["name"]
            if "choices" in row:
                text += "=" + "|".join(str(c) for c in row["choices"])
            elif "default" in row:
                text += f"={row['default']}"
            parts.append(text)
        if parts:
            groups.append(
                f"{flag}: " + ", ".join(parts) if "settings" in record else ", ".join(parts)
            )
    return "; ".join(groups)


def _conflict_text(kind: str, name: str, providers: Sequence[str]) -> str:
    both = " and ".join(repr(p) for p in providers)
    return f"{kind} {name!r} is registered by both {both}; uninstall one of them"


def print_listing(
    state: CliState,
    kind: str,
    infos: Mapping[str, Any],
    failures: Sequence[PluginFailure],
    conflicts: Mapping[tuple[str, str], Sequence[str]],
    *,
    as_json: bool,
) -> None:
    """The ``vlmkit backends`` / ``vlmkit sinks`` table (or JSON), then the problems."""
    conflict_rows: list[dict[str, Any]] = [
        {"kind": hook.removeprefix("vlmkit_").rstrip("s"), "name": name, "providers": list(p)}
        for (hook, name), p in conflicts.items()
    ]
    failure_rows: list[dict[str, Any]] = [
        {
            "plugin": f.plugin,
            "distribution": f.distribution,
            "error_type": f.error_type,
            "error": f.error,
        }
        for f in failures
    ]
    problems = len(failure_rows) + len(conflict_rows)
    if problems:
        state.warn(f"{problems} plugin problem(s); see the problems section")
    if as_json:
        document = {
            f"{kind}s": [_record(kind, info) for info in infos.values()],
            "problems": {"failures": failure_rows, "conflicts": conflict_rows},
        }
        typer.echo(state.scrub(to_json(document, indent=2)))
        return

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 400  # a pipe or file gets whole lines, not a table folded at 80
    if infos:
        table = Table(box=None, header_style="bold", pad_edge=False)
        columns = ["name", "tasks", "media"] if kind == "backend" else ["name", "accepts"]
        for column in [*columns, "options", "distribution", "description"]:
            table.add_column(column, overflow="fold")
        for info in infos.values():
            record = _record(kind, info)
            cells: list[str] = [record["name"], ", ".join(record[columns[1]])]
            if kind == "backend":
                cells.append(", ".join(record["media"]))
            cells.append(_options_text(record))
            cells.append(info.distribution or f"plugin {info.plugin}")
            cells.append(info.description)
            table.add_row(*(Text(state.scrub(str(c))) for c in cells))
        console.print(table)
    else:
        hint = "pip install vlmkit-gemini" if kind == "backend" else "pip install vlmkit"
        console.print(
            Text(f"no {kind}s installed ({hint}; is VLMKIT_LOAD_PLUGINS limiting what loads?)")
        )
    if not problems:
        return
    console.print()
    console.print(Text("problems", style="bold red"))
    if failure_rows:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("plugin", "distribution", "error"):
            table.add_column(column, overflow="fold")
        for row in failure_rows:
            error = f"{row['error_type']}: {row['error']}"
            row_cells = (row["plugin"], row["distribution"] or "-", error)
            table.add_row(*(Text(state.scrub(str(c))) for c in row_cells))
        console.print(table)
    for row in conflict_rows:
        console.print(Text(_conflict_text(row["kind"], row["name"], row["providers"])))
