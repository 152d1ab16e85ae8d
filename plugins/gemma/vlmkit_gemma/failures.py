"""Turn transformers / Hub / torch failures into vlmkit errors that say what to do next.

transformers wraps Hub errors in ``OSError`` (chaining the original), so both the cause chain
and the message are inspected. Nothing here imports torch or transformers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from vlmkit import AuthError, BackendError, ConfigError, VlmkitError

__all__ = ["check_model_source", "is_out_of_memory", "load_error", "out_of_memory_error"]

_DOWNLOAD_HINT = (
    "download it once where the Hub is reachable (`hf download {model}`, or with older "
    "huggingface_hub `huggingface-cli download {model}`) or pass the checkpoint's local folder "
    "instead (model=... in Python, --model on the command line)"
)


def check_model_source(model: object) -> str:
    """Validate ``model`` (a Hub id or a local folder) without touching the network.

    Anything that looks like a path must be an existing folder holding ``config.json``; a Hub
    id (``org/name``) is checked later, when the model loads.
    """
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(
            f"model must be a Hugging Face Hub id such as 'google/gemma-4-E2B-it' or a local "
            f"checkpoint folder, got {model!r}"
        )
    text = os.path.expanduser(model.strip())
    looks_local = (
        os.path.isabs(text)
        or text.startswith((".", "~"))
        or text.count("/") > 1
        or "\\" in text
        or os.path.exists(text)
    )
    if os.path.isdir(text):
        if not os.path.isfile(os.path.join(text, "config.json")):
            raise ConfigError(
                f"model folder {model!r} has no config.json: pass the folder that holds the "
                "checkpoint (config.json, model*.safetensors, tokenizer, processor and "
                "chat-template files)"
            )
        return text
    if looks_local:
        what = "is a file, not a folder" if os.path.exists(text) else "does not exist"
        raise ConfigError(
            f"model folder {model!r} {what}: pass a checkpoint folder or a Hub id such as "
            "'google/gemma-4-E2B-it'"
        )
    return model.strip()


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _names(err: BaseException) -> set[str]:
    return {cls.__name__ for exc in _chain(err) for cls in type(exc).__mro__}


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA / MPS / CPU allocator out-of-memory errors (torch raises several kinds)."""
    if "OutOfMemoryError" in _names(err):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def out_of_memory_error(err: BaseException, *, what: str, hint: str) -> BackendError:
    """A BackendError for an out-of-memory failure, with ``hint`` on how to fit."""
    first_line = (str(err).splitlines() or [""])[0][:300]
    return BackendError(f"out of memory while {what} ({first_line}); {hint}")


def load_error(err: BaseException, model: str) -> VlmkitError:
    """The vlmkit error for a failure to load ``model`` (config, processor or weights)."""
    if isinstance(err, VlmkitError):
        return err
    names = _names(err)
    text = "\n".join(str(exc) for exc in _chain(err))
    lowered = text.lower()
    if is_out_of_memory(err):
        return out_of_memory_error(
            err,
            what=f"loading {model}",
            hint=(
                "use a smaller model (gemma-4-E2B-it), dtype='bfloat16', or device='cpu' with "
                "enough RAM (E2B needs about 10 GiB in bf16)"
            ),
        )
    if "GatedRepoError" in names or "gated repo" in lowered:
        return AuthError(
            f"{model} is a gated model: accept its licence at https://huggingface.co/{model} "
            "while logged in, then log in here with `hf auth login` (or set HF_TOKEN)"
        )
    if "LocalEntryNotFoundError" in names or "couldn't connect" in lowered:
        return ConfigError(
            f"model {model!r} is not in the local Hugging Face cache and the Hub cannot be "
            f"reached (offline, or HF_HUB_OFFLINE=1): {_DOWNLOAD_HINT.format(model=model)}"
        )
    if "RepositoryNotFoundError" in names or "not a valid model identifier" in lowered:
        return ConfigError(
            f"no model {model!r} on the Hugging Face Hub (a typo? a private repo needs "
            "`hf auth login`): use e.g. 'google/gemma-4-E2B-it', or "
            + _DOWNLOAD_HINT.format(model=model)
        )
    if "HFValidationError" in names or "repo id must" in lowered:
        return ConfigError(
            f"{model!r} is neither a local checkpoint folder nor a valid Hub id "
            "(like 'google/gemma-4-E2B-it')"
        )
    if "RevisionNotFoundError" in names:
        return ConfigError(f"{model}: that revision does not exist ({str(err).splitlines()[0]})")
    if "does not recognize this architecture" in lowered:
        return ConfigError(
            f"{model}: this transformers does not know the checkpoint's model type; Gemma 4 "
            "needs transformers >= 5.5 (vlmkit-gemma is tested with 5.23) — upgrade "
            "transformers, or check that the folder is a Gemma 4 / Gemma 3 checkpoint"
        )
    if "unrecognized" in lowered or "does not appear to have" in lowered:
        return ConfigError(
            f"{model} is not a checkpoint gemma-local can run: it needs an image-text-to-text "
            "model (Gemma 4 such as google/gemma-4-E2B-it, or a Gemma 3 vision model such as "
            f"google/gemma-3-4b-it) with its processor files ({type(err).__name__}: "
            f"{(str(err).splitlines() or [''])[0][:300]})"
        )
    if "HfHubHTTPError" in names or "connection error" in lowered:
        return BackendError(
            f"could not download {model} from the Hugging Face Hub ({str(err).splitlines()[0]}); "
            "retry, or pass a local folder"
        )
    return BackendError(f"could not load {model}: {type(err).__name__}: {err}")
