"""The options the CLI's commands share (task, plugin and global flags), defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlmkit.cli.context import ENV_BACKEND, ENV_CACHE, ENV_PLUGINS

__all__ = [
    "GLOBAL_PANEL",
    "Backend",
    "Cache",
    "Config",
    "Images",
    "Json",
    "Labels",
    "MaxMaskPixels",
    "MaxMaskVertices",
    "Model",
    "Options",
    "Out",
    "PluginFlag",
    "Prompt",
    "StrictFlag",
    "VerboseFlag",
]

GLOBAL_PANEL = "Global options (also before the command)"

# -- options shared by the task commands ----------------------------------------------------
Images = Annotated[list[str], typer.Argument(metavar="IMAGE", help="Image files or URLs.")]
Prompt = Annotated[
    str | None,
    typer.Option(
        "--prompt",
        "-p",
        metavar="TEXT",
        help="What to ask or find; the task's documented prompt if omitted.",
    ),
]
Labels = Annotated[
    list[str] | None,
    typer.Option(
        "--label",
        "-l",
        metavar="LABEL",
        help="A class to find, repeatable; the model must use exactly these labels.",
    ),
]
Backend = Annotated[
    str,
    typer.Option(
        "--backend",
        "-b",
        envvar=ENV_BACKEND,
        metavar="NAME",
        help="Backend name (`vlmkit backends` lists them).",
    ),
]
Model = Annotated[
    str | None,
    typer.Option("--model", "-m", metavar="NAME", help="Model; the backend's default if omitted."),
]
Options = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        metavar="KEY=VALUE",
        help="Per-call option the backend declares, e.g. max_soft_tokens=280 (repeatable).",
    ),
]
Config = Annotated[
    list[str] | None,
    typer.Option(
        "--config",
        metavar="KEY=VALUE",
        help="Backend setting for its constructor, e.g. project=... or device=cuda (repeatable).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")]
Out = Annotated[
    Path | None,
    typer.Option("--out", metavar="FILE", help="Write the JSON document to FILE.", dir_okay=False),
]
Cache = Annotated[
    bool,
    typer.Option(
        "--cache/--no-cache",
        envvar=ENV_CACHE,
        help="Reuse answers from the on-disk cache ($VLMKIT_CACHE_DIR, by default "
        "~/.cache/vlmkit/answers).",
    ),
]

MaxMaskPixels = Annotated[
    int | None,
    typer.Option(
        min=0,
        metavar="N",
        help="Mask pixels one answer may materialize (default 134217728); masks beyond it "
        "are dropped, their detections kept, and counted as masks_dropped.",
    ),
]
MaxMaskVertices = Annotated[
    int | None,
    typer.Option(
        min=0, metavar="N", help="Polygon vertices one answer may rasterize (default 100000)."
    ),
]

PluginFlag = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        metavar="MODULE",
        rich_help_panel=GLOBAL_PANEL,
        help=(
            "Import a plugin module (dotted name or .py file) and register it, e.g. a local "
            f"backend; repeatable. Also ${ENV_PLUGINS} (comma-separated)."
        ),
    ),
]
StrictFlag = Annotated[
    bool,
    typer.Option(
        "--strict", rich_help_panel=GLOBAL_PANEL, help="A broken plugin is an error, not a warning."
    ),
]
VerboseFlag = Annotated[
    int,
    typer.Option(
        "--verbose",
        "-v",
        count=True,
        show_default=False,
        rich_help_panel=GLOBAL_PANEL,
        help="Log to stderr (-vv: debug); show tracebacks.",
    ),
]
