"""The ``gemma-local`` backend: Gemma 4 and Gemma 3 vision models on this machine.

A generic vlmkit backend: it implements ``generate`` (and a real batched ``generate_batch``);
the core builds prompts, prepares images, parses answers and maps ``box_2d`` boxes (``yxyx`` on
a 0–1000 grid) back to original pixels.

* Loading is lazy and happens once, on the first request, under a lock: first the config (so a
  knob the checkpoint lacks is refused before any weights are read), then processor and model
  through :mod:`vlmkit_gemma.loading` (the only module that touches ``AutoProcessor`` /
  ``AutoModelForImageTextToText``; it works without torchvision). :meth:`close` frees them.
* Requests become Gemma chat messages with the images before the text; a video becomes sampled
  frames, each after its ``mm:ss`` stamp (:mod:`vlmkit_gemma.messages`).
* :meth:`generate_batch` groups requests whose knobs agree (image budget, pan-and-scan,
  ``max_new_tokens``, sampling, thinking) and runs each group as one left-padded batch; greedy
  answers are the same as one at a time. The Session routes concurrent calls here through its
  MicroBatcher when ``batch_size > 1``.
* Thinking blocks are dropped by token id and end-of-turn tokens cut the answer
  (:mod:`vlmkit_gemma.decoding`).

``thread_safe`` is True: a lock serializes model calls (one ``generate`` at a time gains nothing
on one device and would race on torch's global RNG for seeded sampling) and another serializes
the processor (the fast tokenizer is not safe to re-pad from two threads), so preprocessing one
request overlaps generation of another.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

import attrs

from vlmkit import (
    Backend,
    BackendError,
    ConfigError,
    Generation,
    MediaError,
    Option,
    Request,
    ResizePolicy,
    Usage,
    VlmkitError,
)
from vlmkit_gemma import loading
from vlmkit_gemma.decoding import decode_answer
from vlmkit_gemma.failures import (
    check_model_source,
    is_out_of_memory,
    load_error,
    out_of_memory_error,
)
from vlmkit_gemma.hub import hub_reachable
from vlmkit_gemma.messages import build_messages
from vlmkit_gemma.progress import transformers_bars_hidden

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "DEFAULT_MODEL",
    "GREEDY_TASKS",
    "OPTIONS",
    "GemmaLocalBackend",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "google/gemma-4-E2B-it"

#: ``max_new_tokens`` per task unless set on the backend or per call.
DEFAULT_MAX_NEW_TOKENS: dict[str, int] = {
    "describe": 512,
    "detect": 1024,
    "segment": 1024,
    "ocr": 1024,
    "video": 1024,
}

#: Tasks that decode greedily even when the backend has a default temperature; only a per-call
#: ``do_sample=True`` or ``temperature>0`` makes them sample.
GREEDY_TASKS = frozenset({"detect", "segment", "ocr"})

_DEFAULT_IMAGE_BUDGET = 280  # Google's default max_soft_tokens for images
_DEFAULT_VIDEO_BUDGET = 70  # per frame; Google suggests a low budget for video
_OOM_HINT = (
    "lower max_soft_tokens (e.g. 140 or 70), the backend's batch_size, max_new_tokens or the "
    "number of video frames"
)

OPTIONS: tuple[Option, ...] = (
    Option(
        name="max_soft_tokens",
        type=int,
        choices=loading.SUPPORTED_SOFT_TOKENS,
        help="Gemma 4 only: image-token budget per image (per frame for video); more tokens, "
        "more detail and more time. Default 280 for images, 70 for video frames.",
    ),
    Option(
        name="pan_and_scan",
        type=bool,
        help="Gemma 3 only: add crops of large or elongated images (256 more tokens each).",
    ),
    Option(
        name="max_new_tokens",
        type=int,
        help="Most tokens to generate (default 1024 for detect/ocr/video, 512 for describe).",
    ),
    Option(
        name="do_sample",
        type=bool,
        help="Sample instead of greedy decoding (greedy is the default for every task).",
    ),
    Option(name="temperature", type=float, help="Sampling temperature; > 0 turns sampling on."),
    Option(name="top_p", type=float, help="Nucleus sampling: keep the top-p probability mass."),
    Option(name="top_k", type=int, help="Sample among the k most likely tokens."),
    Option(name="seed", type=int, help="Seed torch's RNG before a sampled generation."),
    Option(
        name="thinking",
        type=bool,
        help="Gemma 4 only: let the model think first (the thinking text is removed).",
    ),
    Option(name="frames", type=int, help="Video: the most frames to sample (default 16)."),
)


@attrs.frozen(kw_only=True, eq=False)
class _Plan:
    """One request, resolved: messages plus the knobs that decide which batch it may join."""

    messages: list[dict[str, Any]]
    max_soft_tokens: int | None
    pan_and_scan: bool | None
    max_new_tokens: int
    sampling: tuple[tuple[str, Any], ...]
    seed: int | None
    thinking: bool
    prepare_s: float = 0.0

    @property
    def key(self) -> tuple[Any, ...]:
        return (
            self.max_soft_tokens,
            self.pan_and_scan,
            self.max_new_tokens,
            self.sampling,
            self.seed,
            self.thinking,
        )


def _setting(name: str, value: Any, kind: type) -> Any:
    """A constructor setting converted to ``kind``; strings (``--config batch_size=8`` on the
    command line, ``thinking=true``) are accepted the way per-call options are."""
    if value is None:
        return None
    if kind is float and isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    return Option(name=name, type=kind).validate(value)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def _optional_positive_int(name: str, value: Any) -> int | None:
    return None if value is None else _positive_int(name, value)


def _budget(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or value not in loading.SUPPORTED_SOFT_TOKENS:
        allowed = ", ".join(str(n) for n in loading.SUPPORTED_SOFT_TOKENS)
        raise ConfigError(f"{name} must be one of {allowed}; got {value!r}")
    return int(value)


def _check_sampling(temperature: Any, top_p: Any, top_k: Any) -> None:
    if temperature is not None and not float(temperature) >= 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature!r}")
    if top_p is not None and not 0 < float(top_p) <= 1:
        raise ConfigError(f"top_p must be within (0, 1], got {top_p!r}")
    if top_k is not None and (isinstance(top_k, bool) or int(top_k) < 0):
        raise ConfigError(f"top_k must be a non-negative integer, got {top_k!r}")


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
        video_max_soft_tokens: int = _DEFAULT_VIDEO_BUDGET,
        max_pixels: int | None = None,
        revision: str | None = None,
        cache_dir: str | None = None,
        local_files_only: bool | None = None,
    ) -> None:
        self._source = check_model_source(model)
        self.model = model
        self._device, _ = loading.select_device_and_dtype(device, dtype)  # validates both
        self._dtype = dtype
        self._attn_implementation = attn_implementation
        batch_size = _setting("batch_size", batch_size, int)
        if batch_size is None:
            batch_size = 1 if self._device == "cpu" else 4
        self.batch_size = _positive_int("batch_size", batch_size)
        self.concurrency = 2 * self.batch_size  # keep the batcher fed
        self._max_new_tokens = _optional_positive_int(
            "max_new_tokens", _setting("max_new_tokens", max_new_tokens, int)
        )
        self._max_soft_tokens = _budget(
            "max_soft_tokens", _setting("max_soft_tokens", max_soft_tokens, int)
        )
        self._video_budget = _budget(
            "video_max_soft_tokens", _setting("video_max_soft_tokens", video_max_soft_tokens, int)
        )
        self._pan_and_scan = _setting("pan_and_scan", pan_and_scan, bool)
        self._thinking = bool(_setting("thinking", thinking, bool))
        self._temperature = _setting("temperature", temperature, float)
        self._top_p = _setting("top_p", top_p, float)
        self._top_k = _setting("top_k", top_k, int)
        _check_sampling(self._temperature, self._top_p, self._top_k)
        video_fps = _setting("video_fps", video_fps, float)
        if video_fps is None or not video_fps > 0:
            raise ConfigError(f"video_fps must be a positive number, got {video_fps!r}")
        self._video_fps = video_fps
        self._video_frames = _positive_int(
            "video_frames", _setting("video_frames", video_frames, int)
        )
        max_pixels = _setting("max_pixels", max_pixels, int)
        if max_pixels is not None:
            self.image_policy = ResizePolicy.max_pixels(_positive_int("max_pixels", max_pixels))
        local_files_only = _setting("local_files_only", local_files_only, bool)
        self._hub_kwargs: dict[str, Any] = {
            key: value
            for key, value in (
                ("revision", revision),
                ("cache_dir", cache_dir),
                ("local_files_only", local_files_only),
            )
            if value is not None
        }

        self._load_lock = threading.RLock()
        self._prep_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._closed = False
        self._family: loading.Family | None = None
        self._processor: Any = None
        self._model: Any = None
        self._eos_ids: tuple[int, ...] = ()
        self._channel: tuple[int, int] | None = None
        self._generate_kwargs: dict[str, Any] = {}

    # -- introspection ----------------------------------------------------------------------
    @property
    def device(self) -> str:
        """Where the weights go (``"cpu"``, ``"cuda"``, ``"mps"``, ...)."""
        return self._device

    @property
    def family(self) -> loading.Family | None:
        """``"gemma4"``, ``"gemma3"`` or ``"other"`` once the config was read, else ``None``."""
        return self._family

    @property
    def loaded(self) -> bool:
        """Whether the weights are in memory."""
        return self._model is not None

    @property
    def processor(self) -> Any:
        """The transformers processor (``None`` until the first request or after close)."""
        return self._processor

    @property
    def torch_model(self) -> Any:
        """The transformers model (``None`` until the first request or after close)."""
        return self._model

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("loaded" if self.loaded else "not loaded")
        return (
            f"<GemmaLocalBackend model={self.model!r} device={self._device!r} "
            f"batch_size={self.batch_size} {state}>"
        )

    # -- loading ----------------------------------------------------------------------------
    def load(self) -> None:
        """Load config, processor and weights now (otherwise the first request does it).

        Useful to pay the loading time up front, for example before a server takes requests.
        """
        self._ensure_config()
        self._ensure_loaded()

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("this gemma-local backend is closed; open a new Session")

    def _ensure_config(self) -> loading.Family:
        if self._family is not None:
            return self._family
        with self._load_lock:
            self._check_open()
            if self._family is None:
                self._go_offline_if_the_hub_is_unreachable()
                try:
                    config = loading.load_config(self._source, **self._hub_kwargs)
                except Exception as err:
                    raise load_error(err, str(self.model)) from err
                family = loading.model_family(config)
                if family == "other":
                    log.warning(
                        "%s is not a Gemma 4 or Gemma 3 checkpoint (model_type %r); "
                        "gemma-local will try it, without image budgets",
                        self.model,
                        getattr(config, "model_type", None),
                    )
                self._family = family
        return self._family

    def _go_offline_if_the_hub_is_unreachable(self) -> None:
        """Probe the Hub once for a Hub id; if it does not answer, load from the cache only.

        Without this, every file transformers asks for is retried five times with backoff
        (about 50 s of warnings) before the same "not in the local cache" error.
        """
        if os.path.isdir(self._source) or self._hub_kwargs.get("local_files_only"):
            return
        from huggingface_hub import constants

        if constants.is_offline_mode():
            return
        if not hub_reachable(self._source, revision=self._hub_kwargs.get("revision")):
            log.warning(
                "the Hugging Face Hub cannot be reached: loading %s from the local cache only",
                self.model,
            )
            self._hub_kwargs["local_files_only"] = True

    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        with self._load_lock:
            self._check_open()
            if self._model is not None:
                return
            started = time.perf_counter()
            processor = model = None
            log.info("gemma-local: loading %s on %s ...", self.model, self._device)
            try:
                with transformers_bars_hidden():
                    processor = loading.load_processor(self._source, **self._hub_kwargs)
                    model = loading.load_model(
                        self._source,
                        device=self._device,
                        dtype=self._dtype,
                        attn_implementation=self._attn_implementation,
                        **self._hub_kwargs,
                    )
                self._configure(processor, model)
            except Exception as err:
                # never keep a half-loaded model: not here, nor in the traceback's frames
                del processor, model
                traceback.clear_frames(err.__traceback__)
                gc.collect()
                self._empty_cache()
                raise load_error(err, str(self.model)) from err
            self._processor, self._model = processor, model
            log.info(
                "gemma-local: loaded %s on %s (%s) in %.1f s",
                self.model,
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
        self._eos_ids = tuple(sorted(eos_ids))
        start = _token_id(tokenizer, getattr(tokenizer, "soc_token", None) or "<|channel>")
        end = _token_id(tokenizer, getattr(tokenizer, "eoc_token", None) or "<channel|>")
        self._channel = (start, end) if start is not None and end is not None else None
        self._generate_kwargs = {"eos_token_id": list(self._eos_ids)}
        if generation_config.pad_token_id is None and tokenizer.pad_token_id is not None:
            self._generate_kwargs["pad_token_id"] = int(tokenizer.pad_token_id)

    def close(self) -> None:
        """Free the weights and the processor (and cached GPU memory). Idempotent."""
        with self._load_lock, self._model_lock:
            self._closed = True
            released = self._model is not None or self._processor is not None
            self._model = self._processor = None
        if released:
            gc.collect()
            self._empty_cache()

    def _empty_cache(self) -> None:
        torch = sys.modules.get("torch")
        if torch is None:
            return
        if self._device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()
        elif self._device == "mps" and hasattr(torch, "mps"):
            torch.mps.empty_cache()

    # -- per-request planning ---------------------------------------------------------------
    def _sampling(self, task: str, options: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
        temperature = options.get("temperature")
        top_p = options.get("top_p", self._top_p)
        top_k = options.get("top_k", self._top_k)
        _check_sampling(temperature, top_p, top_k)
        do_sample = options.get("do_sample")
        if do_sample is None:
            if temperature is not None:
                do_sample = temperature > 0
            else:
                do_sample = task not in GREEDY_TASKS and bool(self._temperature)
        if not do_sample:
            return (("do_sample", False),)
        if temperature is None:
            temperature = self._temperature
        if temperature is not None and temperature <= 0:
            raise ConfigError("do_sample=True needs a temperature above 0")
        settings: dict[str, Any] = {"do_sample": True}
        for name, value in (("temperature", temperature), ("top_p", top_p), ("top_k", top_k)):
            if value is not None:  # else the checkpoint's generation_config decides
                settings[name] = value
        return tuple(sorted(settings.items()))

    def _plan(self, request: Request, family: loading.Family) -> _Plan:
        started = time.perf_counter()
        options = request.options
        thinking = bool(options.get("thinking", self._thinking))
        if thinking and family != "gemma4":
            raise ConfigError(f"thinking is a Gemma 4 option; {self.model} is a {family} model")
        max_new_tokens = options.get("max_new_tokens")
        if max_new_tokens is None:
            max_new_tokens = self._max_new_tokens or DEFAULT_MAX_NEW_TOKENS.get(request.task, 1024)
        max_new_tokens = _positive_int("max_new_tokens", max_new_tokens)
        frames = None
        if request.video is not None:
            frames = self._sample_video(request, options)
            default_budget = self._video_budget
        else:
            if not request.images:
                raise ConfigError(f"gemma-local needs at least one image for {request.task}")
            default_budget = self._max_soft_tokens or _DEFAULT_IMAGE_BUDGET
        budget = options.get("max_soft_tokens")
        if budget is None and family == "gemma4":
            budget = default_budget
        if budget is None and family != "gemma4" and self._max_soft_tokens is not None:
            budget = self._max_soft_tokens  # set explicitly on a model without budgets: refuse
        pan_and_scan = options.get("pan_and_scan", self._pan_and_scan)
        loading.processor_kwargs(family, max_soft_tokens=budget, pan_and_scan=pan_and_scan)
        sampling = self._sampling(request.task, options)
        seed = options.get("seed") if dict(sampling)["do_sample"] else None
        return _Plan(
            messages=build_messages(request, frames),
            max_soft_tokens=budget,
            pan_and_scan=pan_and_scan,
            max_new_tokens=max_new_tokens,
            sampling=sampling,
            seed=seed,
            thinking=thinking,
            prepare_s=time.perf_counter() - started,
        )

    def _sample_video(self, request: Request, options: dict[str, Any]) -> list[Any]:
        from vlmkit import sample_frames

        video = request.video
        assert video is not None
        if "://" in video.source:
            raise MediaError(
                f"gemma-local samples frames from local video files; download {video.source} "
                "first and pass its path",
                source=video.source,
            )
        max_frames = options.get("frames")
        if max_frames is None:
            max_frames = video.max_frames or self._video_frames
        max_frames = _positive_int("frames", max_frames)
        frames = sample_frames(
            video.source,
            fps=video.fps or self._video_fps,
            max_frames=max_frames,
            start_s=video.start_s,
            end_s=video.end_s,
        )
        if not frames:
            raise MediaError(
                f"{video.source}: no frames in the requested range", source=video.source
            )
        return frames

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
            self._check_open()
            family = self._ensure_config()
        except VlmkitError as err:
            return [err] * len(requests)
        plans: dict[int, _Plan] = {}
        for index, request in enumerate(requests):
            try:
                plans[index] = self._plan(request, family)
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
                self._ensure_loaded()
            except VlmkitError as err:
                for index in plans:
                    results[index] = err
                plans = {}
        for group in self._groups(plans):
            for index, result in self._run(group):
                results[index] = result
        assert all(result is not None for result in results)
        return results  # type: ignore[return-value]

    def _groups(self, plans: dict[int, _Plan]) -> list[list[tuple[int, _Plan]]]:
        by_key: dict[tuple[Any, ...], list[tuple[int, _Plan]]] = {}
        for index, plan in plans.items():
            by_key.setdefault(plan.key, []).append((index, plan))
        size = self.batch_size
        return [
            members[start : start + size]
            for members in by_key.values()
            for start in range(0, len(members), size)
        ]

    def _run(self, group: list[tuple[int, _Plan]]) -> list[tuple[int, Generation | VlmkitError]]:
        try:
            generations = self._generate_group([plan for _, plan in group])
        except Exception as err:
            if is_out_of_memory(err):
                traceback.clear_frames(err.__traceback__)  # frames hold the batch's tensors
                gc.collect()
                self._empty_cache()
                if len(group) > 1:
                    log.warning(
                        "gemma-local: out of memory with a batch of %d; retrying in halves",
                        len(group),
                    )
                    half = len(group) // 2
                    return self._run(group[:half]) + self._run(group[half:])
                error: VlmkitError = out_of_memory_error(err, what="generating", hint=_OOM_HINT)
            elif isinstance(err, VlmkitError):
                error = err
            else:
                error = BackendError(f"gemma-local generation failed: {type(err).__name__}: {err}")
            if error is not err:
                error.__cause__ = err
            return [(index, error) for index, _ in group]
        return [(index, gen) for (index, _), gen in zip(group, generations, strict=True)]

    def _generate_group(self, plans: list[_Plan]) -> list[Generation]:
        import torch

        first = plans[0]
        family = self._family or "other"
        processor = self._processor
        if processor is None:
            self._check_open()
            raise BackendError("gemma-local: the model is not loaded")
        processor_kwargs = loading.processor_kwargs(
            family, max_soft_tokens=first.max_soft_tokens, pan_and_scan=first.pan_and_scan
        )
        processor_kwargs["padding"] = True
        template_kwargs = {"enable_thinking": first.thinking} if family == "gemma4" else {}
        started = time.perf_counter()
        with self._prep_lock:
            encoded = processor.apply_chat_template(
                [plan.messages for plan in plans],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
                processor_kwargs=processor_kwargs,
                **template_kwargs,
            )
        with self._model_lock:
            model = self._model
            if model is None:
                self._check_open()
                raise BackendError("gemma-local: the model is not loaded")
            encoded = encoded.to(model.device)
            pixels = encoded.get("pixel_values")
            if pixels is not None and pixels.is_floating_point() and pixels.dtype != model.dtype:
                encoded["pixel_values"] = pixels.to(model.dtype)
            sampling = dict(first.sampling)
            with torch.inference_mode():
                if first.seed is not None:
                    torch.manual_seed(first.seed)
                output = model.generate(
                    **encoded,
                    max_new_tokens=first.max_new_tokens,
                    **sampling,
                    **self._generate_kwargs,
                )
        elapsed = time.perf_counter() - started
        prompt_length = encoded["input_ids"].shape[1]
        new_ids = output[:, prompt_length:].tolist()
        prompt_tokens = encoded["attention_mask"].sum(dim=1).tolist()
        if log.isEnabledFor(logging.DEBUG):
            for row in encoded["input_ids"].tolist():
                log.debug("gemma-local prompt: %s", _readable_prompt(processor, row))

        def decode(ids: list[int]) -> str:
            return processor.decode(ids, skip_special_tokens=True)

        generations = []
        for plan, ids, prompt in zip(plans, new_ids, prompt_tokens, strict=True):
            decoded = decode_answer(
                ids,
                decode,
                eos_ids=self._eos_ids,
                max_new_tokens=plan.max_new_tokens,
                channel=self._channel,
            )
            generations.append(
                Generation(
                    text=decoded.text,
                    finish=decoded.finish,
                    model=self.model,
                    usage=Usage(
                        prompt_tokens=int(prompt),
                        output_tokens=decoded.output_tokens,
                        thinking_tokens=decoded.thinking_tokens,
                        latency_s=elapsed + plan.prepare_s,
                    ),
                )
            )
        return generations


def _token_id(tokenizer: Any, token: str | None) -> int | None:
    """The id of a single special token, or ``None`` when the vocabulary lacks it."""
    if not token:
        return None
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        return None
    return int(token_id)


_RUN_OF_IMAGE_TOKENS = re.compile(r"((<\|image\|>|<image_soft_token>))(?:\2)+")


def _readable_prompt(processor: Any, ids: list[int]) -> str:
    """The prompt as text, pads dropped and each run of image tokens written once with a count."""
    pad = getattr(processor.tokenizer, "pad_token_id", None)
    text = processor.decode([i for i in ids if i != pad], skip_special_tokens=False)

    def collapse(match: re.Match[str]) -> str:
        count = len(match.group(0)) // len(match.group(2))
        return f"{match.group(2)}×{count}"

    return _RUN_OF_IMAGE_TOKENS.sub(collapse, text)
