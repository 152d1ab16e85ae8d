"""Reading one Gemini answer: a response becomes a :class:`vlmkit.Generation`.

Blocked prompts, withheld answers, cut-off answers and empty answers are outcomes on the
generation (``finish`` and a ``detail`` saying why and what to do), never exceptions; usage is
read from the answer's metadata and priced at the answering model's rate.

What is read of a response is an :class:`Answer`, made from the JSON the server sent
(:meth:`Answer.from_wire`) or from the SDK's ``GenerateContentResponse`` (:meth:`Answer.from_sdk`,
for Batch API answers). A call asks the SDK for the raw HTTP response
(``should_return_http_response``, a public setting of its config) and reads the JSON itself:
building the SDK's response model — a conversion of the whole answer in Python, a pydantic
validation with a Python check per model, the answer's JSON parsed again for ``parsed`` — was
about 0.2 ms of CPU per call, in the GIL every request of a run shares, for the handful of fields
read here (issue 16; docs/benchmarks.md). An answer the server split into continuation hops
(finish reason ``CONTINUATION`` with a continuation token, which the SDK follows on its own for a
parsed response) is followed by the backend, one :class:`Answer` per hop merged with
:meth:`Answer.then` as the SDK merges them: texts joined, token counts added, the last hop's
finish reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from vlmkit import FinishReason, Generation, Usage
from vlmkit_gemini.pricing import PriceTable, estimate_cost

if TYPE_CHECKING:
    from google.genai import types

__all__ = ["Answer", "AnswerReader"]

_SAFETY_FINISH = frozenset(
    {
        "SAFETY",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "MODEL_ARMOR",
    }
)


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", None) or getattr(value, "value", None) or value)


def _finish_reason(name: str | None) -> FinishReason:
    if name in (None, "", "STOP", "FINISH_REASON_UNSPECIFIED"):
        return FinishReason.STOP
    if name == "MAX_TOKENS":
        return FinishReason.MAX_TOKENS
    if name in _SAFETY_FINISH:
        return FinishReason.SAFETY
    return FinishReason.OTHER


_RESUMABLE = (None, "CONTINUATION")


def _count(meta: Mapping[str, Any], key: str) -> int:
    """A token count; a count in digits (how proto3 JSON writes 64-bit integers) is read as
    the SDK's models read it."""
    value = meta.get(key)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text_of(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _name_of(value: Any) -> str | None:
    """An enum's name on the wire, in capitals as the SDK's case-insensitive enums read it."""
    return value.upper() if isinstance(value, str) and value else None


@attrs.frozen(kw_only=True)
class Answer:
    """What vlmkit reads of one ``generateContent`` response: ``text`` joins the first
    candidate's parts that are not thoughts (None without a candidate); ``finish_reason``,
    ``block_reason`` and the safety ``blocked_categories`` are the wire's enum names;
    ``continuation_token`` is the wire's (base64) text while the answer continues."""

    model_version: str | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cached_tokens: int = 0
    block_reason: str | None = None
    block_reason_message: str | None = None
    candidates: int = 0
    text: str | None = None
    finish_reason: str | None = None
    finish_message: str | None = None
    blocked_categories: tuple[str, ...] = ()
    continuation_token: str | None = None

    @classmethod
    def from_wire(cls, data: Any) -> Answer:
        """The answer in the JSON body of a response (camelCase keys, as the server sends
        them); what is missing or of another type reads as absent, as the SDK reads it."""
        if not isinstance(data, Mapping):
            return cls()
        meta = data.get("usageMetadata")
        meta = meta if isinstance(meta, Mapping) else {}
        feedback = data.get("promptFeedback")
        feedback = feedback if isinstance(feedback, Mapping) else {}
        candidates = data.get("candidates")
        candidates = candidates if isinstance(candidates, list) else []
        first = candidates[0] if candidates and isinstance(candidates[0], Mapping) else {}
        content = first.get("content")
        parts = content.get("parts") if isinstance(content, Mapping) else None
        texts = [
            part["text"]
            for part in (parts if isinstance(parts, list) else ())
            if isinstance(part, Mapping)
            and isinstance(part.get("text"), str)
            and part["text"]
            and not part.get("thought")
        ]
        ratings = first.get("safetyRatings")
        blocked = tuple(
            str(_name_of(rating["category"]))
            for rating in (ratings if isinstance(ratings, list) else ())
            if isinstance(rating, Mapping)
            and rating.get("blocked")
            and _name_of(rating.get("category"))
        )
        return cls(
            model_version=_text_of(data.get("modelVersion")),
            prompt_tokens=_count(meta, "promptTokenCount"),
            output_tokens=_count(meta, "candidatesTokenCount"),
            thinking_tokens=_count(meta, "thoughtsTokenCount"),
            cached_tokens=_count(meta, "cachedContentTokenCount"),
            block_reason=_name_of(feedback.get("blockReason")),
            block_reason_message=_text_of(feedback.get("blockReasonMessage")),
            candidates=len(candidates),
            text="".join(texts) if candidates else None,
            finish_reason=_name_of(first.get("finishReason")),
            finish_message=_text_of(first.get("finishMessage")),
            blocked_categories=blocked,
            continuation_token=_text_of(first.get("continuationToken")),
        )

    @classmethod
    def from_sdk(cls, response: types.GenerateContentResponse) -> Answer:
        """The answer in a response the SDK built (a Batch API answer)."""
        meta = response.usage_metadata
        feedback = response.prompt_feedback
        candidates = response.candidates or []
        first = candidates[0] if candidates else None
        parts = (first.content.parts if first is not None and first.content else None) or []
        return cls(
            model_version=response.model_version,
            prompt_tokens=(meta.prompt_token_count or 0) if meta else 0,
            output_tokens=(meta.candidates_token_count or 0) if meta else 0,
            thinking_tokens=(meta.thoughts_token_count or 0) if meta else 0,
            cached_tokens=(meta.cached_content_token_count or 0) if meta else 0,
            block_reason=(
                _enum_name(feedback.block_reason)
                if feedback is not None and feedback.block_reason is not None
                else None
            ),
            block_reason_message=feedback.block_reason_message if feedback else None,
            candidates=len(candidates),
            text="".join(p.text for p in parts if p.text and not p.thought) if first else None,
            finish_reason=(
                _enum_name(first.finish_reason)
                if first is not None and first.finish_reason
                else None
            ),
            finish_message=first.finish_message if first is not None else None,
            blocked_categories=tuple(
                _enum_name(r.category)
                for r in (first.safety_ratings if first is not None else None) or []
                if r.blocked and r.category is not None
            ),
        )

    @property
    def continues(self) -> bool:
        """Whether the server split the answer and the rest is to be asked for with
        :attr:`continuation_token` (what the SDK's automatic continuation follows)."""
        return bool(self.continuation_token) and self.finish_reason in _RESUMABLE

    def then(self, later: Answer) -> Answer:
        """This answer followed by the next hop of it, merged as the SDK merges hops: texts
        joined, token counts added, the later hop's finish and continuation state, any other
        field the later hop's where it has one."""
        text = None
        if self.text is not None or later.text is not None:
            text = (self.text or "") + (later.text or "")
        return Answer(
            model_version=later.model_version or self.model_version,
            prompt_tokens=self.prompt_tokens + later.prompt_tokens,
            output_tokens=self.output_tokens + later.output_tokens,
            thinking_tokens=self.thinking_tokens + later.thinking_tokens,
            cached_tokens=self.cached_tokens + later.cached_tokens,
            block_reason=later.block_reason or self.block_reason,
            block_reason_message=later.block_reason_message or self.block_reason_message,
            candidates=max(self.candidates, later.candidates),
            text=text,
            finish_reason=later.finish_reason,
            finish_message=later.finish_message,
            blocked_categories=tuple(
                dict.fromkeys(self.blocked_categories + later.blocked_categories)
            ),
            continuation_token=later.continuation_token,
        )


@attrs.frozen(kw_only=True)
class AnswerReader:
    """Turns the answers of one backend into generations: ``answering_model`` (the model a
    response that names none came from), ``prices`` (the backend's price table) and
    ``thinking_knob`` (the model's thinking setting, named in a cut-off answer's advice)."""

    answering_model: str
    prices: PriceTable
    thinking_knob: str | None

    def generation(self, answer: Answer, options: Mapping[str, Any], latency: float) -> Generation:
        """The vlmkit outcome of one answer; ``options["service_tier"]`` (``flex``,
        ``priority``, or ``batch`` for Batch API answers) sets the price."""
        model = answer.model_version or self.answering_model
        usage = Usage(
            prompt_tokens=answer.prompt_tokens,
            output_tokens=answer.output_tokens,
            thinking_tokens=answer.thinking_tokens,
            cached_tokens=answer.cached_tokens,
            latency_s=latency,
        )
        tier = str(options.get("service_tier") or "standard")
        cost = estimate_cost(model, usage, self.prices, tier)
        if cost is None and model != self.answering_model:
            cost = estimate_cost(self.answering_model, usage, self.prices, tier)
        usage = attrs.evolve(usage, cost_usd=cost)
        if answer.block_reason is not None:
            why = f"the prompt was blocked ({answer.block_reason})"
            if answer.block_reason_message:
                why += f": {answer.block_reason_message}"
            return Generation(
                text=None, usage=usage, finish=FinishReason.BLOCKED, model=model, detail=why
            )
        if not answer.candidates:
            return Generation(
                text=None,
                usage=usage,
                finish=FinishReason.EMPTY,
                model=model,
                detail="the model returned no candidates",
            )
        text = answer.text or None
        reason = answer.finish_reason or None
        finish = _finish_reason(reason)
        detail = None
        if finish is FinishReason.SAFETY:
            blocked = list(answer.blocked_categories)
            detail = f"the answer was withheld ({reason})" + (
                f": {', '.join(blocked)}" if blocked else ""
            )
        elif finish is FinishReason.MAX_TOKENS:
            detail = self.cut_off_detail(usage, options.get("max_output_tokens"))
        elif finish is FinishReason.OTHER:
            detail = f"the model stopped with finish reason {reason}"
            if answer.finish_message:
                detail += f": {answer.finish_message}"
        if text is None and finish is FinishReason.STOP:
            finish, detail = FinishReason.EMPTY, "the model answered with no text"
        return Generation(text=text, usage=usage, finish=finish, model=model, detail=detail)

    def cut_off_detail(self, usage: Usage, limit: int | None) -> str:
        """Why a ``MAX_TOKENS`` answer was cut off, and what to do — saying so plainly when
        thinking used (nearly) the whole budget before the answer began."""
        shown = f"{limit:,}" if limit is not None else "the task default"
        thinking, answer = usage.thinking_tokens, usage.output_tokens
        if thinking and (answer == 0 or thinking >= 0.8 * (thinking + answer)):
            knob = "thinking_level" if self.thinking_knob == "level" else "thinking_budget"
            return (
                f"thinking used the token budget: {thinking:,} thinking tokens of "
                f"max_output_tokens={shown} left {answer:,} for the answer, which was cut off. "
                f"Raise max_output_tokens (thinking counts against it) or lower {knob}"
            )
        return (
            f"the answer was cut off at max_output_tokens={shown} after {thinking:,} thinking "
            f"and {answer:,} answer tokens; raise max_output_tokens or lower the thinking setting"
        )
