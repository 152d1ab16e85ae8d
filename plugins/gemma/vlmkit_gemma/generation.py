"""Running batches of planned gemma-local requests through the loaded model.

:func:`run_batch` generates one batch and turns failures into per-request errors: a batch that
runs out of GPU memory is split in halves and retried before the error explains what to lower.
:func:`generate_batch` is the model call itself: chat template under the processor lock,
``generate`` under the model lock, then each answer decoded (thinking dropped, end of turn cut).
"""

from __future__ import annotations

import gc
import logging
import re
import time
import traceback
from typing import Any

from vlmkit import BackendError, Generation, Usage, VlmkitError
from vlmkit_gemma import loading
from vlmkit_gemma.decoding import decode_answer
from vlmkit_gemma.failures import is_out_of_memory, out_of_memory_error
from vlmkit_gemma.planning import Plan
from vlmkit_gemma.settings import OOM_HINT
from vlmkit_gemma.weights import ModelSlot

__all__ = ["generate_batch", "run_batch"]

log = logging.getLogger(__name__)


def run_batch(
    slot: ModelSlot, group: list[tuple[int, Plan]]
) -> list[tuple[int, Generation | VlmkitError]]:
    """One result per ``(index, plan)`` of ``group``: its generation or the error for it."""
    try:
        generations = generate_batch(slot, [plan for _, plan in group])
    except Exception as err:
        if is_out_of_memory(err):
            traceback.clear_frames(err.__traceback__)  # frames hold the batch's tensors
            gc.collect()
            slot.empty_cache()
            if len(group) > 1:
                log.warning(
                    "gemma-local: out of memory with a batch of %d; retrying in halves",
                    len(group),
                )
                half = len(group) // 2
                return run_batch(slot, group[:half]) + run_batch(slot, group[half:])
            error: VlmkitError = out_of_memory_error(err, what="generating", hint=OOM_HINT)
        elif isinstance(err, VlmkitError):
            error = err
        else:
            error = BackendError(f"gemma-local generation failed: {type(err).__name__}: {err}")
        if error is not err:
            error.__cause__ = err
        return [(index, error) for index, _ in group]
    return [(index, gen) for (index, _), gen in zip(group, generations, strict=True)]


def generate_batch(slot: ModelSlot, plans: list[Plan]) -> list[Generation]:
    """Generate ``plans`` (whose knobs agree) as one left-padded batch."""
    import torch

    first = plans[0]
    family = slot.family or "other"
    processor = slot.processor
    if processor is None:
        slot.check_open()
        raise BackendError("gemma-local: the model is not loaded")
    processor_kwargs = loading.processor_kwargs(
        family, max_soft_tokens=first.max_soft_tokens, pan_and_scan=first.pan_and_scan
    )
    processor_kwargs["padding"] = True
    template_kwargs = {"enable_thinking": first.thinking} if family == "gemma4" else {}
    started = time.perf_counter()
    with slot.prep_lock:
        encoded = processor.apply_chat_template(
            [plan.messages for plan in plans],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs=processor_kwargs,
            **template_kwargs,
        )
    with slot.model_lock:
        model = slot.model
        if model is None:
            slot.check_open()
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
                **slot.generate_kwargs,
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
            eos_ids=slot.eos_ids,
            max_new_tokens=plan.max_new_tokens,
            channel=slot.channel,
        )
        generations.append(
            Generation(
                text=decoded.text,
                finish=decoded.finish,
                model=slot.name,
                usage=Usage(
                    prompt_tokens=int(prompt),
                    output_tokens=decoded.output_tokens,
                    thinking_tokens=decoded.thinking_tokens,
                    latency_s=elapsed + plan.prepare_s,
                ),
            )
        )
    return generations


_RUN_OF_IMAGE_TOKENS = re.compile(r"((<\|image\|>|<image_soft_token>))(?:\2)+")


def _readable_prompt(processor: Any, ids: list[int]) -> str:
    """The prompt as text, pads dropped and each run of image tokens written once with a count."""
    pad = getattr(processor.tokenizer, "pad_token_id", None)
    text = processor.decode([i for i in ids if i != pad], skip_special_tokens=False)

    def collapse(match: re.Match[str]) -> str:
        count = len(match.group(0)) // len(match.group(2))
        return f"{match.group(2)}×{count}"

    return _RUN_OF_IMAGE_TOKENS.sub(collapse, text)
