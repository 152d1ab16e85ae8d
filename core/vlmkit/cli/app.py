"""The ``vlmkit`` commands. Each is a thin layer over the public API (Session, export)."""

from __future__ import annotations

import enum
import gc
import inspect
import os
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from vlmkit.cli.context import (
    DEFAULT_BACKEND,
    ENV_BACKEND,
    CliState,
    command_state,
    guarded,
    parse_pairs,
    parse_sink_options,
    plugin_specs,
    seconds_option,
)
from vlmkit.cli.evaluation import eval_command
from vlmkit.cli.params import (
    Backend,
    Cache,
    Config,
    Images,
    Json,
    Labels,
    MaxMaskPixels,
    MaxMaskVertices,
    Model,
    Options,
    Out,
    PluginFlag,
    Prompt,
    StrictFlag,
    VerboseFlag,
)
from vlmkit.cli.track import track_command

__all__ = ["app", "main"]

TASKS_PANEL, BATCH_PANEL, PLUGINS_PANEL = "Task Commands", "Batch Commands", "Plugin Commands"


def _argument_name(param: Any) -> str:
    """An argument as click's plain help writes it: ``INPUT...``, ``[IMAGE]...``."""
    name = param.metavar or param.name.upper()
    name = name if param.required else f"[{name}]"
    return name + ("..." if param.nargs != 1 else "")


class _HelpCommand(TyperCommand):
    """Plain help for a command: arguments by their metavar (``INPUT...``), with no type
    placeholder such as ``<list[str]>`` and no ``{INPUT}`` braces in the usage line."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        params = self.get_params(ctx)
        return pieces + [_argument_name(p) for p in params if p.param_type_name == "argument"]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((_argument_name(param), record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class _PanelGroup(TyperGroup):
    """Plain top-level help with the commands in their panels (tasks, batch, plugins), each
    summary wrapped to the terminal rather than cut."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        panels: dict[str, list[tuple[str, Any]]] = {}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                panel = getattr(command, "rich_help_panel", None) or "Commands"
                panels.setdefault(panel, []).append((name, command))
        if not panels:
            return
        width = max(len(name) for rows in panels.values() for name, _ in rows)
        limit = formatter.width - 6 - width
        for panel, rows in panels.items():
            with formatter.section(panel):
                formatter.write_dl(
                    [(name.ljust(width), cmd.get_short_help_str(limit)) for name, cmd in rows]
                )


app = typer.Typer(
    cls=_PanelGroup,
    name="vlmkit",
    help=(
        "Computer vision on vision-language models: detect, segment, describe, read text and "
        "watch video with any installed backend; label folders into COCO / YOLO."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # expected errors are one line; -v shows tracebacks
    # click's plain help wraps every column to the terminal; rich's tables cut text and show
    # <bool>/<int> placeholders in an 80-column terminal
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _mask_options(pixels: int | None, vertices: int | None) -> dict[str, int]:
    """The segment calls' ``max_mask_pixels`` / ``max_mask_vertices`` (vlmkit.masks.MaskLimits)."""
    given = {"max_mask_pixels": pixels, "max_mask_vertices": vertices}
    return {name: value for name, value in given.items() if value is not None}


class LabelTask(enum.StrEnum):
    detect = "detect"
    segment = "segment"
    describe = "describe"
    ocr = "ocr"
    points = "points"
    track = "track"


# -- global options -------------------------------------------------------------------------
def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"vlmkit {version('vlmkit')}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    plugin: PluginFlag = None,
    strict: StrictFlag = False,
    verbose: VerboseFlag = 0,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    state = CliState(plugin_specs=plugin_specs(plugin or ()), strict=strict, verbose=verbose)
    ctx.obj = state
    state.start_logging()
    ctx.call_on_close(state.stop_logging)


def _task_session(
    state: CliState,
    backend: str,
    model: str | None,
    option: list[str] | None,
    config: list[str] | None,
    cache: bool,
) -> tuple[Any, dict[str, str]]:
    from vlmkit.errors import BackendNotFound

    options = parse_pairs(option, flag="--option", state=state)
    settings = parse_pairs(config, flag="--config", state=state)
    try:
        session = state.session(backend, model=model, config=settings, cache=cache)
    except BackendNotFound as err:
        raise BackendNotFound(f"{err}. Choose one with --backend or ${ENV_BACKEND}") from err
    return session, options


def _what_to_find(prompt: str | None, labels: list[str] | None) -> str | list[str] | None:
    if labels and prompt is not None:
        from vlmkit.errors import ConfigError

        raise ConfigError("give either --prompt or --label, not both")
    return list(labels) if labels else prompt


def _per_image(
    state: CliState,
    images: list[str],
    call: Any,
    *,
    as_json: bool,
    out: Path | None,
    boxes: bool = False,
) -> None:
    from vlmkit.cli.output import ResultPrinter

    printer = ResultPrinter(state, as_json=as_json, out=out, several=len(images) > 1, boxes=boxes)
    for image in images:
        state.current = image
        printer.add(image, call(image))
    state.current = None
    printer.finish()


def _find_in_each(
    ctx: typer.Context,
    images: list[str],
    find: tuple[str | None, list[str] | None],
    session_args: tuple[str, str | None, list[str] | None, list[str] | None, bool],
    flags: tuple[list[str] | None, bool, int],
    ask: Any,
    *,
    as_json: bool,
    out: Path | None,
) -> None:
    """The body of detect, segment and points: ``ask(session, image, what, options)`` per image,
    ``find`` being ``(--prompt, --label)``, ``session_args`` ``(backend, model, --option,
    --config, cache)`` and ``flags`` ``(--plugin, --strict, -v)``."""
    state = command_state(ctx, *flags)
    with guarded(state):
        what = _what_to_find(*find)
        session, options = _task_session(state, *session_args)
        with session:
            _per_image(
                state,
                images,
                lambda image: ask(session, image, what, options),
                as_json=as_json,
                out=out,
            )


# -- plugin listings ------------------------------------------------------------------------
def _listing(state: CliState, kind: str, as_json: bool) -> None:
    from vlmkit.cli.output import print_listing

    with guarded(state):
        session = state.session(report_failures=False)
        with session:
            infos = session.backends() if kind == "backend" else session.sinks()
            failures = [*state.failures, *session.plugin_failures]
            print_listing(state, kind, infos, failures, session.conflicts, as_json=as_json)


@app.command(rich_help_panel=PLUGINS_PANEL)
def backends(
    ctx: typer.Context,
    as_json: Json = False,
    plugin: PluginFlag = None,
    strict: StrictFlag = False,
    verbose: VerboseFlag = 0,
) -> None:
    """List installed backends, their tasks and distributions, and broken plugins."""
    _listing(command_state(ctx, plugin, strict, verbose), "backend", as_json)


@app.command(rich_help_panel=PLUGINS_PANEL)
def sinks(
    ctx: typer.Context,
    as_json: Json = False,
    plugin: PluginFlag = None,
    strict: StrictFlag = False,
    verbose: VerboseFlag = 0,
) -> None:
    """List installed sinks (output formats) and broken plugins."""
    _listing(command_state(ctx, plugin, strict, verbose), "sink", as_json)


# -- single-image tasks ---------------------------------------------------------------------
@app.command(rich_help_panel=TASKS_PANEL)
def detect(
    ctx: typer.Context,
    images: Images,
    prompt: Prompt = None,
    label: Labels = None,
    backend: Backend = DEFAULT_BACKEND,
    model: Model = None,
    option: Options = None,
    config: Config = None,
    as_json: Json = False,
    out: Out = None,
    cache: Cache = True,
    plugin: PluginFlag = None,
    strict: StrictFlag = False,
    verbose: VerboseFlag = 0,
) -> None:
    """Find objects: one line per detection, boxes in original-image pixels."""
    _find_in_each(
        ctx,
        images,
        (prompt, label),
        (backend, model, option, config, cache),
        (plugin, strict, verbose),
        lambda session, image, what, options: session.detect(image, what, **options),
        as_json=as_json,
        out=out,
    )


@app.command(rich_help_panel=TASKS_PANEL)
def segment(
    ctx: typer.Context,
    images: Images,
    prompt: Prompt = None,
    label: Labels = None,
    threshold: Annotated[
        int,
        typer.Option(min=0, max=255, metavar="0-255", help="Mask probability threshold."),
    ] = 127,
    max_mask_pixels: MaxMaskPixels = None,
    max_mask_vertices: MaxMaskVertices = None,
    backend: Backend = DEFAULT_BACKEND,
    model: Model = None,
    option: Options = None,
    config: Config = None,
    as_json: Json = False,
    out: Out = None,
    cache: Cache = True,
    plugin: PluginFlag = None,
    strict: StrictFlag = False,
    verbose: VerboseFlag = 0,
) -> None:
    """Find objects with masks: box, label and mask area per object."""
    limits = _mask_options(max_mask_pixels, max_mask_vertices)
    _find_in_each(
        ctx,
        images,
        (prompt, label),
        (backend, model, option, config, cache),
        (plugin, strict, verbose),
        lambda session, image, what, options: session.segment(
            image, what, threshold=threshold, **options, **limits
        ),
        as_json=as_json,
        out=out,
    )


@app.command(rich_help_panel=TASKS_PANEL)
def points(
    ctx: typer.Context,
    images: Images,
    prompt: Prompt = None,
    label: Labels = None,
    backend: Backend = DEFAULT_BACKEND,
    model: Model = None,
    option: Options = None,
    config: Config = None,
    as_json: Json = False,
    out: Out = None,
    cache: Cache = True,
    plugin: PluginFlag = None,
    strict: StrictFlag = False,
    verbose: VerboseFlag = 0,
) -> None:
    """Point at things: one line per point (label, x, y in original-image pixels)."""
    _find_in_each(
        ctx,
        images,
        (prompt, label),
        (backend, model, option, config, cache),
        (plugin, strict, verbose),
        lambda session, image, what, options: session.points(image, what, **options),
        as_json=as_json,
        out=out,
    )


@app.command(rich_help_panel=TASKS_PANEL)
def describe(
    ctx: typer.Context,
    images: Images,
    prompt: Prompt = None,
    backend: Backend = DEFAULT_BACKEND,
    model: Model = None,
    option: Options = None,
    config: Config = None,
    as_json: Json = False,
    out: Out = None,
    cache: Cache = True,
    plugin: PluginFlag = None,
    strict: StrictFlag = False,
    verbose: VerboseFlag = 0,
) -> None:
    """Caption or ask about one image, or several together (compare, VQA)."""
    state = command_state(ctx, plugin, strict, verbose)
    with guarded(state):
        from vlmkit.cli.output import ResultPrinter

        session, options = _task_session(state, backend, model, option, config, cache)
        with session:
            result = session.describe(images if len(images) > 1 else images[0], prompt, **options)
        printer = ResultPrinter(state, as_json=as_json, out=out, several=False, boxes=False)
        printer.add(", ".join(images), result)
        printer.finish()


@app.command(rich_help_panel=TASKS_PANEL)
def ocr(
    ctx: typer.Context,
    images: Images,
    prompt: Prompt = None,
    boxes: Annotated[
        bool, typer.Option("--boxes", help="Ask for a box per block of text.")
    ] = False,
    backend: Backend = DEFAULT_BACKEND,
    model: Model = None,
    option: Options = None,
    config: Config = None,
    as_json: Json = False,
    out: Out = None,
    cache: Cache = True,
    plugin: PluginFlag = None,
    strict: StrictFlag = False,
    verbose: VerboseFlag = 0,
) -> None:
    """Read the text in images (with --boxes: one line per block, with its box)."""
    state = command_state(ctx, plugin, strict, verbose)
    with guarded(state):
        session, options = _task_session(state, backend, model, option, config, cache)
        with session:
            _per_image(
                state,
                images,
                lambda image: session.ocr(image, prompt, boxes=boxes, **options),
                as_json=as_json,
                out=out,
                boxes=boxes,
            )


@app.command(rich_help_panel=TASKS_PANEL)
def video(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(metavar="VIDEO", help="A video file or provider URI.")],
    prompt: Prompt = None,
    fps: Annotated[
        float | None, typer.Option(min=0.01, metavar="FPS", help="Frames per second to sample.")
    ] = None,
    start: Annotated[
        str | None, typer.Option(metavar="TIME", help="Clip start: seconds or mm:ss.")
    ] = None,
    end: Annotated[
        str | None, typer.Option(metavar="TIME", help="Clip end: seconds or mm:ss.")
    ] = None,
    backend: Backend = DEFAULT_BACKEND,
    model: Model = None,
    option: Options = None,
    config: Config = None,
    as_json: Json = False,
    out: Out = None,
    cache: Cache = True,
    plugin: PluginFlag = None,
    strict: StrictFlag = False,
    verbose: VerboseFlag = 0,
) -> None:
    """Ask about a video: timed events as "mm:ss–mm:ss text"."""
    state = command_state(ctx, plugin, strict, verbose)
    with guarded(state):
        clip = {"start": seconds_option("--start", start), "end": seconds_option("--end", end)}
        session, options = _task_session(state, backend, model, option, config, cache)
        with session:
            _per_image(
                state,
                [path],
                lambda source: session.video(source, prompt, fps=fps, **clip, **options),
                as_json=as_json,
                out=out,
            )


# -- batch ----------------------------------------------------------------------------------
@app.command(rich_help_panel=BATCH_PANEL)
def export(
    ctx: typer.Context,
    ledger: Annotated[
        Path,
        typer.Argument(
            exists=True,
            metavar="LEDGER",
            help="A run's results.jsonl (or the run folder that holds it).",
        ),
    ],
    sink: Annotated[
        list[str],
        typer.Option(
            "--sink", "-s", metavar="SINK", help="Sink to write (`vlmkit sinks` lists them)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Output folder.")],
    image_root: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Where the images are now, if they moved since the run."),
    ] = None,
    sink_option: Annotated[
        list[str] | None,
        typer.Option(metavar="SINK.KEY=VALUE", help="Sink option, e.g. coco.mask_format=polygon."),
    ] = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
    plugin: PluginFlag = None,
    strict: StrictFlag = False,
    verbose: VerboseFlag = 0,
) -> None:
    """Rebuild sink outputs (COCO, YOLO, previews) from a run ledger without calling a model."""
    state = command_state(ctx, plugin, strict, verbose)
    with guarded(state):
        from vlmkit.export import export as export_ledger

        if ledger.is_dir():
            ledger = ledger / "results.jsonl"
        if not ledger.is_file():
            from vlmkit.errors import ConfigError

            raise ConfigError(f"{ledger}: no such ledger file")
        options = parse_sink_options(sink_option, sink, state=state)
        with state.session(report_failures=True) as session:

            def resolve(name: str) -> Any:
                return session.sink_info(name)

            written = export_ledger(
                ledger,
                sink,
                out,
                image_root=image_root,
                resolve=resolve,
                options=options,
                progress=progress,
            )
        for name, files in written.items():
            for file in files:
                typer.echo(f"{name}: {file}")
        total = sum(len(files) for files in written.values())
        typer.echo(f"exported {ledger} into {out} ({total} file(s))", err=True)
        skipped = list(getattr(written, "skipped", ()))
        for entry in skipped[:10]:
            where = f" by {entry.sink}" if entry.sink else ""
            typer.echo(f"warning: skipped {entry.key!r}{where}: {entry.reason}", err=True)
        if len(skipped) > 10:
            typer.echo(f"warning: ... and {len(skipped) - 10} more skipped record(s)", err=True)


# ==========================================================================================
# `vlmkit label` — the batch runner's command. The runner itself (Session.run: concurrency,
# progress, the resumable ledger, sinks, budget) lives in the core; this command only parses
# options, builds the Session and prints the run's summary.
# ==========================================================================================
@app.command(rich_help_panel=BATCH_PANEL)
def label(
    ctx: typer.Context,
    inputs: Annotated[
        list[str],
        typer.Argument(metavar="INPUT", help="Image (video for track) files, folders, globs."),
    ],
    out: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Run folder (ledger and sink outputs).")
    ],
    task: Annotated[
        LabelTask,
        typer.Option(
            metavar="detect|segment|describe|ocr|points|track",
            help="The task to run on every image; track: follow objects through every video.",
        ),
    ] = LabelTask.detect,
    fps: Annotated[
        float,
        typer.Option(min=0.01, metavar="FPS", help="--task track: frames per second to detect on."),
    ] = 1.0,
    track_task: Annotated[
        str,
        typer.Option(
            "--track-task", metavar="detect|segment", help="--task track: boxes, or with masks."
        ),
    ] = "detect",
    route: Annotated[
        str,
        typer.Option(
            "--route",
            metavar="auto|frames|native",
            help="--task track: a request per frame, or one per video (Gemini).",
        ),
    ] = "auto",
    prompt: Prompt = None,
    label: Labels = None,
    backend: Backend = DEFAULT_BACKEND,
    model: Model = None,
    option: Options = None,
    config: Config = None,
    sink: Annotated[
        list[str] | None,
        typer.Option(
            "--sink", "-s", metavar="SINK", help="Sink to write: coco, yolo, annotate, ..."
        ),
    ] = None,
    sink_option: Annotated[
        list[str] | None,
        typer.Option(metavar="SINK.KEY=VALUE", help="Sink option, e.g. coco.mask_format=polygon."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="Requests in flight (default: the backend's)."),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="Images per model batch (local models)."),
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Retry items that failed in an earlier run.")
    ] = False,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            metavar="sync|batch",
            help="sync: one call per image; batch: the backend's batch service (Gemini Batch "
            "API: half price, answers within 24 h; re-run the command to collect)",
        ),
    ] = "sync",
    budget: Annotated[
        float | None,
        typer.Option(metavar="USD", min=0, help="Stop before the estimated cost passes this."),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="Who answers the items: local (threads in this process), processes (worker "
            "processes on this machine, for runs one process cannot keep up with) or an "
            "installed engine such as ray (pip install vlmkit-ray).",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS", help="The engine's cluster, e.g. auto or ray://head:10001."
        ),
    ] = None,
    engine_option: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="Engine option, e.g. requests_per_s=10."),
    ] = None,
    max_mask_pixels: MaxMaskPixels = None,
    max_mask_vertices: MaxMaskVertices = None,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = True,
    cache: Cache = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run's summary as one JSON document.")
    ] = False,
    plugin: PluginFlag = None,
    strict: StrictFlag = False,
    verbose: VerboseFlag = 0,
) -> None:
    """Label many images into a resumable run folder and sinks (COCO, YOLO, previews).

    With --task track, follow objects through every video instead: per video a MOT file, an
    annotated MP4, per-frame COCO and the JSON result, resumable frame by frame.
    """
    state = command_state(ctx, plugin, strict, verbose)
    with guarded(state):
        from vlmkit.errors import VlmkitError

        what = _what_to_find(prompt, label)
        sinks_chosen = list(sink or ())
        sink_options = parse_sink_options(sink_option, sinks_chosen, state=state)
        session, options = _task_session(state, backend, model, option, config, cache)
        call_options: dict[str, Any] = dict(options)
        if task is LabelTask.segment or (task is LabelTask.track and track_task == "segment"):
            call_options.update(_mask_options(max_mask_pixels, max_mask_vertices))
        if task is LabelTask.track:
            from vlmkit.cli.track import label_tracks

            if sinks_chosen or mode != "sync" or budget is not None:
                raise VlmkitError(
                    "--task track writes its own outputs per video (MOT, annotated MP4, COCO, "
                    "JSON) and runs in sync mode without a budget: drop --sink, --mode, --budget"
                )
            label_tracks(
                state,
                session,
                inputs,
                what,
                out=out,
                fps=fps,
                task=track_task,
                route=route,
                concurrency=concurrency,
                options=call_options,
                as_json=as_json,
            )
            return
        with session:
            run = getattr(session, "run", None)
            if run is None:
                raise VlmkitError(
                    "the batch runner is not available in this vlmkit (Session.run is missing); "
                    "upgrade vlmkit, or use `vlmkit detect|segment|describe|ocr` per image"
                )
            tuning: dict[str, Any] = {"concurrency": concurrency, "batch_size": batch_size}
            if mode != "sync":
                tuning["mode"] = mode
            if engine != "local" or address is not None or engine_option:
                from vlmkit.cli.engine import engine_run

                run = engine_run(
                    state, session, engine, address, engine_option, backend, model, config, cache
                )
            results = run(
                task.value,
                inputs,
                prompt=what,
                out_dir=out,
                sinks=sinks_chosen,
                sink_options=sink_options,
                retry_failed=retry_failed,
                budget_usd=budget,
                progress=progress,
                options=call_options,
                **{k: v for k, v in tuning.items() if v is not None},
            )
            # What is loaded by now (the backend's SDK and its models, a local model, the
            # inputs) lives as long as the process: moving it out of the garbage collector's
            # way keeps full collections from pausing every request thread (measured: about
            # 3 % of a 500-image run; docs/benchmarks.md).
            gc.freeze()
            try:
                with warnings.catch_warnings():
                    # the run names huge images in its own words (vlmkit.pixels)
                    from PIL.Image import DecompressionBombWarning

                    warnings.simplefilter("ignore", DecompressionBombWarning)
                    for _ in results:
                        pass
            finally:  # an interrupted or failed run still says how far it got
                gc.unfreeze()  # back to normal for whatever runs in this process next
                summary = getattr(results, "summary", None)
                if summary is not None and as_json:
                    from vlmkit.serialize import to_json

                    typer.echo(to_json(summary.to_dict(), indent=2))
                elif summary is not None:
                    typer.echo(str(summary))
                if summary is not None and engine == "local":
                    from vlmkit.cli.engine import cpu_bound_hint

                    in_flight = getattr(results, "concurrency", None)
                    batch_size = getattr(session.backend, "batch_size", 1)
                    if hint := cpu_bound_hint(
                        summary, in_flight, os.cpu_count(), batch_size=batch_size
                    ):
                        typer.echo(hint, err=True)
        if getattr(summary, "stopped", None) == "no images":
            state.fail(
                f"no images found in {' '.join(inputs)}; check the paths (folders are read "
                "recursively; hidden files, non-images and non-regular files are skipped)",
                code=1,
            )
        failed = getattr(summary, "failed", 0) or 0
        if failed:
            state.fail(
                f"{failed} item(s) failed (reasons in {out / 'results.jsonl'}); "
                "re-run with --retry-failed to try them again",
                code=1,
            )


app.command("eval", rich_help_panel=BATCH_PANEL)(eval_command)
app.command("track", rich_help_panel=TASKS_PANEL)(track_command)


def _whole_summaries() -> None:
    """click cuts each summary in the command list to one line with "..."; an explicit
    short_help (the docstring's first paragraph) is wrapped instead. Every command gets the
    plain help of :class:`_HelpCommand` (arguments without type placeholders)."""
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = _HelpCommand
        if info.short_help is None and info.help is None and info.callback is not None:
            doc = inspect.cleandoc(info.callback.__doc__ or "")
            info.short_help = " ".join(doc.split("\n\n", 1)[0].split()) or None


_whole_summaries()


def main(argv: list[str] | None = None) -> None:
    """The ``vlmkit`` console script."""
    app(args=argv, prog_name="vlmkit")
