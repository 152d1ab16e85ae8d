"""Rendering evaluations: rows for a table, a Markdown report and a PNG chart.

The chart (quality against cost per image, one point per setting) is drawn with Pillow, which
the core already depends on: one scatter plot does not justify matplotlib (tens of megabytes
and a font cache) as a dependency or a second install step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vlmkit.evaluation.evaluate import Evaluation
    from vlmkit.evaluation.pilot import PilotReport

__all__ = [
    "chart_png",
    "format_value",
    "markdown_table",
    "pilot_table",
    "summary_rows",
    "write_pilot_report",
]

#: Metric keys, how they are shown, and whether higher is better.
METRICS: dict[str, tuple[str, bool]] = {
    "map50": ("mAP@.50", True),
    "map": ("mAP@[.50:.95]", True),
    "map75": ("mAP@.75", True),
    "precision": ("precision@.50", True),
    "recall": ("recall@.50", True),
    "f1": ("F1@.50", True),
    "cer": ("CER", False),
    "wer": ("WER", False),
    "cost_per_image": ("cost/image", False),
    "latency_p50_s": ("latency p50", False),
}


def format_value(key: str, value: Any) -> str:
    """A metric as people read it: percentages, dollars, seconds; ``-`` when unknown."""
    if value is None:
        return "-"
    if key in ("cost_per_image", "cost_usd"):
        return f"${value:.5f}"
    if key.startswith("latency"):
        return f"{value:.2f} s"
    if key in ("map", "map50", "map75", "precision", "recall", "f1", "cer", "wer"):
        return f"{100 * value:.1f} %"
    return str(value)


def summary_rows(evaluation: Evaluation) -> list[tuple[str, str]]:
    """``(what, value)`` rows: quality first, then the run's facts."""
    d = evaluation.to_dict()
    rows: list[tuple[str, str]] = [("images", str(d["images"]))]
    if evaluation.detection is not None:
        rows.append(("iou type", d["iou_type"]))
        for key in ("map", "map50", "map75", "precision", "recall", "f1"):
            rows.append((METRICS[key][0], format_value(key, d[key])))
        rows.append(
            (
                "hits / misses / extras",
                f"{d['true_positives']} / {d['false_negatives']} / {d['false_positives']}",
            )
        )
    if evaluation.ocr is not None:
        rows += [("CER", format_value("cer", d["cer"])), ("WER", format_value("wer", d["wer"]))]
    rows += [
        ("failed", f"{d['failed']} ({d['parse_failures']} parse failures)"),
        ("repairs", str(d["repairs"])),
        ("truncations", str(d["truncations"])),
        (
            "tokens",
            f"{d['tokens']} ({d['prompt_tokens']} prompt, {d['output_tokens']} output, "
            f"{d['thinking_tokens']} thinking)",
        ),
        ("cost/image", format_value("cost_per_image", d["cost_per_image"])),
        (
            "latency p50 / p95",
            f"{format_value('latency', d['latency_p50_s'])} / "
            f"{format_value('latency', d['latency_p95_s'])}",
        ),
    ]
    return rows


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_escape(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(_escape(str(c)) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# -- the chart ------------------------------------------------------------------------------
_WIDTH, _HEIGHT, _MARGIN = 900, 600, 90
_COLOURS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10**exponent
        if top >= value:
            return top
    return 10 ** (exponent + 1)


def chart_png(
    path: Path,
    points: Sequence[tuple[str, float | None, float | None]],
    *,
    quality_name: str,
    title: str,
) -> Path:
    """Scatter ``(name, cost per image, quality)``: cost on x, quality (0–1) on y; a setting
    with unknown cost is drawn at the left edge with ``cost ?`` in its label."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (_WIDTH, _HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1 has a single bitmap size
        font = ImageFont.load_default()
    left, top, right, bottom = _MARGIN, 50, _WIDTH - 40, _HEIGHT - _MARGIN
    draw.text((left + 120, 8), title, fill="black", font=font)
    draw.rectangle((left, top, right, bottom), outline="black")
    costs = [c for _, c, _ in points if c is not None]
    x_max = _nice_max(max(costs) * 1.1) if costs else 1.0
    y_max = 1.0
    for step in range(6):
        fraction = step / 5
        y = bottom - fraction * (bottom - top)
        draw.line((left, y, right, y), fill=(225, 225, 225))
        draw.text((left - 50, y - 8), f"{100 * fraction * y_max:.0f} %", fill="black", font=font)
        x = left + fraction * (right - left)
        draw.line((x, top, x, bottom), fill=(225, 225, 225))
        draw.text((x - 30, bottom + 8), f"${fraction * x_max:.4g}", fill="black", font=font)
    draw.rectangle((left, top, right, bottom), outline="black")
    draw.text(
        ((left + right) // 2 - 60, bottom + 35), "cost per image (USD)", fill="black", font=font
    )
    draw.text((10, top - 24), quality_name, fill="black", font=font)
    for index, (name, cost, quality) in enumerate(points):
        colour = _COLOURS[index % len(_COLOURS)]
        x = left + (cost / x_max if cost is not None else 0.0) * (right - left)
        y = bottom - (quality or 0.0) / y_max * (bottom - top)
        draw.ellipse((x - 7, y - 7, x + 7, y + 7), fill=colour, outline="black")
        label = f"{index + 1}. {name}" + ("" if cost is not None else " (cost ?)")
        text_x = x + 10 if x < right - 250 else x - 10 - draw.textlength(label, font=font)
        draw.text((text_x, y - 20 - 14 * (index % 2)), label, fill=colour, font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    import io

    from vlmkit.atomic import atomic_write_bytes

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return path


# -- the pilot ------------------------------------------------------------------------------
_DETECTION_COLUMNS = ("map50", "map", "f1", "precision", "recall")
_OCR_COLUMNS = ("cer", "wer")


def pilot_table(report: PilotReport) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the ranked table, best first."""
    ocr = any(r.evaluation is not None and r.evaluation.ocr is not None for r in report.rows)
    quality = _OCR_COLUMNS if ocr else _DETECTION_COLUMNS
    header = ["#", "setting", *(METRICS[k][0] for k in quality)]
    header += ["cost/image", "latency p50", "failed", "images"]
    rows = []
    for index, row in enumerate(report.rows, start=1):
        cells = [str(index), row.setting.title]
        if row.evaluation is None:
            rows.append([*cells, *["-"] * (len(quality) + 2), f"error: {row.error}", "-"])
            continue
        d = row.evaluation.to_dict()
        cells += [format_value(k, d.get(k)) for k in quality]
        cells += [
            format_value("cost_per_image", d["cost_per_image"]),
            format_value("latency_p50_s", d["latency_p50_s"]),
            f"{d['failed']} ({d['parse_failures']} parse)",
            str(d["images"]),
        ]
        rows.append(cells)
    return header, rows


def write_pilot_report(report: PilotReport) -> None:
    """``report.md`` (ranked table, the winner's command), ``report.json`` and ``chart.png``
    in the pilot's folder."""
    import shlex

    from vlmkit.atomic import atomic_write_text
    from vlmkit.serialize import to_json

    out = report.out_dir
    out.mkdir(parents=True, exist_ok=True)
    header, rows = pilot_table(report)
    name, _ = METRICS.get(report.rank_by, (report.rank_by, True))
    lines = [
        "# vlmkit pilot",
        "",
        f"{len(report.sample)} image(s) sampled, {len(report.rows)} setting(s), ranked by {name}.",
        "",
        markdown_table(header, rows),
        "![quality against cost per image](chart.png)",
        "",
    ]
    if report.label_command:
        lines += [
            "Label the rest with the best setting:",
            "",
            "```",
            shlex.join(report.label_command),
            "```",
            "",
        ]
    atomic_write_text(out / "report.md", "\n".join(lines))
    atomic_write_text(out / "report.json", to_json(report.to_dict(), indent=2) + "\n")
    chart_key = (
        report.rank_by if report.rank_by not in ("cost_per_image", "latency_p50_s") else "map50"
    )
    if any(r.evaluation is not None and r.evaluation.ocr is not None for r in report.rows):
        chart_key = "cer"
    points = [
        (row.setting.title, row.value("cost_per_image"), row.value(chart_key))
        for row in report.rows
        if row.evaluation is not None
    ]
    chart_png(
        out / "chart.png",
        points,
        quality_name=METRICS.get(chart_key, (chart_key, True))[0],
        title=f"{METRICS.get(chart_key, (chart_key, True))[0]} against cost per image "
        f"({len(report.sample)} images)",
    )
