"""``vlmkit eval``: score a run against ground truth, or pilot settings on a labeled sample.

Registered on the typer app by :mod:`vlmkit.cli.app`; the work is done by
:mod:`vlmkit.evaluation` (this module parses options and prints).
"""

from __future__ import annotations

import enum
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vlmkit.cli.context import (
    DEFAULT_BACKEND,
    ENV_BACKEND,
    ENV_CACHE,
    CliState,
    command_state,
    guarded,
    is_secret,
)
from vlmkit.cli.params import PluginFlag, StrictFlag, VerboseFlag

if TYPE_CHECKING:
    from vlmkit.evaluation import Evaluation
    from vlmkit.evaluation.pilot import PilotReport

__all__ = ["eval_command"]

PILOT_PANEL = "Pilot (with --try)"


class IouType(enum.StrEnum):
    bbox = "bbox"
    segm = "segm"


def eval_command(
    ctx: typer.Context,
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN_DIR | IMAGES...",
            help="A run folder (`vlmkit label --out`) to score; with --try, the images to pilot.",
        ),
    ],
    gt: Annotated[
        Path,
        typer.Option(
            "--gt",
            metavar="GROUND_TRUTH",
            help="COCO JSON, YOLO data.yaml, or (OCR) a JSON object of image name → text.",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="PREDICTED=TRUTH",
            help="Score a predicted class as a ground-truth class, e.g. automobile=car.",
        ),
    ] = None,
    iou_type: Annotated[
        IouType | None,
        typer.Option(help="bbox, or segm for mask mAP (default: segm for segment runs)."),
    ] = None,
    tries: Annotated[
        list[str] | None,
        typer.Option(
            "--try",
            metavar="SETTING",
            rich_help_panel=PILOT_PANEL,
            help=(
                "A setting to pilot, in `vlmkit label` syntax, quoted: "
                "'--backend gemini-api --model gemini-3.6-flash --option thinking_level=minimal'. "
                "Repeatable."
            ),
        ),
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(min=1, rich_help_panel=PILOT_PANEL, help="Images to sample (default: all)."),
    ] = None,
    seed: Annotated[int, typer.Option(rich_help_panel=PILOT_PANEL, help="Seed of the sample.")] = 0,
    rank_by: Annotated[
        str,
        typer.Option(
            rich_help_panel=PILOT_PANEL,
            help="map50, map, map75, f1, precision, recall, cer, wer, cost_per_image, "
            "latency_p50_s.",
        ),
    ] = "map50",
    out: Annotated[
        Path,
        typer.Option(
            "--out", metavar="DIR", rich_help_panel=PILOT_PANEL, help="The pilot's report folder."
        ),
    ] = Path("vlmkit-pilot"),
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, rich_help_panel=PILOT_PANEL, help="Requests in flight (default: the backend's)."
        ),
    ] = None,
    progress: Annotated[
        bool,
        typer.Option(
            "--progress/--no-progress", rich_help_panel=PILOT_PANEL, help="Show progress bars."
        ),
    ] = True,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache",
            envvar=ENV_CACHE,
            rich_help_panel=PILOT_PANEL,
            help="Reuse answers from the on-disk cache.",
        ),
    ] = True,
    plugin: PluginFlag = None,
    strict: StrictFlag = False,
    verbose: VerboseFlag = 0,
) -> None:
    """Score a run against ground truth (mAP, P/R/F1, CER/WER, cost, latency); with --try,
    pilot several settings on a sample and print the `vlmkit label` command of the best."""
    state = command_state(ctx, plugin, strict, verbose)
    with guarded(state):
        from vlmkit.errors import ConfigError
        from vlmkit.evaluation.matching import parse_mapping

        pairs = parse_mapping(mapping or ())
        if not tries:
            if len(paths) != 1:
                raise ConfigError(
                    f"give one run folder to score (got {len(paths)} paths); to pilot settings "
                    "on images, add --try SETTING"
                )
            from vlmkit.evaluation import evaluate

            evaluation = evaluate(
                paths[0], gt, mapping=pairs, iou_type=iou_type.value if iou_type else None
            )
            _print_evaluation(state, evaluation, as_json=as_json)
            return
        report = _pilot(
            state,
            paths,
            gt,
            tries,
            sample=sample,
            seed=seed,
            rank_by=rank_by,
            out=out,
            mapping=pairs,
            iou_type=iou_type.value if iou_type else None,
            concurrency=concurrency,
            progress=progress and not as_json,
            cache=cache,
        )
        _print_pilot(state, report, as_json=as_json)


def _pilot(
    state: CliState, paths: list[str], gt: Path, tries: list[str], **options: Any
) -> PilotReport:
    from vlmkit.evaluation.pilot import Setting, pilot

    default = os.environ.get(ENV_BACKEND) or DEFAULT_BACKEND
    settings = [Setting.parse(text, default_backend=default) for text in tries]
    for setting in settings:
        for key, value in setting.config.items():
            if is_secret(key) and value:
                state.secrets.add(value)
    cache = options.pop("cache")

    def session(setting: Setting) -> Any:
        return state.session(
            setting.backend, model=setting.model, config=dict(setting.config), cache=cache
        )

    return pilot(
        paths, gt, settings, out_dir=options.pop("out"), session_factory=session, **options
    )


# -- output ---------------------------------------------------------------------------------
def _console() -> Any:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200
    return console


def _table(
    state: CliState, header: list[str], rows: list[list[str]], *, show_header: bool = True
) -> Any:
    from rich.table import Table
    from rich.text import Text

    from vlmkit.cli.output import safe_line

    table = Table(box=None, header_style="bold", pad_edge=False, show_header=show_header)
    for column in header:
        table.add_column(column, overflow="fold")
    for row in rows:  # class names and labels come from files and models: plain text only
        table.add_row(*(Text(state.scrub(safe_line(str(c)))) for c in row))
    return table


def _print_evaluation(state: CliState, evaluation: Evaluation, *, as_json: bool) -> None:
    from vlmkit.cli.output import safe_line
    from vlmkit.evaluation.report import format_value, summary_rows
    from vlmkit.serialize import to_json

    document = evaluation.to_dict()
    if evaluation.unmapped:
        names = ", ".join(
            f"{safe_line(k)!r} ({n})" for k, n in list(evaluation.unmapped.items())[:10]
        )
        state.warn(
            f"predicted classes that are no ground-truth class were not scored: {names}; map "
            "them with --map PREDICTED=TRUTH"
        )
    if as_json:
        typer.echo(state.scrub(to_json(document, indent=2)))
        return
    console = _console()
    rows = [list(row) for row in summary_rows(evaluation)]
    console.print(_table(state, ["", ""], rows, show_header=False))
    if evaluation.detection is not None and evaluation.detection.per_class:
        console.print()
        rows = [
            [name, format_value("map", c.ap), format_value("map50", c.ap50)]
            for name, c in evaluation.detection.per_class.items()
        ]
        console.print(_table(state, ["class", "AP", "AP@.50"], rows))
    if evaluation.gt_images_not_in_run:
        typer.echo(
            f"{evaluation.gt_images_not_in_run} ground-truth image(s) are not in the run and "
            "were left out",
            err=True,
        )


def _print_pilot(state: CliState, report: PilotReport, *, as_json: bool) -> None:
    from vlmkit.evaluation.report import pilot_table
    from vlmkit.serialize import to_json

    if as_json:
        typer.echo(state.scrub(to_json(report.to_dict(), indent=2)))
        return
    header, rows = pilot_table(report)
    console = _console()
    console.print(_table(state, header, rows))
    typer.echo(f"\nreport: {report.out_dir / 'report.md'} (chart: {report.out_dir / 'chart.png'})")
    if report.label_command:
        typer.echo("label the rest with the best setting:")
        typer.echo("  " + state.scrub(shlex.join(report.label_command)))
    else:
        state.warn("no setting produced a run to score; see the errors above")
