"""Run engines: where a run's items are answered, under one set of run-folder semantics.

The default engine is the local thread runner (:class:`vlmkit.runner.Run`). The core registers
``processes`` (worker processes on this machine, :mod:`vlmkit.processes`) through the same
``vlmkit_engines`` registration hook any plugin uses (``vlmkit-ray`` adds ``ray``: Ray Data
across a cluster). Whatever the engine, the run folder is the same — one ledger written by this
process, resume, ``run.json``, the run lock, sinks written once at the end — because an
engine returns a :class:`~vlmkit.runner.Run` whose ``_process`` answers the items its way (as
the Gemini Batch API's run does).

An engine's workers build their own :class:`~vlmkit.Session` in their own processes, so they
get its recipe, a :class:`SessionSpec`, rather than the Session itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from vlmkit.errors import BackendNotFound, ConfigError

if TYPE_CHECKING:
    from vlmkit.runner import Run
    from vlmkit.session import Session

__all__ = ["LOCAL", "Engine", "SessionSpec", "build_engine"]

#: The name of the default engine: the thread runner of :meth:`vlmkit.Session.run`.
LOCAL = "local"


def _settings(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@attrs.frozen(kw_only=True)
class SessionSpec:
    """How to build a :class:`~vlmkit.Session` again in another process (an engine's worker).

    ``settings`` are the backend's construction settings (``--config``), credentials included:
    they travel to the workers but never show in a repr or a log. ``cache`` is the answer
    cache (``True``: each worker's default folder; a path: a folder the workers share).
    ``plugins`` are module names (or, for an engine whose workers share this machine, ``.py``
    files by absolute path) every worker imports and registers (extra middleware or backends;
    they must be importable there).
    """

    backend: str
    model: str | None = None
    settings: dict[str, Any] = attrs.field(factory=dict, converter=_settings, repr=False)
    cache: bool | str | None = attrs.field(
        default=None, converter=lambda v: os.fspath(v) if isinstance(v, os.PathLike) else v
    )
    plugins: tuple[str, ...] = attrs.field(default=(), converter=_names)

    def session(self) -> Session:
        """A new Session built from this recipe (the caller closes it)."""
        from vlmkit.plugins import import_plugin
        from vlmkit.session import Session

        modules = [import_plugin(name) for name in self.plugins]
        return Session(
            self.backend, model=self.model, plugins=modules, cache=self.cache, **self.settings
        )


class Engine(Protocol):
    """What an engine's factory returns: something that makes a run of a Session's task."""

    def run(
        self,
        session: Session,
        spec: SessionSpec,
        task: str,
        inputs: Iterable[str | os.PathLike[str]],
        **run_arguments: Any,
    ) -> Run:
        """A :class:`~vlmkit.runner.Run` of ``task`` over ``inputs`` (iterate it to process).

        ``session`` is this process's session, built from ``spec`` (it checks the task, names
        the run in ``run.json`` and writes the sinks); ``run_arguments`` are those of
        :meth:`vlmkit.Session.run` (``prompt``, ``out_dir``, ``sinks``, ``concurrency``, ...).
        """
        ...


def build_engine(session: Session, name: str, options: Mapping[str, Any] | None = None) -> Engine:
    """The installed engine ``name``, built with ``options`` (text values are converted and
    checked against the engine's declared options first)."""
    try:
        info = session.engine_info(name)
    except BackendNotFound as err:
        raise BackendNotFound(
            f"{err}. The ray engine comes with `pip install vlmkit-ray`; without an engine "
            f"option the local thread runner ({LOCAL!r}) answers"
        ) from err
    declared = {option.name: option for option in info.options}
    given = dict(options or {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        allowed = ", ".join(sorted(declared)) or "none"
        raise ConfigError(
            f"engine {info.name!r} has no option(s) {', '.join(unknown)}; its options are: "
            f"{allowed}"
        )
    checked = {
        key: declared[key].validate(value) if value is not None else None
        for key, value in given.items()
    }
    engine: Engine = info.factory(**checked)
    return engine
