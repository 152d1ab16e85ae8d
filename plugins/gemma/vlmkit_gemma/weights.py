"""The weights of one gemma-local backend: loaded lazily and once, released on close.

First the config (so a knob the checkpoint lacks is refused before any weights are read), then
processor and model through :mod:`vlmkit_gemma.loading`, then the token ids and ``generate()``
settings every request shares. Three locks: loading, the processor (the fast tokenizer is not
safe to re-pad from two threads) and the model (one ``generate`` at a time).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
import traceback
from typing import Any

from vlmkit import BackendError
from vlmkit_gemma import loading
from vlmkit_gemma.failures import load_error
from vlmkit_gemma.hub import hub_reachable
from vlmkit_gemma.progress import transformers_bars_hidden

__all__ = ["ModelSlot"]

log = logging.getLogger(__name__)


class ModelSlot:
    """Processor, model and their shared generation settings, or nothing yet (or any more).

    ``name`` is the model as the user gave it (for messages), ``source`` where it loads from;
    ``hub_kwargs`` go to ``from_pretrained`` (``local_files_only`` is added when the Hub does
    not answer).
    """

    def __init__(
        self,
        *,
        name: str,
        source: str,
        device: str,
        dtype: Any,
        attn_implementation: str | None,
        hub_kwargs: dict[str, Any],
    ) -> None:
        self.name = name
        self.source = source
        self.device = device
        self.dtype = dtype
        self.attn_implementation = attn_implementation
        self.hub_kwargs = hub_kwargs
        self.load_lock = threading.RLock()
        self.prep_lock = threading.Lock()
        self.model_lock = threading.Lock()
        self.closed = False
        self.family: loading.Family | None = None
        self.processor: Any = None
        self.model: Any = None
        self.eos_ids: tuple[int, ...] = ()
        self.channel: tuple[int, int] | None = None
        self.generate_kwargs: dict[str, Any] = {}

    def check_open(self) -> None:
        if self.closed:
            raise BackendError("this gemma-local backend is closed; open a new Session")

    def ensure_config(self) -> loading.Family:
        if self.family is not None:
            return self.family
        with self.load_lock:
            self.check_open()
            if self.family is None:
                self._go_offline_if_the_hub_is_unreachable()
                try:
                    config = loading.load_config(self.source, **self.hub_kwargs)
                except Exception as err:
                    raise load_error(err, str(self.name)) from err
                family = loading.model_family(config)
                if family == "other":
                    log.warning(
                        "%s is not a Gemma 4 or Gemma 3 checkpoint (model_type %r); "
                        "gemma-local will try it, without image budgets",
                        self.name,
                        getattr(config, "model_type", None),
                    )
                self.family = family
        return self.family

    def _go_offline_if_the_hub_is_unreachable(self) -> None:
        """Probe the Hub once for a Hub id; if it does not answer, load from the cache only.

        Without this, every file transformers asks for is retried five times with backoff
        (about 50 s of warnings) before the same "not in the local cache" error.
        """
        if os.path.isdir(self.source) or self.hub_kwargs.get("local_files_only"):
            return
        from huggingface_hub import constants

        if constants.is_offline_mode():
            return
        if not hub_reachable(self.source, revision=self.hub_kwargs.get("revision")):
            log.warning(
                "the Hugging Face Hub cannot be reached: loading %s from the local cache only",
                self.name,
            )
            self.hub_kwargs["local_files_only"] = True

    def ensure_loaded(self) -> None:
        if self.model is not None:
            return
        with self.load_lock:
            self.check_open()
            if self.model is not None:
                return
            started = time.perf_counter()
            processor = model = None
            log.info("gemma-local: loading %s on %s ...", self.name, self.device)
            try:
                with transformers_bars_hidden():
                    processor = loading.load_processor(self.source, **self.hub_kwargs)
                    model = loading.load_model(
                        self.source,
                        device=self.device,
                        dtype=self.dtype,
                        attn_implementation=self.attn_implementation,
                        **self.hub_kwargs,
                    )
                self._configure(processor, model)
            except Exception as err:
                # never keep a half-loaded model: not here, nor in the traceback's frames
                del processor, model
                traceback.clear_frames(err.__traceback__)
                gc.collect()
                self.empty_cache()
                raise load_error(err, str(self.name)) from err
            self.processor, self.model = processor, model
            log.info(
                "gemma-local: loaded %s on %s (%s) in %.1f s",
                self.name,
                model.device,
                model.dtype,
                time.perf_counter() - started,
            )

    def _configure(self, processor: Any, model: Any) -> None:
        """Token ids and generate() settings that every request shares."""
        tokenizer = getattr(processor, "tokenizer", processor)
        tokenizer.padding_side = "left"  # batched generation continues on the right
        generation_config = model.generation_config
        eos = generation_config.eos_token_id
        eos_ids = {
            int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None
        }
        if tokenizer.eos_token_id is not None:
            eos_ids.add(int(tokenizer.eos_token_id))
        for name in ("<turn|>", "<end_of_turn>"):  # end of turn, even if the config omits it
            token_id = _token_id(tokenizer, name)
            if token_id is not None:
                eos_ids.add(token_id)
        self.eos_ids = tuple(sorted(eos_ids))
        start = _token_id(tokenizer, getattr(tokenizer, "soc_token", None) or "<|channel>")
        end = _token_id(tokenizer, getattr(tokenizer, "eoc_token", None) or "<channel|>")
        self.channel = (start, end) if start is not None and end is not None else None
        self.generate_kwargs = {"eos_token_id": list(self.eos_ids)}
        if generation_config.pad_token_id is None and tokenizer.pad_token_id is not None:
            self.generate_kwargs["pad_token_id"] = int(tokenizer.pad_token_id)

    def close(self) -> None:
        """Free the weights and the processor (and cached GPU memory). Idempotent."""
        with self.load_lock, self.model_lock:
            self.closed = True
            released = self.model is not None or self.processor is not None
            self.model = self.processor = None
        if released:
            gc.collect()
            self.empty_cache()

    def empty_cache(self) -> None:
        torch = sys.modules.get("torch")
        if torch is None:
            return
        if self.device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()
        elif self.device == "mps" and hasattr(torch, "mps"):
            torch.mps.empty_cache()


def _token_id(tokenizer: Any, token: str | None) -> int | None:
    """The id of a single special token, or ``None`` when the vocabulary lacks it."""
    if not token:
        return None
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        return None
    return int(token_id)
