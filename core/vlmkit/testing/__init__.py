"""Tools for testing backends, sinks and code that uses vlmkit — without a model.

* :class:`ScriptedBackend` answers from a script, so every task runs end to end offline.
* :func:`scripted_plugin` registers one as a backend for a :class:`vlmkit.Session`.
* :func:`check_backend` is the conformance check a backend author runs against their backend.
* The pytest plugin (loaded automatically when vlmkit is installed) provides fixtures
  ``vlmkit_session`` and ``scripted_session``.
"""

from vlmkit.testing.conformance import ConformanceReport, check_backend, sample_images
from vlmkit.testing.scripted import ScriptedBackend, scripted_plugin

__all__ = [
    "ConformanceReport",
    "ScriptedBackend",
    "check_backend",
    "sample_images",
    "scripted_plugin",
]
