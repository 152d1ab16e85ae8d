"""pytest fixtures for code that uses vlmkit (loaded automatically through the ``pytest11``
entry point when vlmkit is installed).

* ``vlmkit_session(backend=None, **kwargs)`` — build hermetic Sessions (no installed plugins
  unless you ask, strict plugin loading) that are closed after the test;
  ``entrypoints=True`` loads only the installed plugin that provides ``backend`` (and vlmkit's
  built-in sinks).
* ``scripted_session(script, **kwargs)`` — a Session whose backend answers from ``script``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def vlmkit_session() -> Iterator[Callable[..., Any]]:
    """A factory of hermetic vlmkit Sessions, closed after the test.

    ``vlmkit_session(backend=None, **kwargs)`` takes :class:`vlmkit.Session`'s arguments. By
    default no installed plugin loads and loading is strict; ``entrypoints=True`` loads the
    installed plugin that provides ``backend`` and vlmkit's built-in sinks — an unrelated
    broken plugin never fails your test. Pass a list of names to choose them yourself.
    """
    from vlmkit.session import Session
    from vlmkit.testing._select import plugin_under_test

    sessions: list[Session] = []

    def make(backend: str | None = None, **kwargs: Any) -> Session:
        kwargs.setdefault("entrypoints", False)
        if kwargs["entrypoints"] is True:
            kwargs["entrypoints"] = plugin_under_test(backend) if backend else ("sinks",)
        kwargs.setdefault("strict", True)
        session = Session(backend, **kwargs)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


@pytest.fixture
def scripted_session(vlmkit_session: Callable[..., Any]) -> Callable[..., Any]:
    """A factory of Sessions whose backend answers from a script (closed after the test).

    ``scripted_session(script, **kwargs)``: ``script`` is what
    :class:`vlmkit.testing.ScriptedBackend` takes (one answer, a list, a mapping by task, or a
    callable ``request -> answer``); backend keywords (``convention``, ``image_policy``,
    ``tasks``, ``name``, ...) configure it, the rest go to :class:`vlmkit.Session`.
    """
    from vlmkit.testing.scripted import scripted_plugin

    def make(script: Any = "", *, plugins: tuple[object, ...] = (), **kwargs: Any) -> Any:
        backend_keys = (
            "model",
            "convention",
            "options",
            "image_policy",
            "latency_s",
            "concurrency",
            "batch_size",
            "max_images",
            "sends_image_files",
            "tasks",
            "media",
            "name",
        )
        backend_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in backend_keys}
        name = backend_kwargs.get("name", "scripted")
        plugin = scripted_plugin(script, **backend_kwargs)
        return vlmkit_session(name, plugins=(plugin, *plugins), **kwargs)

    return make
