"""The answers to ``generateContent``, ``streamGenerateContent`` and ``countTokens``: the request
parsed into its record, checked as the real API checks it, and answered (scripted or default)."""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from vlmkit_gemini.testing.records import RecordedRequest, Rule, model_refusal
from vlmkit_gemini.testing.scripting import error_answer
from vlmkit_gemini.testing.wire import (
    Answer,
    decode_base64,
    error_body,
    get_field,
    normalize_keys,
    now_rfc3339,
    to_camel_keys,
)

if TYPE_CHECKING:
    from vlmkit_gemini.testing.fake_server import FakeGemini

__all__ = ["GenerationAnswers", "parse_generation"]

_SAFETY_RATINGS_BLOCKED = [
    {
        "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
        "probability": "HIGH",
        "blocked": True,
    },
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
]
_IMAGE_TOKENS = {"MEDIA_RESOLUTION_LOW": 66, "MEDIA_RESOLUTION_HIGH": 1032}

_FILE_URI_RE = re.compile(r"(?:^|/)files/(?P<file_id>[A-Za-z0-9_-]+)$")


def parse_generation(req: RecordedRequest) -> None:
    body = req.body if isinstance(req.body, dict) else {}
    texts: list[str] = []
    for content in get_field(body, "contents") or []:
        for part in get_field(content, "parts") or []:
            if get_field(part, "text") is not None and not get_field(part, "thought"):
                texts.append(get_field(part, "text"))
            inline = get_field(part, "inline_data")
            if inline is not None:
                try:
                    data = decode_base64(get_field(inline, "data") or "")
                except ValueError:
                    raise ValueError(
                        "Invalid value at 'inline_data.data' (TYPE_BYTES), Base64 decoding failed"
                    ) from None
                req.inline_data.append((get_field(inline, "mime_type") or "", data))
            file_data = get_field(part, "file_data")
            if file_data is not None:
                req.file_data.append(
                    (
                        get_field(file_data, "mime_type") or "",
                        get_field(file_data, "file_uri") or "",
                    )
                )
            video = get_field(part, "video_metadata")
            if video is not None:
                req.video_metadata.append(normalize_keys(video))
            resolution = get_field(part, "media_resolution")
            if resolution is not None:
                level = get_field(resolution, "level") if isinstance(resolution, dict) else None
                req.part_media_resolution.append(str(level or resolution))
    req.prompt_text = "\n".join(texts)
    system = get_field(body, "system_instruction")
    if isinstance(system, dict):
        req.system_instruction = "\n".join(
            get_field(p, "text")
            for p in get_field(system, "parts") or []
            if get_field(p, "text") is not None
        )
    elif isinstance(system, str):
        req.system_instruction = system
    req.generation_config = normalize_keys(get_field(body, "generation_config") or {})
    cfg = req.generation_config
    req.response_schema = cfg.get("response_schema", cfg.get("response_json_schema"))
    req.safety_settings = normalize_keys(get_field(body, "safety_settings") or [])


class GenerationAnswers:
    """``generateContent`` (plain and streamed) and ``countTokens`` answers: scripted by the
    matching rule or synthesized — text, thoughts, safety blocks, usage metadata."""

    def __init__(self, fake: FakeGemini) -> None:
        self.fake = fake

    def validate(self, req: RecordedRequest) -> Answer | None:
        if not get_field(req.body, "contents"):
            return Answer(
                400,
                error_body(400, "* GenerateContentRequest.contents: contents is not specified\n"),
            )
        refusal = model_refusal(req)
        if refusal is not None:
            status, message = refusal
            return Answer(status, error_body(status, message))
        for _mime, uri in req.file_data:
            if uri.startswith("gs://") or ("/files/" not in uri and not uri.startswith("files/")):
                continue
            m = _FILE_URI_RE.search(urlsplit(uri).path if "://" in uri else uri)
            file_id = m["file_id"] if m else uri
            with self.fake._lock:
                f = self.fake._files.get(f"files/{file_id}")
                state = f.resource["state"] if f else None
            if f is None:
                return Answer(
                    403,
                    error_body(
                        403,
                        f"You do not have permission to access the File {file_id} or it may not "
                        "exist.",
                        "PERMISSION_DENIED",
                    ),
                )
            if state != "ACTIVE":
                return Answer(
                    400,
                    error_body(
                        400,
                        f"The File {file_id} is not in an ACTIVE state and usage is not allowed.",
                        "FAILED_PRECONDITION",
                    ),
                )
        return None

    def answer(self, req: RecordedRequest) -> Answer:
        invalid = self.validate(req)
        if invalid is not None:
            return invalid
        rule = self.fake._pick_rule(req)
        delay = rule.delay_s if rule else 0.0
        stream = req.op == "stream"
        if rule is not None and rule.drop_connection:
            return Answer(drop=True, delay_s=delay)
        if rule is not None and rule.is_error:
            err = error_answer(req, rule)
            if stream and rule.stream_error_after is not None and rule.html_error is None:
                text = self.text_for(req, rule)
                chunks = self.success_chunks(req, rule, text)[: rule.stream_error_after]
                for chunk in chunks:
                    chunk.pop("usageMetadata", None)
                    for cand in chunk.get("candidates", []):
                        cand.pop("finishReason", None)
                return Answer(200, sse=[*chunks, err.body], headers=rule.headers, delay_s=delay)
            err.delay_s = delay
            return err
        if rule is not None and rule.body is not None:
            body = rule.body
            if stream:
                return Answer(
                    rule.status or 200,
                    sse=list(body) if isinstance(body, list) else [body],
                    headers=rule.headers,
                    delay_s=delay,
                )
            return Answer(rule.status or 200, body, headers=rule.headers, delay_s=delay)
        headers = rule.headers if rule else None
        if rule is not None and rule.block_reason is not None:
            prompt = self.prompt_tokens(req)
            body = {
                "promptFeedback": {
                    "blockReason": rule.block_reason,
                    "safetyRatings": _SAFETY_RATINGS_BLOCKED,
                },
                "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt},
                **self.envelope(req),
            }
            return Answer(
                200, sse=[body] if stream else None, body=body, headers=headers, delay_s=delay
            )
        text = self.text_for(req, rule)
        chunks = self.success_chunks(req, rule, text)
        if stream:
            return Answer(200, sse=chunks, headers=headers, delay_s=delay)
        return Answer(200, chunks[0], headers=headers, delay_s=delay)

    def text_for(self, req: RecordedRequest, rule: Rule | None) -> str:
        spec: Any = (
            rule.text if rule is not None and rule.text is not None else self.fake.default_text
        )
        if rule is not None and rule.candidate_safety:
            return ""
        if callable(spec):
            spec = spec(req)
        if isinstance(spec, dict | list):
            return json.dumps(spec)
        return "" if spec is None else str(spec)

    def thinking(self, req: RecordedRequest) -> bool:
        return req.thinking_budget != 0

    def prompt_tokens(self, req: RecordedRequest) -> int:
        per_image = _IMAGE_TOKENS.get(req.media_resolution or "", 258)
        tokens = len(req.prompt_text) // 4 + len(req.system_instruction or "") // 4
        for mime, _ in [*req.inline_data, *req.file_data]:
            if mime.startswith("video/"):
                tokens += 10 * (per_image + 5)  # ten seconds of video at 1 fps
            elif mime.startswith("audio/"):
                tokens += 320
            else:
                tokens += per_image
        return tokens

    def usage(self, req: RecordedRequest, rule: Rule | None, text: str) -> dict[str, Any]:
        prompt = self.prompt_tokens(req)
        usage: dict[str, Any] = {"promptTokenCount": prompt}
        candidates = len(text) // 4 + 1 if text else 0
        if candidates:
            usage["candidatesTokenCount"] = candidates
        thoughts = 0
        if self.thinking(req):
            thoughts = rule.thoughts_tokens if rule is not None else 32
            usage["thoughtsTokenCount"] = thoughts
        usage["totalTokenCount"] = prompt + candidates + thoughts
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
        if req.path_kind in ("vertex", "express"):
            usage["trafficType"] = "ON_DEMAND"
        if rule is not None and rule.usage:
            usage.update(to_camel_keys(rule.usage))
        return usage

    def envelope(self, req: RecordedRequest) -> dict[str, Any]:
        env: dict[str, Any] = {
            "modelVersion": req.model or "",
            "responseId": base64.urlsafe_b64encode(uuid.uuid4().bytes[:12]).decode(),
        }
        if req.path_kind in ("vertex", "express"):
            env["createTime"] = now_rfc3339()
        return env

    def success_chunks(self, req: RecordedRequest, rule: Rule | None, text: str) -> list[dict]:
        """The answer as SSE chunks; the last one carries finishReason and the full usage."""
        finish = "SAFETY" if rule is not None and rule.candidate_safety else "STOP"
        if rule is not None and not rule.candidate_safety:
            finish = rule.finish_reason
        n = max(1, rule.stream_chunks if rule is not None else 2)
        if req.op != "stream" or not text:
            pieces = [text]
        else:
            step = max(1, math.ceil(len(text) / n))
            pieces = [text[i : i + step] for i in range(0, len(text), step)]
        envelope = self.envelope(req)
        thinking = self.thinking(req)
        include_thoughts = bool(
            (req.generation_config.get("thinking_config") or {}).get("include_thoughts")
        )
        usage = self.usage(req, rule, text)
        chunks = []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            parts: list[dict[str, Any]] = []
            if i == 0 and thinking and (include_thoughts or (rule and rule.thought_text)):
                thought = rule.thought_text if rule and rule.thought_text else "(fake thoughts)"
                parts.append({"text": thought, "thought": True})
            if piece:
                parts.append({"text": piece})
            candidate: dict[str, Any] = {"index": 0}
            if rule is not None and rule.candidate_safety:
                candidate["safetyRatings"] = _SAFETY_RATINGS_BLOCKED
            else:
                candidate["content"] = {"role": "model", **({"parts": parts} if parts else {})}
            if last:
                candidate["finishReason"] = finish
            chunk: dict[str, Any] = {"candidates": [candidate]}
            chunk["usageMetadata"] = (
                usage
                if last
                else {
                    "promptTokenCount": usage["promptTokenCount"],
                    "totalTokenCount": usage["promptTokenCount"],
                }
            )
            chunk.update(envelope)
            chunks.append(chunk)
        return chunks

    def count_tokens(self, req: RecordedRequest) -> Answer:
        # Vertex/Gemini both accept {"contents": [...]}; the Gemini API also a wrapped request.
        wrapped = get_field(req.body, "generate_content_request")
        if isinstance(wrapped, dict) and not get_field(req.body, "contents"):
            inner = RecordedRequest(
                op="count_tokens", method="POST", path=req.path, query={}, headers=req.headers
            )
            inner.body = wrapped
            parse_generation(inner)
            req.prompt_text, req.inline_data = inner.prompt_text, inner.inline_data
            req.file_data, req.generation_config = inner.file_data, inner.generation_config
        total = self.prompt_tokens(req)
        return Answer(
            200,
            {
                "totalTokens": total,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}],
            },
        )
