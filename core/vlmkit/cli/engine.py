"""``vlmkit label --engine NAME``: the run of an installed engine (``vlmkit-ray``'s ``ray``)
in place of ``Session.run``, with the recipe its workers build their own Session from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlmkit.cli.context import CliState, parse_pairs

__all__ = ["cpu_bound_hint", "engine_run"]


def engine_run(
    state: CliState,
    session: Any,
    name: str,
    address: str | None,
    engine_option: list[str] | None,
    backend: str,
    model: str | None,
    config: list[str] | None,
    cache: bool,
) -> Any:
    """``session.run``'s stand-in for ``--engine NAME``: the installed engine's run, whose
    workers build their own Session from the same backend, model, --config and cache."""
    from vlmkit.engines import LOCAL, SessionSpec, build_engine
    from vlmkit.errors import ConfigError

    options: dict[str, Any] = parse_pairs(engine_option, flag="--engine-option", state=state)
    if address is not None:
        options["address"] = address
    if name == LOCAL:
        raise ConfigError(
            "--address and --engine-option need an engine such as --engine ray; the local "
            "engine runs in this process"
        )
    built = build_engine(session, name, options)
    # --plugin modules named like packages travel to the workers (importable there too); a
    # plugin given as a .py file reaches them only when they run on this machine
    files = [entry for entry in state.plugin_specs if entry.endswith(".py") or "/" in entry]
    plugins = [entry for entry in state.plugin_specs if entry not in files]
    if files and session.engine_info(name).same_machine:
        plugins += [str(Path(entry).expanduser().resolve()) for entry in files]
    elif files:
        state.warn(f"--plugin files stay on this machine, the engine's workers lack them: {files}")
    spec = SessionSpec(
        backend=backend,
        model=model,
        settings=parse_pairs(config, flag="--config", state=state),
        cache=True if cache else None,
        plugins=plugins,
    )

    def run(task: str, inputs: Any, **arguments: Any) -> Any:
        if arguments.pop("mode", "sync") != "sync":
            raise ConfigError(f"--mode batch runs on the local engine, not on {name!r}")
        return built.run(session, spec, task, inputs, **arguments)

    return run


#: a run this short is mostly start-up: its CPU share says nothing about the client's pace
HINT_MIN_WALL_S = 5.0
#: the share of one core above which the run's own process, not the model, set its pace
HINT_CPU_SHARE = 0.85
#: fewer requests in flight than this: a local model or a deliberate limit, not an API run
HINT_MIN_IN_FLIGHT = 16
#: above this share the process kept more than one core busy: native code (a local model's
#: inference) already spreads over the cores; the GIL's ceiling is about one core
HINT_MAX_CPU_SHARE = 1.5


def cpu_bound_hint(
    summary: Any, in_flight: int | None, cores: int | None, *, batch_size: int = 1
) -> str | None:
    """What to say when a local run's process was the limit: one Python process turns one
    core into requests (the SDK alone needs a few ms of CPU each), so past that more requests
    in flight only wait for the GIL; ``--engine processes`` spreads them over worker processes.
    ``None`` when the run was short, did not keep a core busy, kept several busy (a local
    model's native code: more processes would only load more copies), there is no other core,
    or the backend generates in batches (``batch_size`` > 1: a local model, whose feeding
    thread keeps about one core busy on a GPU)."""
    wall_s, cpu_s = getattr(summary, "wall_s", 0.0), getattr(summary, "cpu_s", 0.0)
    if wall_s < HINT_MIN_WALL_S or (cores or 1) < 2 or (in_flight or 0) < HINT_MIN_IN_FLIGHT:
        return None
    if batch_size > 1:
        return None
    share = cpu_s / wall_s
    if not HINT_CPU_SHARE <= share <= HINT_MAX_CPU_SHARE:
        return None
    return (
        f"this run kept one core {share:.0%} busy with {in_flight} requests in flight: "
        "this process, not the model, set its pace (one Python process turns about one core "
        "into requests). With --engine processes the requests go through worker processes "
        f"({cores} cores here); see docs/scale.md"
    )
