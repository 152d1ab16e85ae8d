"""Which model a Gemini backend talks to, which model answers, and what that model can do.

A retired name is warned about (:class:`~vlmkit_gemini.lifecycle.RetiredModelWarning`); where
Google routes it to a replacement, the replacement's capability entry applies, with only the
settings both models accept. The capability table is the built-in
:data:`~vlmkit_gemini.models.MODEL_TABLE`, extended or replaced for one backend by its
``capabilities=`` argument; nothing global changes.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import attrs

from vlmkit import ConfigError
from vlmkit_gemini.lifecycle import RetiredModelWarning, RetiredTable, retirement_message
from vlmkit_gemini.models import MODEL_TABLE, ModelCaps, ModelTable, normalize_model

__all__ = ["ModelChoice", "choose_model"]

Capabilities = ModelCaps | ModelTable | Mapping[str, ModelCaps] | None


@attrs.frozen(kw_only=True)
class ModelChoice:
    """A backend's model: as named (normalized), the model that answers it, the capability
    table in force and the answering model's entry in it."""

    model: str
    answering_model: str
    table: ModelTable
    caps: ModelCaps


def choose_model(model: str, *, retired: RetiredTable, capabilities: Capabilities) -> ModelChoice:
    """The choice for ``model``, warning when it is retired. Called by a backend's
    ``__init__`` (the warning points at the code that built the backend)."""
    name = normalize_model(model)
    answering = name
    found = retired.lookup(name)
    if found is not None:
        warnings.warn(retirement_message(name, found), RetiredModelWarning, stacklevel=4)
        answering = normalize_model(found.replacement) if found.routed else name
    table, caps = _capabilities(name, answering, capabilities)
    return ModelChoice(model=name, answering_model=answering, table=table, caps=caps)


def _capabilities(
    model: str, answering: str, capabilities: Capabilities
) -> tuple[ModelTable, ModelCaps]:
    """The capability table and the answering model's entry."""
    if capabilities is None:
        table = MODEL_TABLE
    elif isinstance(capabilities, ModelCaps):
        table = MODEL_TABLE.extended({model: capabilities})
    elif isinstance(capabilities, ModelTable):
        table = capabilities
    elif isinstance(capabilities, Mapping):
        table = MODEL_TABLE.extended(capabilities)
    else:
        raise ConfigError(
            "capabilities must be a vlmkit_gemini.models.ModelCaps, a mapping "
            "{model pattern: ModelCaps} or a ModelTable, got "
            f"{type(capabilities).__name__}"
        )
    if isinstance(capabilities, ModelCaps):
        return table, capabilities
    caps = table.caps_for(answering)
    if answering != model:
        # A routed retired name: the replacement answers, but whether the endpoint checks
        # options against the old name or the new one is not documented, so send only what
        # both accept: no default thinking setting, media_resolution for the whole request.
        caps = attrs.evolve(caps, spatial_thinking=None, part_media_resolution=False)
    return table, caps
