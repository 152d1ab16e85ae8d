"""Keep transformers' own progress bars off the screen while gemma-local works.

transformers draws "Loading weights" (and "Writing model shards" when saving) on stderr with
tqdm. Inside ``vlmkit label`` that tears vlmkit's own progress bar, so gemma-local hides them and
logs the load instead: one display at a time. Downloads from the Hub are drawn by
huggingface_hub, not transformers, and stay visible (a first download is long and worth seeing;
``hf download`` beforehand keeps it apart from a run).

transformers offers one process-wide hook for this (``set_tqdm_hook``); it is set only for the
duration of :func:`transformers_bars_hidden`, under a lock, and the previous hook is restored.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["transformers_bars_hidden"]

_HOOK_LOCK = threading.Lock()  # the hook is process-wide: one setter at a time


def _hidden(factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return factory(*args, **{**kwargs, "disable": True})


@contextlib.contextmanager
def transformers_bars_hidden() -> Iterator[None]:
    """Within the block, transformers' tqdm bars are created disabled (iteration still works)."""
    from transformers.utils import logging as hf_logging

    with _HOOK_LOCK:
        previous = hf_logging.set_tqdm_hook(_hidden)
        try:
            yield
        finally:
            hf_logging.set_tqdm_hook(previous)
