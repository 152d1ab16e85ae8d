"""Load Gemma 4 / Gemma 3 checkpoints (real or tiny test ones) with transformers.

One code path for every checkpoint: a Hub id (from the cache or the network) or a local folder.
torch and transformers are imported inside the functions, so importing this module is cheap.

* :func:`load_processor` wraps ``AutoProcessor.from_pretrained`` and, only when that fails because
  torchvision is missing, builds the Gemma 4 processor without a native video processor (video is
  then sent as sampled frames, i.e. images).
* :func:`load_config` reads only the config, enough for :func:`model_family`.
* :func:`select_device_and_dtype` and :func:`load_model` pick a sensible device and dtype:
  bf16 on CUDA, bf16/fp16 on Apple MPS, the checkpoint's own dtype on CPU.
* :func:`model_family` and :func:`processor_kwargs` build the per-request knobs each family has
  (``max_soft_tokens`` for Gemma 4, ``do_pan_and_scan`` for Gemma 3).
"""

from __future__ import annotations

import functools
import json
import re
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

__all__ = [
    "SUPPORTED_SOFT_TOKENS",
    "Family",
    "load_config",
    "load_model",
    "load_processor",
    "model_family",
    "processor_kwargs",
    "select_device_and_dtype",
]

Family = Literal["gemma4", "gemma3", "other"]

#: The image-token budgets Gemma 4's image processor accepts (anything else is a ValueError there).
SUPPORTED_SOFT_TOKENS: tuple[int, ...] = (70, 140, 280, 560, 1120)

# Keyword arguments that say where files come from; they go to every loader and to cached_file.
_HUB_KWARGS = (
    "cache_dir",
    "force_download",
    "local_files_only",
    "token",
    "revision",
    "subfolder",
    "proxies",
)
# Gemma4Processor.__init__ arguments stored at the top level of processor_config.json.
_G4_PROCESSOR_INIT_KEYS = ("image_seq_length", "audio_seq_length", "audio_ms_per_token")

_DTYPE_NAMES = {
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
}
_DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def _config_error(message: str) -> ValueError:
    """vlmkit's ConfigError (a ValueError) when the core is importable, else a plain ValueError."""
    try:
        from vlmkit import ConfigError
    except ImportError:  # pragma: no cover - the core is a dependency of vlmkit-gemma
        return ValueError(message)
    return ConfigError(message)


# --------------------------------------------------------------------------------------------
# processor


def load_processor(path_or_id: str, **kwargs: Any) -> Any:
    """Return the checkpoint's processor, working around a missing torchvision for Gemma 4.

    ``AutoProcessor.from_pretrained(path_or_id, **kwargs)`` is tried first. Gemma 4's processor
    requires ``Gemma4VideoProcessor``, which exists only with torchvision; when that is the
    reason it fails, the processor is assembled from its other parts (feature extractor, image
    processor, tokenizer, chat template) plus a placeholder video processor that refuses native
    video. Files are located with transformers' ``cached_file``, so Hub ids already in the cache
    work offline too. Any other failure is re-raised unchanged.
    """
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(path_or_id, **kwargs)
    except (ImportError, ValueError, AttributeError) as err:
        if "torchvision" not in str(err).lower():
            raise
        processor_config = _read_processor_config(path_or_id, kwargs)
        if processor_config.get("processor_class") != "Gemma4Processor":
            raise
        return _gemma4_processor_without_torchvision(path_or_id, processor_config, kwargs)


def _hub_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in _HUB_KWARGS}


def _read_text(path_or_id: str, filename: str, kwargs: dict[str, Any]) -> str | None:
    from transformers.utils import cached_file

    resolved = cached_file(
        path_or_id,
        filename,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **_hub_kwargs(kwargs),
    )
    if resolved is None:
        return None
    with open(resolved, encoding="utf-8") as handle:
        return handle.read()


def _read_processor_config(path_or_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    text = _read_text(path_or_id, "processor_config.json", kwargs)
    return json.loads(text) if text else {}


def _gemma4_processor_without_torchvision(
    path_or_id: str, processor_config: dict[str, Any], kwargs: dict[str, Any]
) -> Any:
    from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoTokenizer

    processor_class, video_processor_class = _no_torchvision_classes()
    video_config = dict(processor_config.get("video_processor") or {})
    video_config.pop("video_processor_type", None)
    init_kwargs = {k: processor_config[k] for k in _G4_PROCESSOR_INIT_KEYS if k in processor_config}
    init_kwargs.update({k: kwargs[k] for k in _G4_PROCESSOR_INIT_KEYS if k in kwargs})
    chat_template = kwargs.get("chat_template") or _read_text(
        path_or_id, "chat_template.jinja", kwargs
    )
    return processor_class(
        feature_extractor=AutoFeatureExtractor.from_pretrained(path_or_id, **kwargs),
        image_processor=AutoImageProcessor.from_pretrained(path_or_id, **kwargs),
        tokenizer=AutoTokenizer.from_pretrained(path_or_id, **kwargs),
        video_processor=video_processor_class(**video_config),
        chat_template=chat_template,
        **init_kwargs,
    )


@functools.cache
def _no_torchvision_classes() -> tuple[type, type]:
    """Create (once) the Gemma 4 processor classes that work without torchvision.

    They subclass transformers classes, so they are made on first use to keep this module's
    import cheap; they are published as module attributes so instances can be pickled.
    """
    from transformers.models.gemma4 import Gemma4Processor
    from transformers.video_processing_utils import BaseVideoProcessor

    class FramesOnlyVideoProcessor(BaseVideoProcessor):
        """Stands in for Gemma4VideoProcessor (torchvision only); native video is refused."""

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(
                "native video input needs torchvision, which is not installed; send the video "
                "as sampled frames instead (one image item per frame, optionally preceded by "
                "an 'mm:ss' text item)"
            )

        preprocess = __call__

    class Gemma4ProcessorNoTorchvision(Gemma4Processor):
        """Gemma4Processor that accepts the frames-only placeholder as its video processor."""

        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            # transformers' own check resolves the torchvision-only class and crashes.
            if argument_name == "video_processor":
                return type(argument)
            return super().check_argument_for_proper_class(argument_name, argument)

    for cls in (Gemma4ProcessorNoTorchvision, FramesOnlyVideoProcessor):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        globals()[cls.__name__] = cls
    return Gemma4ProcessorNoTorchvision, FramesOnlyVideoProcessor


# --------------------------------------------------------------------------------------------
# config, device, dtype, model


def load_config(path_or_id: str, **kwargs: Any) -> Any:
    """The checkpoint's config (``AutoConfig``): a small file, no weights.

    Enough to tell the model family (:func:`model_family`) and so to validate per-request knobs
    before gigabytes of weights are read.
    """
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path_or_id, **kwargs)


def select_device_and_dtype(
    device: str | None = None, dtype: str | torch.dtype | None = None
) -> tuple[str, torch.dtype | None]:
    """Pick ``(device, dtype)``; a dtype of ``None`` means "keep the checkpoint's" (``"auto"``).

    Defaults: CUDA available → ``("cuda", torch.bfloat16)``; Apple MPS → ``("mps", bfloat16)``
    where MPS supports it, else ``float16``; otherwise ``("cpu", None)``, so a bf16 checkpoint
    stays bf16 (fp32 would double its memory) and an fp32 one stays fp32.
    Explicit arguments win: ``device`` is ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or
    ``"auto"``; ``dtype`` is ``"auto"``, ``"bfloat16"``/``"bf16"``, ``"float16"``/``"fp16"``,
    ``"float32"``/``"fp32"`` or a ``torch.dtype``. Invalid or unavailable choices raise
    ValueError.
    """
    import torch

    if device is None or device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif _mps_available(torch):
            device = "mps"
        else:
            device = "cpu"
    elif not isinstance(device, str) or not _DEVICE_RE.match(device):
        raise _config_error(
            f"invalid device {device!r}: use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"
        )
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise _config_error(f"device {device!r} requested but CUDA is not available to torch")
    elif device == "mps" and not _mps_available(torch):
        raise _config_error("device 'mps' requested but Apple MPS is not available to torch")

    if dtype is None or dtype == "auto":
        if device.startswith("cuda"):
            return device, torch.bfloat16
        if device == "mps":
            return device, torch.bfloat16 if _mps_supports_bf16(torch) else torch.float16
        return device, None
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise _config_error(f"invalid dtype {dtype}: model weights need a floating-point dtype")
        return device, dtype
    name = _DTYPE_NAMES.get(str(dtype).lower()) if isinstance(dtype, str) else None
    if name is None:
        raise _config_error(
            f"invalid dtype {dtype!r}: use 'auto', 'bfloat16' (bf16), 'float16' (fp16) or "
            "'float32' (fp32)"
        )
    return device, getattr(torch, name)


def _mps_available(torch: Any) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _mps_supports_bf16(torch: Any) -> bool:
    try:
        torch.ones(1, dtype=torch.bfloat16, device="mps")
    except Exception:  # MPS before macOS 14 has no bfloat16
        return False
    return True


def load_model(
    path_or_id: str,
    *,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    attn_implementation: str | None = None,
    **kwargs: Any,
) -> Any:
    """Load the checkpoint with ``AutoModelForImageTextToText`` in eval mode.

    Device and dtype come from :func:`select_device_and_dtype`. With accelerate installed the
    weights are placed while loading (``device_map``; plain ``"cuda"`` becomes ``"auto"`` so
    several GPUs are used); without it the model is moved after loading. ``attn_implementation``
    (``"sdpa"``, ``"eager"``, ...) is passed through when given; further ``kwargs`` (``revision``,
    ``cache_dir``, ...) go to ``from_pretrained``.
    """
    from transformers import AutoModelForImageTextToText
    from transformers.utils import is_accelerate_available

    device, torch_dtype = select_device_and_dtype(device, dtype)
    options: dict[str, Any] = {"dtype": torch_dtype if torch_dtype is not None else "auto"}
    if attn_implementation is not None:
        options["attn_implementation"] = attn_implementation
    use_device_map = is_accelerate_available()
    if use_device_map:
        options["device_map"] = "auto" if device == "cuda" else device
    options.update(kwargs)
    model = AutoModelForImageTextToText.from_pretrained(path_or_id, **options)
    if not use_device_map:
        model = model.to(device)  # type: ignore[arg-type]  # transformers' stubs miss str
    return model.eval()


# --------------------------------------------------------------------------------------------
# per-request knobs


def model_family(config_or_model: Any) -> Family:
    """``"gemma4"``, ``"gemma3"`` or ``"other"``, from a config, a model or a config dict.

    Gemma 3n (``model_type`` ``"gemma3n"``) is a different architecture and counts as "other".
    """
    config = getattr(config_or_model, "config", config_or_model)
    if isinstance(config, dict):
        model_type = config.get("model_type")
    else:
        model_type = getattr(config, "model_type", None)
    if model_type in ("gemma4", "gemma4_text"):
        return "gemma4"
    if model_type in ("gemma3", "gemma3_text"):
        return "gemma3"
    return "other"


def processor_kwargs(
    family: Family, max_soft_tokens: int | None = None, pan_and_scan: bool | None = None
) -> dict[str, Any]:
    """Per-call processor kwargs, e.g. for ``apply_chat_template(..., processor_kwargs=...)``.

    Gemma 4: ``max_soft_tokens`` (one of :data:`SUPPORTED_SOFT_TOKENS`) becomes
    ``{"images_kwargs": {"max_soft_tokens": N}}``. Gemma 3: ``pan_and_scan`` becomes
    ``{"images_kwargs": {"do_pan_and_scan": bool}}``. A knob given to a family that lacks it
    raises ValueError (Gemma 3's processor would raise a TypeError for ``max_soft_tokens``).
    A fresh dict is returned every call, because transformers mutates the dict it is given.
    """
    if family not in ("gemma4", "gemma3", "other"):
        raise _config_error(f"unknown model family {family!r}: use 'gemma4', 'gemma3' or 'other'")
    images_kwargs: dict[str, Any] = {}
    if max_soft_tokens is not None:
        if family != "gemma4":
            hint = " (use pan_and_scan for more detail)" if family == "gemma3" else ""
            raise _config_error(
                f"max_soft_tokens is a Gemma 4 option; a {family} model has a fixed number of "
                f"image tokens{hint}"
            )
        if (
            isinstance(max_soft_tokens, bool)
            or not isinstance(max_soft_tokens, int)
            or max_soft_tokens not in SUPPORTED_SOFT_TOKENS
        ):
            allowed = ", ".join(str(n) for n in SUPPORTED_SOFT_TOKENS)
            raise _config_error(
                f"max_soft_tokens must be one of {allowed}; got {max_soft_tokens!r}"
            )
        images_kwargs["max_soft_tokens"] = int(max_soft_tokens)
    if pan_and_scan is not None:
        if family != "gemma3":
            hint = " (use max_soft_tokens to change the image budget)" if family == "gemma4" else ""
            raise _config_error(
                f"pan_and_scan is a Gemma 3 option; a {family} model does not have it{hint}"
            )
        images_kwargs["do_pan_and_scan"] = bool(pan_and_scan)
    return {"images_kwargs": images_kwargs} if images_kwargs else {}
