"""Which installed plugins a test needs: the one that provides the backend under test, and
vlmkit's own (the built-in sinks) — never unrelated plugins, which may be broken."""

from __future__ import annotations

import logging
import warnings

from vlmkit.errors import VlmkitError

__all__ = ["plugin_under_test"]

#: the entry point of vlmkit's own built-in sinks
CORE_ENTRY_POINT = "sinks"


def plugin_under_test(name: str, kind: str = "backend") -> tuple[str, ...]:
    """Entry-point names to load for a test of the backend (or ``kind="sink"``) ``name``: the
    plugin providing it and vlmkit's built-in sinks. Other plugins are looked at leniently (a
    broken one is ignored here); when no installed plugin provides it only the built-ins are
    named."""
    from vlmkit.plugins import PluginHost

    logger = logging.getLogger("vlmkit.plugins")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            host = PluginHost(entrypoints=True, strict=False)
            try:
                info = host.backend(name) if kind == "backend" else host.sink(name)
            except VlmkitError:
                # two providers: load both, so the strict session names them in its error
                hook = f"vlmkit_{kind}s"
                providers = host.conflicts.get((hook, name.strip().lower()), [])
                return (*providers, CORE_ENTRY_POINT)
    finally:
        logger.setLevel(level)
    return tuple(name for name in (info.plugin, CORE_ENTRY_POINT) if name)
