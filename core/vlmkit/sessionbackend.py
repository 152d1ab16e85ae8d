"""The backend a Session opened, and the way the session calls it.

:meth:`OpenedBackend.open` finds the backend by name, validates its settings against what it
declares, starts it through its factory (a factory's failure is a :class:`~vlmkit.PluginError`
naming the distribution, wrong settings a :class:`~vlmkit.ConfigError`), and registers it in the
pipeline when it has native task hooks. Its :class:`~vlmkit.runtime.Runtime` calls ``generate``
under the calling run's budget: through a :class:`~vlmkit.batching.MicroBatcher` for a backend
that batches, serialized for one that is not thread-safe.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import attrs

from vlmkit.backend import Backend
from vlmkit.batching import MicroBatcher
from vlmkit.errors import ConfigError, PluginError, VlmkitError
from vlmkit.plugins import PluginHost
from vlmkit.records import BackendInfo
from vlmkit.runtime import Runtime

__all__ = ["OpenedBackend"]


class OpenedBackend:
    """A started backend instance, its record and the session's :class:`Runtime` for it."""

    def __init__(self, instance: Backend, info: BackendInfo) -> None:
        self.instance = instance
        self.info = info
        self.batcher: MicroBatcher | None = None
        self.runtime: Runtime | None = None

    @classmethod
    def open(
        cls, host: PluginHost, name: str, model: str | None, options: dict[str, Any]
    ) -> OpenedBackend:
        """Start the installed backend ``name`` with ``model`` and its ``options``."""
        info = host.backend(name)
        config = dict(options)
        if model is not None:
            config["model"] = model
        declared = {setting.name: setting for setting in info.settings}
        for key, value in config.items():
            if key in declared and value is not None:
                config[key] = declared[key].validate(value)
        try:
            inspect.signature(info.factory).bind(**config)
        except TypeError as err:
            raise ConfigError(f"backend {info.name!r} does not take these settings: {err}") from err
        except ValueError:  # no introspectable signature: let the call decide
            pass
        try:
            instance = info.factory(**config)
        except VlmkitError:
            raise
        except TypeError as err:
            if "argument" not in str(err):  # a bug inside the factory, not our call
                raise PluginError(f"backend {info.name!r} failed to start: {err}") from err
            raise ConfigError(f"backend {info.name!r} does not take these settings: {err}") from err
        except Exception as err:
            where = f" (from {info.distribution})" if info.distribution else ""
            raise PluginError(
                f"backend {info.name!r}{where} failed to start: {type(err).__name__}: {err}"
            ) from err
        if not isinstance(instance, Backend):
            raise PluginError(
                f"backend {info.name!r} factory returned {type(instance).__name__}, "
                "not a vlmkit.Backend"
            )
        try:
            if PluginHost._has_hooks(instance):  # native task routes join the pipeline
                host.register(instance, name=f"backend:{info.name}", raising=True)
        except PluginError:
            instance.close()
            raise
        opened = cls(instance, info)
        from vlmkit.identity import backend_identity

        opened.runtime = Runtime(
            backend_name=info.name,
            model=getattr(instance, "model", None) or model,
            generate=opened._generate_function(),
            identity=backend_identity(info, instance, config),
        )
        return opened

    def _generate_function(self) -> Any:
        """The session's way to call the backend, under the calling run's budget (if any)."""
        from vlmkit.budget import budgeted

        instance = self.instance
        if instance.batch_size > 1:
            self.batcher = MicroBatcher(instance.generate_batch, batch_size=instance.batch_size)
            return budgeted(instance, self.batcher.generate)
        if not instance.thread_safe:
            return budgeted(instance, _serialized(instance.generate))
        return budgeted(instance, instance.generate)

    def set_batch_size(self, batch_size: int) -> None:
        """Make the backend generate ``batch_size`` requests together (a new batcher)."""
        backend = self.instance
        if batch_size == backend.batch_size:
            return
        if self.batcher is not None:
            self.batcher.close()
            self.batcher = None
        backend.batch_size = batch_size  # type: ignore[misc]
        assert self.runtime is not None
        self.runtime = attrs.evolve(self.runtime, generate=self._generate_function())

    def close(self) -> None:
        """Stop the batcher, then release the backend (clients, weights)."""
        if self.batcher is not None:
            self.batcher.close()
        self.instance.close()


def _serialized(generate: Any) -> Any:
    lock = threading.Lock()

    def call(request: Any) -> Any:
        with lock:
            return generate(request)

    return call
