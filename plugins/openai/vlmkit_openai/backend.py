"""The ``openai`` backend: any vision model behind an OpenAI-compatible ``/chat/completions``.

vLLM, SGLang, Ollama and llama.cpp's server all speak this wire. The backend only sends the
request and reads the answer: the core writes the prompt for the family's convention, prepares
the images, parses the answer and maps boxes back to the original pixels.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import vlmkit
from vlmkit import ResizePolicy, encode_image
from vlmkit_openai.client import ChatClient
from vlmkit_openai.families import QWEN_MAX_PIXELS, resolve_family, smart_resize

__all__ = ["OPTIONS", "OpenAIBackend"]

#: Gemma's image token budgets (Google's ``max_soft_tokens``)
SOFT_TOKENS = (70, 140, 280, 560, 1120)

OPTIONS = (
    vlmkit.Option(name="temperature", type=float, min=0.0, help="sampling temperature"),
    vlmkit.Option(name="max_tokens", type=int, min=1, help="answer length limit"),
    vlmkit.Option(
        name="max_soft_tokens",
        type=int,
        choices=SOFT_TOKENS,
        help="Gemma image token budget, sent as mm_processor_kwargs (vLLM, SGLang)",
    ),
    vlmkit.Option(
        name="max_pixels",
        type=int,
        min=28 * 28 * 4,
        help="Qwen image pixel budget: images are sent at most this large and the server is "
        "told so through mm_processor_kwargs (vLLM, SGLang)",
    ),
)

_FINISH = {"length": "max_tokens", "content_filter": "safety"}


class OpenAIBackend(vlmkit.Backend):
    """A model served behind an OpenAI-compatible chat endpoint.

    ``family`` (``auto``, ``gemma``, ``qwen``, ``qwen3``) sets the box convention the prompts
    ask for; ``convention`` overrides it for other models. ``concurrency`` requests stay in
    flight (32 keeps a continuous-batching server such as vLLM busy; use 1–4 for Ollama).
    """

    options = OPTIONS

    def __init__(
        self,
        model: str = "google/gemma-3-4b-it",
        base_url: str | None = None,
        api_key: str | None = None,
        family: str = "auto",
        convention: str | None = None,
        max_side: int = 1536,
        concurrency: int = 32,
        timeout: float = 120.0,
        max_retries: int = 4,
    ) -> None:
        self.model = model
        self.family = resolve_family(family, model) if not convention else None
        self.convention = convention or self.family.convention  # type: ignore[union-attr]
        self.image_policy = ResizePolicy.fit(max_side)
        # an unchanged JPEG goes as its file (below); Qwen's 28-px grid resizes nearly every one
        self.sends_image_files = not (self.family is not None and self.family.snaps_to_grid)
        self.concurrency = concurrency
        url = base_url or os.environ.get("OPENAI_BASE_URL") or "http://localhost:8000/v1"
        key = api_key or os.environ.get("OPENAI_API_KEY")
        self.client = ChatClient(url, api_key=key, timeout=timeout, max_retries=max_retries)

    def _image_part(
        self, sent: vlmkit.SentImage, max_pixels: int | None
    ) -> tuple[dict[str, Any], vlmkit.Transform]:
        """One image as a data-URL message part, and the transform to the pixels it shows
        (a resized copy made here is gone once this returns)."""
        image, transform = sent.image, sent.transform
        if self.family is not None and self.family.snaps_to_grid:
            # the server would resize to a 28-px grid and answer in pixels of *that* image
            size = smart_resize(*image.size, max_pixels=max_pixels or QWEN_MAX_PIXELS)
            if size != image.size:
                image = image.resize(size)
                transform = transform.then_resize(size)
        # unchanged: the original, so that an upright JPEG file goes as it is (no second
        # generation of JPEG, no decode); anything else is encoded as JPEG
        unchanged = image is sent.original.image
        encoded = encode_image(sent.original if unchanged else image, format="JPEG")
        url = f"data:{encoded.mime_type};base64,{base64.b64encode(encoded.data).decode()}"
        return {"type": "image_url", "image_url": {"url": url}}, transform

    def generate(self, request: vlmkit.Request) -> vlmkit.Generation:
        options = dict(request.options)
        processor: dict[str, Any] = {}
        if "max_soft_tokens" in options:
            processor["max_soft_tokens"] = options.pop("max_soft_tokens")
        max_pixels = options.pop("max_pixels", None)
        if max_pixels is not None:
            processor["max_pixels"] = max_pixels
        content: list[dict[str, Any]] = []
        transforms = []
        for sent in request.images:  # images first, then the prompt
            part, transform = self._image_part(sent, max_pixels)
            transforms.append(transform)
            content.append(part)
        content.append({"type": "text", "text": request.prompt})
        messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        body: dict[str, Any] = {"model": self.model, "messages": messages, **options}
        if processor:
            body["mm_processor_kwargs"] = processor
        vlmkit.release_pixels(request)  # the images are bytes in the body, for every retry too
        answer, latency = self.client.post("/chat/completions", body)
        try:
            choice = answer["choices"][0]
            text = choice["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError) as err:
            raise vlmkit.TransientError(
                f"{self.client.base_url} answered without choices[0].message ({err!r}); is it "
                "an OpenAI-compatible chat endpoint?"
            ) from None
        usage = answer.get("usage") or {}
        return vlmkit.Generation(
            text=text,
            finish=_FINISH.get(choice.get("finish_reason"), "stop"),
            model=answer.get("model", self.model),
            usage=vlmkit.Usage(
                prompt_tokens=usage.get("prompt_tokens") or 0,
                output_tokens=usage.get("completion_tokens") or 0,
                latency_s=latency,
            ),
            transforms=tuple(transforms) if transforms else None,
        )
