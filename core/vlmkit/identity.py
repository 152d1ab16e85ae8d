"""A backend's identity: which model answered, where, and with which settings.

Two answers are interchangeable only if the same backend (name and distribution version)
answered with the same answer-relevant construction settings (the endpoint, the Vertex project
and location, the model, ...). The answer cache keys on this identity and a run folder records
it (``run.json``), so another endpoint or another ``--config`` never reuses an answer.
Credentials are never part of it: a key changes who pays, not what the model answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from vlmkit.records import BackendInfo

__all__ = ["backend_identity", "is_credential"]

_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "credential", "credentials")
_WORDS = re.compile(r"[a-z0-9]+")
_SCALARS = (str, int, float, bool)


def is_credential(name: str) -> bool:
    """Whether a setting named ``name`` holds a credential: one of its words is (or ends in)
    key, token, secret, password or credential(s) — ``api_key``, ``GEMINI_API_KEY``,
    ``authToken``, ``credentials``; but not ``max_soft_tokens``. Such values never enter cache
    keys, manifests, logs or error messages."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    return any(part.endswith(_SECRET_WORDS) for part in _WORDS.findall(spaced))


def backend_identity(
    info: BackendInfo, instance: object, config: Mapping[str, Any]
) -> dict[str, Any]:
    """The identity of a started backend: its name, distribution and answer-relevant settings.

    The settings are those the backend declares in ``BackendInfo.answer_settings``, by default
    every construction setting it declares or was given except credentials and ``model``
    (which is keyed on its own). A setting's value is the one the backend resolved (an instance
    attribute of that name, e.g. a project read from the environment) when it is a plain
    value, else the one given.
    """
    if info.answer_settings is not None:
        names = set(info.answer_settings)
    else:
        names = {setting.name for setting in info.settings} | set(config)
    settings: dict[str, Any] = {}
    for name in sorted(names):
        if name == "model" or is_credential(name):
            continue
        value = getattr(instance, name, None)
        if not isinstance(value, _SCALARS):
            value = config.get(name)
        if value is not None:
            settings[name] = value if isinstance(value, _SCALARS) else repr(value)
    distribution = info.distribution
    if distribution is None:  # registered directly: its code is its identity
        factory = info.factory
        distribution = (
            f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', '?')}"
        )
    return {"backend": info.name, "distribution": distribution, "settings": settings}
