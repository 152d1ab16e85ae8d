"""Kept for imports written before the sink API was public: everything here now lives in
:mod:`vlmkit.sink` (``StagedSink``, ``as_bool``, ``as_names``, ``as_choice``,
``reject_unknown``). Import it from there."""

from __future__ import annotations

from vlmkit.sink import StagedSink, as_bool, as_choice, as_names, reject_unknown

__all__ = ["StagedSink", "as_bool", "as_choice", "as_names", "reject_unknown"]
