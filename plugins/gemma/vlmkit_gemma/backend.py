"""The ``gemma-local`` backend: Gemma 4 and Gemma 3 vision models on this machine.

A generic vlmkit backend: it implements ``generate`` (and a real batched ``generate_batch``);
the core builds prompts, prepares images, parses answers and maps ``box_2d`` boxes (``yxyx`` on
a 0–1000 grid) back to original pixels.

* Loading is lazy and happens once, on the first request, under a lock: first the config (so a
  knob the checkpoint lacks is refused before any weights are read), then processor and model
  through :mod:`vlmkit_gemma.loading` (the only module that touches ``AutoProcessor`` /
  ``AutoModelForImageTextToText``; it works without torchvision). :meth:`close` frees them.
  :mod:`vlmkit_gemma.weights` holds them.
* Requests become Gemma chat messages with the images before the text; a video becomes sampled
  frames, each after its ``mm:ss`` stamp (:mod:`vlmkit_gemma.messages`).
* :meth:`generate_batch` groups requests whose knobs agree (image budget, pan-and-scan,
  ``max_new_tokens``, sampling, thinking; :mod:`vlmkit_gemma.planning`) and runs each group as
  one left-padded batch (:mod:`vlmkit_gemma.generation`); greedy answers are the same as one
  at a time. The Session routes concurrent calls here through its MicroBatcher when
  ``batch_size > 1``.
* Thinking blocks are dropped by token id and end-of-turn tokens cut the answer
  (:mod:`vlmkit_gemma.decoding`).

``thread_safe`` is True: a lock serializes model calls (one ``generate`` at a time gains nothing
on one device and would race on torch's global RNG for seeded sampling) and another serializes
the processor (the fast tokenizer is not safe to re-pad from two threads), so preprocessing one
request overlaps generation of another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vlmkit import (
    Backend,
    BackendError,
    ConfigError,
    Generation,
    Request,
    ResizePolicy,
    VlmkitError,
)
from vlmkit_gemma import loading
from vlmkit_gemma.failures import check_model_source
from vlmkit_gemma.generation import run_batch
from vlmkit_gemma.planning import Plan, Planner, batches
from vlmkit_gemma.settings import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_VIDEO_BUDGET,
    GREEDY_TASKS,
    OPTIONS,
    budget,
    check_sampling,
    optional_positive_int,
    positive_int,
    setting,
)
from vlmkit_gemma.weights import ModelSlot

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "DEFAULT_MODEL",
    "GREEDY_TASKS",
    "OPTIONS",
    "GemmaLocalBackend",
]

DEFAULT_MODEL = "google/gemma-4-E2B-it"


class GemmaLocalBackend(Backend):
    """Gemma 4 / Gemma 3 vision models through transformers, on CPU, CUDA or Apple MPS.

    ``model``: a Hub id (``google/gemma-4-E2B-it``, ``google/gemma-4-E4B-it``,
    ``google/gemma-3-4b-it``, ...) or a local checkpoint folder. ``device`` (``"cpu"``,
    ``"cuda"``, ``"cuda:N"``, ``"mps"``, default: the best available) and ``dtype``
    (``"bfloat16"``, ``"float16"``, ``"float32"``; default bf16 on GPUs, the checkpoint's own
    dtype on CPU) choose where and how the weights live; ``attn_implementation`` (``"sdpa"``,
    ``"eager"``) goes to transformers. ``batch_size`` is how many requests generate together
    (default 4 on a GPU, 1 on CPU where batching gains little). ``max_new_tokens`` overrides the
    per-task defaults; ``max_soft_tokens`` is the Gemma 4 image budget (default 280) and
    ``video_max_soft_tokens`` the per-frame budget for video (default 70); ``pan_and_scan``
    is Gemma 3's crop option. ``thinking`` turns on Gemma 4's thinking mode for every call;
    ``temperature``/``top_p``/``top_k`` make describe and video sample (detect and OCR stay
    greedy). ``video_fps`` and ``video_frames`` set video sampling (1 fps, at most 16 frames).
    ``max_pixels`` shrinks huge images before they are sent (boxes still come back in original
    pixels). ``revision``, ``cache_dir`` and ``local_files_only`` go to ``from_pretrained``.
    """

    convention = "yxyx-1000"
    options = OPTIONS
    thread_safe = True

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str | None = None,
        dtype: Any = None,
        attn_implementation: str | None = None,
        batch_size: int | None = None,
        max_new_tokens: int | None = None,
        max_soft_tokens: int | None = None,
        pan_and_scan: bool | None = None,
        thinking: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        video_fps: float = 1.0,
        video_frames: int = 16,
        video_max_soft_tokens: int = DEFAULT_VIDEO_BUDGET,
        max_pixels: int | None = None,
        revision: str | None = None,
        cache_dir: str | None = None,
        local_files_only: bool | None = None,
    ) -> None:
        source = check_model_source(model)
        self.model = model
        self._device, _ = loading.select_device_and_dtype(device, dtype)  # validates both
        batch_size = setting("batch_size", batch_size, int)
        if batch_size is None:
            batch_size = 1 if self._device == "cpu" else 4
        self.batch_size = positive_int("batch_size", batch_size)
        self.concurrency = 2 * self.batch_size  # keep the batcher fed
        max_new_tokens = optional_positive_int(
            "max_new_tokens", setting("max_new_tokens", max_new_tokens, int)
        )
        max_soft_tokens = budget(
            "max_soft_tokens", setting("max_soft_tokens", max_soft_tokens, int)
        )
        video_budget = budget(
            "video_max_soft_tokens", setting("video_max_soft_tokens", video_max_soft_tokens, int)
        )
        pan_and_scan = setting("pan_and_scan", pan_and_scan, bool)
        thinking = bool(setting("thinking", thinking, bool))
        temperature = setting("temperature", temperature, float)
        top_p = setting("top_p", top_p, float)
        top_k = setting("top_k", top_k, int)
        check_sampling(temperature, top_p, top_k)
        video_fps = setting("video_fps", video_fps, float)
        if video_fps is None or not video_fps > 0:
            raise ConfigError(f"video_fps must be a positive number, got {video_fps!r}")
        video_frames = positive_int("video_frames", setting("video_frames", video_frames, int))
        max_pixels = setting("max_pixels", max_pixels, int)
        if max_pixels is not None:
            self.image_policy = ResizePolicy.max_pixels(positive_int("max_pixels", max_pixels))
        local_files_only = setting("local_files_only", local_files_only, bool)
        hub_kwargs: dict[str, Any] = {
            key: value
            for key, value in (
                ("revision", revision),
                ("cache_dir", cache_dir),
                ("local_files_only", local_files_only),
            )
            if value is not None
        }
        self._planner = Planner(
            model=model,
            max_new_tokens=max_new_tokens,
            max_soft_tokens=max_soft_tokens,
            video_budget=video_budget,
            pan_and_scan=pan_and_scan,
            thinking=thinking,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            video_fps=video_fps,
            video_frames=video_frames,
        )
        self._slot = ModelSlot(
            name=model,
            source=source,
            device=self._device,
            dtype=dtype,
            attn_implementation=attn_implementation,
            hub_kwargs=hub_kwargs,
        )

    # -- introspection ----------------------------------------------------------------------
    @property
    def device(self) -> str:
        """Where the weights go (``"cpu"``, ``"cuda"``, ``"mps"``, ...)."""
        return self._device

    @property
    def family(self) -> loading.Family | None:
        """``"gemma4"``, ``"gemma3"`` or ``"other"`` once the config was read, else ``None``."""
        return self._slot.family

    @property
    def loaded(self) -> bool:
        """Whether the weights are in memory."""
        return self._slot.model is not None

    @property
    def processor(self) -> Any:
        """The transformers processor (``None`` until the first request or after close)."""
        return self._slot.processor

    @property
    def torch_model(self) -> Any:
        """The transformers model (``None`` until the first request or after close)."""
        return self._slot.model

    def __repr__(self) -> str:
        state = "closed" if self._slot.closed else ("loaded" if self.loaded else "not loaded")
        return (
            f"<GemmaLocalBackend model={self.model!r} device={self._device!r} "
            f"batch_size={self.batch_size} {state}>"
        )

    # -- loading ----------------------------------------------------------------------------
    def load(self) -> None:
        """Load config, processor and weights now (otherwise the first request does it).

        Useful to pay the loading time up front, for example before a server takes requests.
        """
        self._slot.ensure_config()
        self._slot.ensure_loaded()

    def close(self) -> None:
        """Free the weights and the processor (and cached GPU memory). Idempotent."""
        self._slot.close()

    # -- generation -------------------------------------------------------------------------
    def generate(self, request: Request) -> Generation:
        (result,) = self.generate_batch([request])
        if isinstance(result, VlmkitError):
            raise result
        return result

    def generate_batch(self, requests: Sequence[Request]) -> list[Generation | VlmkitError]:
        """Generate many requests, batching those whose knobs agree; one result per request.

        A request that cannot be prepared (bad option, unreadable video) gets its error while
        the others run. A batch that runs out of GPU memory is split in halves and retried.
        """
        requests = list(requests)
        results: list[Generation | VlmkitError | None] = [None] * len(requests)
        try:
            self._slot.check_open()
            family = self._slot.ensure_config()
        except VlmkitError as err:
            return [err] * len(requests)
        plans: dict[int, Plan] = {}
        for index, request in enumerate(requests):
            try:
                plans[index] = self._planner.plan(request, family)
            except VlmkitError as err:
                results[index] = err
            except Exception as err:  # one odd request must not fail its whole batch
                error = BackendError(
                    f"gemma-local could not prepare the request: {type(err).__name__}: {err}"
                )
                error.__cause__ = err
                results[index] = error
        if plans:
            try:
                self._slot.ensure_loaded()
            except VlmkitError as err:
                for index in plans:
                    results[index] = err
                plans = {}
        for group in batches(plans, self.batch_size):
            for index, result in run_batch(self._slot, group):
                results[index] = result
        assert all(result is not None for result in results)
        return results  # type: ignore[return-value]
