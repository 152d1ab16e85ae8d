"""``vlmkit track``: follow objects through a video, write a MOT file and an annotated MP4.

Registered on the typer app by :mod:`vlmkit.cli.app`; the work is done by
:mod:`vlmkit.tracking` (this module parses options, writes the files and prints).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

import typer

from vlmkit.cli.context import (
    DEFAULT_BACKEND,
    ENV_CACHE,
    command_state,
    guarded,
    seconds_option,
)
from vlmkit.cli.params import (
    Backend,
    Config,
    Json,
    Model,
    Options,
    PluginFlag,
    StrictFlag,
    VerboseFlag,
)

__all__ = ["track_command"]


class TrackTask(enum.StrEnum):
    detect = "detect"
    segment = "segment"


class TrackRoute(enum.StrEnum):
    auto = "auto"
    frames = "frames"
    native = "native"


def track_command(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(metavar="VIDEO", help="A local video file.")],
    prompt: Annotated[
        str | None,
        typer.Option("--prompt", "-p", metavar="TEXT", help="What to find and follow."),
    ] = None,
    labels: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", metavar="LABEL", help="A class to follow, repeatable."),
    ] = None,
    fps: Annotated[
        float,
        typer.Option(min=0.01, metavar="FPS", help="Frames per second to detect on (1 call each)."),
    ] = 1.0,
    start: Annotated[
        str | None, typer.Option(metavar="TIME", help="Clip start: seconds or mm:ss.")
    ] = None,
    end: Annotated[
        str | None, typer.Option(metavar="TIME", help="Clip end: seconds or mm:ss.")
    ] = None,
    task: Annotated[
        TrackTask, typer.Option(help="Detect boxes, or segment (boxes with masks).")
    ] = TrackTask.detect,
    route: Annotated[
        TrackRoute,
        typer.Option(help="frames: a request per frame; native: one video request (Gemini)."),
    ] = TrackRoute.auto,
    lost: Annotated[
        float,
        typer.Option(min=0.01, metavar="SECONDS", help="A track unseen this long ends."),
    ] = 2.0,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="Frames in flight; the backend's own if omitted."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            file_okay=False,
            help="Write VIDEO_STEM.mot.txt, .tracked.mp4, .json and .coco.json here.",
        ),
    ] = None,
    backend: Backend = DEFAULT_BACKEND,
    model: Model = None,
    option: Options = None,
    config: Config = None,
    as_json: Json = False,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache",
            envvar=ENV_CACHE,
            help="Reuse answers from the on-disk cache: a re-run pays no finished frame again.",
        ),
    ] = True,
    plugin: PluginFlag = None,
    strict: StrictFlag = False,
    verbose: VerboseFlag = 0,
) -> None:
    """Follow objects through a video with stable ids: MOT file and annotated video.

    Detects on FPS frames per second (one model call each, several in flight) and links the
    boxes with ByteTrack. Prints one line per track ("mm:ss–mm:ss label #id"); with --out,
    writes the MOT-Challenge file, the video with boxes and ids drawn at its own frame rate,
    the JSON result and a per-frame COCO file, all together or none.
    """
    state = command_state(ctx, plugin, strict, verbose)
    with guarded(state):
        from vlmkit.cli.context import parse_pairs
        from vlmkit.errors import ConfigError
        from vlmkit.tracking import iter_track, video_result
        from vlmkit.video import probe_video

        if labels and prompt is not None:
            raise ConfigError("give either --prompt or --label, not both")
        what: Any = list(labels) if labels else prompt
        clip = {"start": seconds_option("--start", start), "end": seconds_option("--end", end)}
        options: dict[str, Any] = parse_pairs(option, flag="--option", state=state)
        settings = parse_pairs(config, flag="--config", state=state)
        state.current = path
        info = probe_video(path)
        session = state.session(backend, model=model, config=settings, cache=cache)
        with session:
            frames = list(
                iter_track(
                    session,
                    path,
                    what,
                    fps=fps,
                    task=task.value,
                    lost_s=lost,
                    concurrency=concurrency,
                    route=route.value,
                    start=clip["start"],
                    end=clip["end"],
                    **options,
                )
            )
        result = video_result(frames, duration_s=info.duration_s)
        written = _write(path, frames, result, out, clip, what) if out is not None else []
        _print(result, as_json=as_json)
        for target in written:
            typer.echo(f"wrote {target}", err=True)
        state.current = None


def _write(
    path: str,
    frames: list[Any],
    result: Any,
    out: Path,
    clip: dict[str, float | None],
    result_labels: Any,
) -> list[Path]:
    """Stage the outputs and move them into place together (none on failure)."""
    from vlmkit.videorun import write_track_outputs

    labels = list(result_labels) if isinstance(result_labels, list) else ()
    return write_track_outputs(
        path, frames, result, out, Path(path).stem or "video", categories=labels, **clip
    )


def label_tracks(
    state: Any,
    session: Any,
    inputs: list[str],
    what: Any,
    *,
    out: Path,
    fps: float,
    task: str,
    route: str,
    concurrency: int | None,
    options: dict[str, Any],
    as_json: bool,
) -> None:
    """``vlmkit label --task track``: every video of ``inputs`` into the run folder ``out``."""
    from vlmkit.serialize import to_json
    from vlmkit.videorun import run_tracks

    with session:
        summary = run_tracks(
            session,
            inputs,
            what,
            out_dir=out,
            fps=fps,
            task=task,
            route=route,
            concurrency=concurrency,
            options=options,
        )
    typer.echo(to_json(summary.to_dict(), indent=2) if as_json else str(summary))
    if not summary.videos:
        state.fail(
            f"no videos found in {' '.join(inputs)}; check the paths (folders are read "
            "recursively for video files: mp4, mov, webm, ...)",
            code=1,
        )
    if summary.failed:
        state.fail(
            f"{summary.failed} video(s) failed (reasons in {out / 'tracks.jsonl'}); re-run the "
            "command to try them again (frames already answered are not paid again)",
            code=1,
        )


def _print(result: Any, *, as_json: bool) -> None:
    if as_json:
        from vlmkit.serialize import result_to_dict, to_json

        typer.echo(to_json(result_to_dict(result), indent=2))
        return
    from vlmkit.video import format_timestamp

    typer.echo(result.text)
    for event in result.events:
        typer.echo(f"{format_timestamp(event.start)}–{format_timestamp(event.end)} {event.text}")
