"""Tools for testing backends, sinks and code that uses vlmkit — without a model.

* :func:`check_backend` is the conformance check a backend author runs: declarations, result
  types, refusals, errors — and boxes compared with the truth on awkward images.
* :func:`true_answer` is its oracle: given the image a model received and the convention the
  model speaks, the answer a perfect model gives. Wire it into your fake model or server.
* :func:`check_sink` is the conformance check of a sink: it writes real results through the
  core's run machinery and checks files stay in the output folder.
* :class:`ScriptedBackend` answers from a script, so every task runs end to end offline;
  :func:`scripted_plugin` registers one as a backend for a :class:`vlmkit.Session`.
* The pytest plugin (loaded automatically when vlmkit is installed) provides fixtures
  ``vlmkit_session`` and ``scripted_session``.
"""

from vlmkit.testing.conformance import ConformanceReport, check_backend, sample_images
from vlmkit.testing.oracle import (
    OracleSample,
    Target,
    find_targets,
    oracle_samples,
    tolerance_px,
    true_answer,
)
from vlmkit.testing.scripted import ScriptedBackend, scripted_plugin
from vlmkit.testing.sinks import check_sink

__all__ = [
    "ConformanceReport",
    "OracleSample",
    "ScriptedBackend",
    "Target",
    "check_backend",
    "check_sink",
    "find_targets",
    "oracle_samples",
    "sample_images",
    "scripted_plugin",
    "tolerance_px",
    "true_answer",
]
