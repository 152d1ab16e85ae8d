"""What one task call of a Session carries: the keyword options split into the backend's own
(checked against what it declares) and the session's settings (system prompt, mask limits,
...), and the check that the backend supports the task at all."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from vlmkit.errors import ConfigError, UnsupportedTask
from vlmkit.masks import MaskLimits
from vlmkit.records import BackendInfo, Option

__all__ = ["SESSION_SETTINGS", "check_supported", "mask_settings", "split_options"]

#: Call options the session (the core's task pipeline) reads; every other option goes to the
#: backend, which must declare it.
SESSION_SETTINGS = (
    "system",
    "threshold",
    "use_system_prompt",
    "response_schema",
    "json",
    "duration_s",
    "boxes",
    "max_mask_pixels",
    "max_mask_vertices",
)
_MASK_SETTINGS = {"max_mask_pixels": "pixels", "max_mask_vertices": "vertices"}


def split_options(
    options: dict[str, Any], declared_options: Iterable[Option], backend_name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(backend options, session settings)`` from a call's keywords (``options`` is emptied
    of the settings); an option the backend does not declare is a clear error."""
    settings = {k: options.pop(k) for k in list(options) if k in SESSION_SETTINGS}
    declared: dict[str, Option] = {o.name: o for o in declared_options}
    unknown = sorted(set(options) - set(declared))
    if unknown:
        allowed = ", ".join(sorted(declared)) or "none"
        raise ConfigError(
            f"backend {backend_name!r} has no option(s) {', '.join(unknown)}; "
            f"its options are: {allowed}"
        )
    validated = {name: declared[name].validate(value) for name, value in options.items()}
    return validated, settings


def mask_settings(
    task: str, settings: dict[str, Any], mask_limits: MaskLimits | None
) -> dict[str, Any]:
    """Check a call's ``max_mask_pixels`` / ``max_mask_vertices`` (whole numbers >= 0,
    text from the command line included) and, for segment, complete them from the
    session's ``mask_limits``: the generic route parses the answer with those limits."""
    given: dict[str, int] = {}
    for name, field in _MASK_SETTINGS.items():
        value = settings.pop(name, None)
        if value is None:
            continue
        try:
            number = int(value, 10) if isinstance(value, str) else value
            MaskLimits(**{field: number})  # validates: an integer >= 0
        except (ValueError, ConfigError):
            raise ConfigError(f"{name} must be a whole number >= 0, got {value!r}") from None
        given[name] = number
    if task != "segment" or (not given and mask_limits is None):
        return settings
    limits = mask_limits or MaskLimits()
    pixels = given.get("max_mask_pixels", limits.pixels)
    vertices = given.get("max_mask_vertices", limits.vertices)
    return {**settings, "max_mask_pixels": pixels, "max_mask_vertices": vertices}


def check_supported(
    info: BackendInfo,
    task: str,
    medium: str,
    supporting: Callable[[str, str], Iterable[str]],
) -> None:
    """Raise :class:`~vlmkit.UnsupportedTask` unless backend ``info`` does ``task`` on
    ``medium``, naming the installed backends that can (``supporting(task, medium)``)."""
    if task in info.tasks and medium in info.media:
        return
    alternatives = tuple(n for n in supporting(task, medium) if n != info.name)
    what = task if medium == "image" or task == "video" else f"{task} on {medium}"
    hint = (
        f"; installed backends that can: {', '.join(alternatives)}"
        if alternatives
        else "; no installed backend can"
    )
    raise UnsupportedTask(
        f"backend {info.name!r} does not support {what}{hint}",
        task=task,
        alternatives=alternatives,
    )
