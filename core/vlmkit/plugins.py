"""Plugin discovery and registration for one Session: no global state.

Each entry point in the ``vlmkit`` group is loaded on its own; a broken plugin is reported with
its distribution and error while the others keep working (``strict=True`` raises instead).
Misspelled hooks, hook functions without ``@vlmkit.hookimpl`` and task hooks in plugin modules
that are not middleware are caught at registration, and a failed registration is rolled back.
Two plugins registering one name make that name an error that names both.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import os
import sys
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import attrs
import pluggy

from vlmkit.errors import BackendNotFound, PluginError
from vlmkit.hookspecs import PROJECT_NAME, REGISTRATION_HOOKS, TASK_HOOKS, VlmkitSpecs
from vlmkit.records import BackendInfo, EngineInfo, SinkInfo, normalize_name

__all__ = ["ENV_LOAD_PLUGINS", "PluginFailure", "PluginHost", "PluginWarning", "import_plugin"]

log = logging.getLogger(__name__)

ENV_LOAD_PLUGINS = "VLMKIT_LOAD_PLUGINS"
_KNOWN_HOOKS = (*REGISTRATION_HOOKS, *TASK_HOOKS)
_MARKER = f"{PROJECT_NAME}_impl"


class PluginWarning(UserWarning):
    """A plugin could not be loaded or registered; the rest of vlmkit keeps working."""


@attrs.frozen(kw_only=True)
class PluginFailure:
    """A plugin that failed to load or register, and why."""

    plugin: str
    distribution: str | None
    error: str
    error_type: str

    def __str__(self) -> str:
        where = f" (from {self.distribution})" if self.distribution else ""
        return f"plugin {self.plugin!r}{where}: {self.error_type}: {self.error}"


def _selection(entrypoints: bool | Iterable[str] | None) -> bool | frozenset[str]:
    if entrypoints is None:
        value = os.environ.get(ENV_LOAD_PLUGINS)
        if value is None:
            return True
        names = frozenset(n.strip().lower() for n in value.split(",") if n.strip())
        return names or False
    if isinstance(entrypoints, bool):
        return entrypoints
    if isinstance(entrypoints, str):
        entrypoints = [entrypoints]
    return frozenset(n.strip().lower() for n in entrypoints)


def _dist_label(entry_point: importlib.metadata.EntryPoint) -> str | None:
    dist = entry_point.dist
    if dist is None:
        return None
    return f"{dist.metadata['Name']} {dist.version}"


def _hook_functions(plugin: object) -> dict[str, Any]:
    """Every attribute of a plugin whose name looks like a vlmkit hook."""
    names = dir(plugin) if not inspect.ismodule(plugin) else list(vars(plugin))
    found = {}
    for name in names:
        if name.startswith(f"{PROJECT_NAME}_") and name != _MARKER:
            try:
                found[name] = getattr(plugin, name)
            except Exception:  # a property that raises is not a hook
                continue
    return found


def _readable_name(plugin: object) -> str:
    """A plugin's name for messages: a module's name, else its class and a short id."""
    if inspect.ismodule(plugin):
        return plugin.__name__
    label = getattr(plugin, "name", None)
    kind = type(plugin).__qualname__
    suffix = f"{id(plugin) & 0xFFFF:04x}"
    return f"{kind}:{label}:{suffix}" if isinstance(label, str) else f"{kind}:{suffix}"


class PluginHost:
    """One pluggy PluginManager with vlmkit's specs, the loaded plugins and their records."""

    def __init__(
        self,
        *,
        plugins: Iterable[object] = (),
        entrypoints: bool | Iterable[str] | None = None,
        strict: bool = False,
    ) -> None:
        self.strict = strict
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(VlmkitSpecs)
        self.failures: list[PluginFailure] = []
        self.distributions: dict[str, str | None] = {}
        self._records: dict[str, Any] | None = None
        self.conflicts: dict[tuple[str, str], list[str]] = {}
        selection = _selection(entrypoints)
        if selection is not False:
            self._load_entrypoints(selection)
        for plugin in plugins:
            self.register(plugin)
        if strict:
            self._all_records()  # surface broken registration hooks and conflicts now

    # -- loading --------------------------------------------------------------------------
    def _load_entrypoints(self, selection: bool | frozenset[str]) -> None:
        seen: set[tuple[str, str]] = set()
        available: set[str] = set()
        for entry_point in importlib.metadata.entry_points(group=PROJECT_NAME):
            key = (entry_point.name, entry_point.value)
            if key in seen:
                continue
            seen.add(key)
            dist = _dist_label(entry_point)
            if isinstance(selection, frozenset):
                dist_name = entry_point.dist.metadata["Name"].lower() if entry_point.dist else ""
                available.update(n for n in (entry_point.name.lower(), dist_name) if n)
                if entry_point.name.lower() not in selection and dist_name not in selection:
                    continue
            if self.pm.has_plugin(entry_point.name):
                continue
            try:
                plugin = entry_point.load()
            except Exception as err:
                self._fail(entry_point.name, dist, err)
                continue
            self.register(plugin, name=entry_point.name, distribution=dist, middleware_only=True)
        if isinstance(selection, frozenset):
            self._warn_unknown(selection, available)

    @staticmethod
    def _warn_unknown(selection: frozenset[str], available: set[str]) -> None:
        """A name in the selection that no installed plugin has is a typo until proven
        otherwise: say so, with the names that exist."""
        for name in sorted(selection - available):
            close = difflib.get_close_matches(name, sorted(available), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            message = (
                f"vlmkit: {ENV_LOAD_PLUGINS} (or entrypoints=) names {name!r}, which no "
                f"installed plugin has{hint} Installed entry points and distributions: "
                f"{', '.join(sorted(available)) or 'none'}"
            )
            log.warning("%s", message)
            warnings.warn(message, PluginWarning, stacklevel=4)

    def register(
        self,
        plugin: object,
        name: str | None = None,
        *,
        distribution: str | None = None,
        middleware_only: bool = False,
        raising: bool = False,
    ) -> str | None:
        """Register a plugin (a module or object with ``@vlmkit.hookimpl`` functions).

        Returns its name, or ``None`` when it was refused (recorded in :attr:`failures`, or
        raised as :class:`~vlmkit.PluginError` in strict mode or with ``raising=True``).
        """
        plugin_name = name or _readable_name(plugin)
        try:
            self._validate(plugin, middleware_only=middleware_only)
            if not inspect.ismodule(plugin) and not self._has_hooks(plugin):
                raise PluginError(
                    f"{plugin!r} has no @vlmkit.hookimpl functions; pass a module or an object "
                    "with hook implementations"
                )
            registered = self.pm.register(plugin, name=name or plugin_name)
            self.pm.check_pending()  # catches specname= typos pluggy accepted silently
        except Exception as err:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            if raising:
                raise PluginError(f"could not register {plugin_name!r}: {err}") from err
            self._fail(plugin_name, distribution, err)
            return None
        if registered is not None:
            self.distributions[registered] = distribution
        self._records = None
        return registered

    @staticmethod
    def _has_hooks(plugin: object) -> bool:
        return any(
            hasattr(getattr(plugin, attr, None), _MARKER)
            for attr in dir(plugin)
            if not attr.startswith("__")
        )

    def unregister(self, plugin: object) -> None:
        self.pm.unregister(plugin)
        self._records = None

    def _validate(self, plugin: object, *, middleware_only: bool) -> None:
        for attr_name, function in _hook_functions(plugin).items():
            if attr_name not in _KNOWN_HOOKS:
                close = difflib.get_close_matches(attr_name, _KNOWN_HOOKS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise PluginError(f"unknown hook {attr_name!r}{hint}")
            opts = getattr(function, _MARKER, None)
            if opts is None:
                raise PluginError(
                    f"{attr_name!r} is not decorated with @vlmkit.hookimpl, so it would never "
                    "be called"
                )
            wrapper = opts.get("wrapper") or opts.get("hookwrapper")
            if middleware_only and attr_name in TASK_HOOKS and not wrapper:
                raise PluginError(
                    f"{attr_name!r} in a plugin module must be middleware "
                    "(@vlmkit.hookimpl(wrapper=True)); a backend's native task route belongs "
                    "on its Backend class"
                )

    def _fail(self, plugin: str, distribution: str | None, err: BaseException) -> None:
        failure = PluginFailure(
            plugin=plugin,
            distribution=distribution,
            error=str(err) or repr(err),
            error_type=type(err).__name__,
        )
        if self.strict:
            raise PluginError(f"could not load vlmkit {failure}") from err
        self.failures.append(failure)
        log.warning("vlmkit: %s", failure)
        warnings.warn(f"vlmkit: {failure}", PluginWarning, stacklevel=3)

    # -- records --------------------------------------------------------------------------
    def _collect(self, hook: str, record_type: type) -> dict[str, Any]:
        records: dict[str, Any] = {}
        conflicts: dict[str, list[str]] = {}
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            distribution = self.distributions.get(impl.plugin_name)
            try:
                produced = impl.function() or ()
                found: list[Any] = []
                for record in produced:
                    if not isinstance(record, record_type):
                        raise PluginError(
                            f"{hook} must yield {record_type.__name__} records, "
                            f"got {type(record).__name__}"
                        )
                    found.append(
                        attrs.evolve(
                            cast(Any, record), plugin=impl.plugin_name, distribution=distribution
                        )
                    )
            except Exception as err:
                self._fail(impl.plugin_name, distribution, err)
                continue
            for record in found:
                if record.name in conflicts:
                    conflicts[record.name].append(impl.plugin_name)
                elif record.name in records:
                    first = records.pop(record.name)
                    conflicts[record.name] = [first.plugin, impl.plugin_name]
                else:
                    records[record.name] = record
        for name, providers in conflicts.items():
            message = f"{hook}: {name!r} registered by both " + " and ".join(
                repr(p) for p in providers
            )
            if self.strict:
                raise PluginError(message + "; uninstall one of them")
            self.conflicts[(hook, name)] = providers
            log.warning("vlmkit: %s", message)
        return dict(sorted(records.items()))

    def _all_records(self) -> dict[str, Any]:
        if self._records is None:
            self.conflicts = {}
            self._records = {
                "backends": self._collect("vlmkit_backends", BackendInfo),
                "sinks": self._collect("vlmkit_sinks", SinkInfo),
                "engines": self._collect("vlmkit_engines", EngineInfo),
            }
        return self._records

    def backends(self) -> Mapping[str, BackendInfo]:
        return self._all_records()["backends"]

    def sinks(self) -> Mapping[str, SinkInfo]:
        return self._all_records()["sinks"]

    def engines(self) -> Mapping[str, EngineInfo]:
        return self._all_records()["engines"]

    def backend(self, name: str) -> BackendInfo:
        return self._lookup("vlmkit_backends", "backend", name, self.backends())

    def sink(self, name: str) -> SinkInfo:
        return self._lookup("vlmkit_sinks", "sink", name, self.sinks())

    def engine(self, name: str) -> EngineInfo:
        return self._lookup("vlmkit_engines", "engine", name, self.engines())

    def _lookup(self, hook: str, kind: str, name: str, records: Mapping[str, Any]) -> Any:
        key = normalize_name(name)
        if key in records:
            return records[key]
        if (hook, key) in self.conflicts:
            providers = " and ".join(repr(p) for p in self.conflicts[(hook, key)])
            raise PluginError(
                f"{kind} {key!r} is registered by both {providers}; uninstall one of them"
            )
        available = ", ".join(records) or "none"
        message = f"no {kind} named {key!r}; installed: {available}"
        if self.failures:
            message += f". {len(self.failures)} plugin(s) failed to load: " + "; ".join(
                str(f) for f in self.failures
            )
        elif not records:
            where = {
                "backend": "is the plugin installed, e.g. `pip install vlmkit-gemini`?",
                "engine": "is the plugin installed, e.g. `pip install vlmkit-ray`?",
            }.get(kind, "the built-in sinks come with vlmkit's own entry points;")
            message += f" ({where} is {ENV_LOAD_PLUGINS} or entrypoints= limiting what loads?)"
        raise BackendNotFound(message)


def import_plugin(spec: str) -> object:
    """Import a plugin module by dotted name, or a local ``.py`` file by path."""
    if not (spec.endswith(".py") or "/" in spec or os.sep in spec):
        return importlib.import_module(spec)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no such plugin file: {spec}")
    resolved = path.resolve()
    name = path.stem if path.stem.isidentifier() else "vlmkit_local_plugin"
    existing = sys.modules.get(name)
    if existing is not None:
        loaded_from = getattr(existing, "__file__", None)
        if loaded_from and Path(loaded_from).resolve() == resolved:
            return existing
        name = f"vlmkit_local_plugin_{abs(hash(resolved)):x}"
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot import {spec} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
