"""A run's identity (``OUT/run.json``): what makes its answers comparable.

A resumed run must ask the same question as the run that started the folder; anything else
would mix answers to different questions in one dataset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vlmkit.errors import ConfigError

__all__ = ["MANIFEST_NAME", "check_manifest", "run_manifest"]

MANIFEST_NAME = "run.json"
_COMPARED = ("task", "prompt", "backend", "model", "options")


def run_manifest(
    session: Any, task: str, prompt: str | Sequence[str] | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    """What makes a run's results comparable: a resumed run must ask the same question."""
    backend = session.backend_info.name
    model = getattr(session.backend, "model", None)
    asked = prompt if isinstance(prompt, (str, type(None))) else list(prompt)
    chosen = dict(options)
    limits = getattr(session, "mask_limits", None)
    if task == "segment" and limits is not None:  # they change what masks are kept
        chosen.setdefault("max_mask_pixels", limits.pixels)
        chosen.setdefault("max_mask_vertices", limits.vertices)
    return {
        "version": 1,
        "task": task,
        "prompt": asked,
        "backend": backend,
        "model": model,
        "options": {k: chosen[k] for k in sorted(chosen)},
        "settings": session.backend_identity.get("settings", {}),
    }


def check_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` into a new run folder, or refuse one that holds another run's."""
    from vlmkit.atomic import atomic_write_text
    from vlmkit.serialize import to_json

    path = out_dir / MANIFEST_NAME
    current = json.loads(json.dumps(manifest, default=str))
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{path} is unreadable ({err}); use a new --out folder") from err
        changed = [
            f"{key}: {previous.get(key)!r} → {current[key]!r}"
            for key in _COMPARED
            if previous.get(key) != current[key]
        ]
        if "settings" in previous:  # folders of older versions did not record them
            changed += _changed_settings(previous["settings"] or {}, current.get("settings", {}))
        if changed:
            raise ConfigError(
                f"{out_dir} holds results of a different run ({'; '.join(changed)}); "
                "resuming would mix answers to different questions. Use a new --out "
                "folder, or repeat the original settings (and --config) to resume."
            )
        return
    atomic_write_text(path, to_json(current, indent=2) + "\n")


def _changed_settings(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The backend settings (``--config``) that differ, each named."""
    return [
        f"--config {name}: {previous.get(name)!r} → {current.get(name)!r}"
        for name in sorted(set(previous) | set(current))
        if previous.get(name) != current.get(name)
    ]
