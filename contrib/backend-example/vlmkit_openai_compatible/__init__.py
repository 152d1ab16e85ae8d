"""A vlmkit backend for any OpenAI-compatible chat endpoint — written as a third party would.

It implements only ``generate``: vlmkit builds the prompts, prepares the images, parses the
answers and maps coordinates back to the original pixels. Serve Gemma with vLLM or Ollama and::

    vlmkit detect street.jpg --prompt "person, car" --backend openai-compatible \
        --model gemma3:4b --config base_url=http://localhost:11434/v1 --option temperature=0

``--config`` sets how the backend is built (``base_url``, ``api_key``, ``convention``);
``--option`` sets one call (``temperature``, ``max_tokens``). ``vlmkit backends`` lists both.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request

import vlmkit
from vlmkit import ResizePolicy, encode_image


class OpenAICompatibleBackend(vlmkit.Backend):
    convention = "yxyx-1000"  # Gemma and Gemini; pass convention="xyxy-pixels" for Qwen
    image_policy = ResizePolicy.fit(1024)  # the core records the resize and maps boxes back
    concurrency = 4
    options = (
        vlmkit.Option(name="temperature", type=float, help="sampling temperature"),
        vlmkit.Option(name="max_tokens", type=int, help="answer length limit"),
    )

    def __init__(
        self,
        model: str = "gemma3:4b",
        base_url: str | None = None,
        api_key: str | None = None,
        convention: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.model = model
        self.base_url = (
            base_url or os.environ.get("OPENAI_BASE_URL") or "http://localhost:11434/v1"
        ).rstrip("/")
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        if convention:
            self.convention = convention  # type: ignore[misc]

    def generate(self, request: vlmkit.Request) -> vlmkit.Generation:
        content = []
        for sent in request.images:  # images first, then the prompt
            encoded = encode_image(sent.image, format="JPEG")
            url = f"data:{encoded.mime_type};base64,{base64.b64encode(encoded.data).decode()}"
            content.append({"type": "image_url", "image_url": {"url": url}})
        content.append({"type": "text", "text": request.prompt})
        messages = [{"role": "user", "content": content}]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        body = {"model": self.model, "messages": messages, **request.options}
        answer, latency = self._post("/chat/completions", body)
        choice = answer["choices"][0]
        usage = answer.get("usage") or {}
        finish = {"length": "max_tokens", "content_filter": "safety"}.get(
            choice.get("finish_reason"), "stop"
        )
        return vlmkit.Generation(
            text=choice["message"].get("content"),
            finish=finish,
            model=answer.get("model", self.model),
            usage=vlmkit.Usage(
                prompt_tokens=usage.get("prompt_tokens", 0),
                output_tokens=usage.get("completion_tokens", 0),
                latency_s=latency,
            ),
        )

    def _post(self, path: str, body: dict) -> tuple[dict, float]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        http = urllib.request.Request(self.base_url + path, json.dumps(body).encode(), headers)
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(http, timeout=self.timeout) as response:
                return json.load(response), time.perf_counter() - started
        except urllib.error.HTTPError as err:  # map failures onto vlmkit's error tree
            detail = err.read(500).decode("utf-8", "replace")
            if err.code == 429:
                raise vlmkit.RateLimited(
                    f"rate limited: {detail}",
                    retry_after=float(err.headers.get("Retry-After") or 1),
                ) from None
            if err.code in (401, 403):
                raise vlmkit.AuthError(f"HTTP {err.code}: check the API key") from None
            if err.code >= 500:
                raise vlmkit.TransientError(f"HTTP {err.code}: {detail}") from None
            raise vlmkit.InvalidRequest(f"HTTP {err.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise vlmkit.TransientError(f"cannot reach {self.base_url}: {err}") from err


@vlmkit.hookimpl
def vlmkit_backends():
    yield vlmkit.BackendInfo(
        name="openai-compatible",
        factory=OpenAICompatibleBackend,
        tasks={"describe", "detect", "ocr"},
        description="Any OpenAI-compatible chat endpoint (vLLM, Ollama, LM Studio).",
        settings=(
            vlmkit.Option(name="model", help="the served model's name"),
            vlmkit.Option(name="base_url", help="the server, e.g. http://localhost:11434/v1"),
            vlmkit.Option(name="api_key", help="sent as a bearer token (or OPENAI_API_KEY)"),
            vlmkit.Option(name="convention", help="how the model writes boxes: yxyx-1000, ..."),
            vlmkit.Option(name="timeout", type=float, help="seconds per request"),
        ),
        options=OpenAICompatibleBackend.options,
    )
