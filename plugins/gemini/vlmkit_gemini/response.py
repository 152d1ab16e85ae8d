"""Reading one Gemini answer: a ``GenerateContentResponse`` becomes a :class:`vlmkit.Generation`.

Blocked prompts, withheld answers, cut-off answers and empty answers are outcomes on the
generation (``finish`` and a ``detail`` saying why and what to do), never exceptions; usage is
read from the answer's metadata and priced at the answering model's rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from vlmkit import FinishReason, Generation, Usage
from vlmkit_gemini.pricing import PriceTable, estimate_cost

if TYPE_CHECKING:
    from google.genai import types

__all__ = ["AnswerReader"]

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


@attrs.frozen(kw_only=True)
class AnswerReader:
    """Turns the answers of one backend into generations: ``answering_model`` (the model a
    response that names none came from), ``prices`` (the backend's price table) and
    ``thinking_knob`` (the model's thinking setting, named in a cut-off answer's advice)."""

    answering_model: str
    prices: PriceTable
    thinking_knob: str | None

    def generation(
        self, response: types.GenerateContentResponse, options: Mapping[str, Any], latency: float
    ) -> Generation:
        """The vlmkit outcome of one answer; ``options["service_tier"]`` (``flex``,
        ``priority``, or ``batch`` for Batch API answers) sets the price."""
        meta = response.usage_metadata
        model = response.model_version or self.answering_model
        usage = Usage(
            prompt_tokens=(meta.prompt_token_count or 0) if meta else 0,
            output_tokens=(meta.candidates_token_count or 0) if meta else 0,
            thinking_tokens=(meta.thoughts_token_count or 0) if meta else 0,
            cached_tokens=(meta.cached_content_token_count or 0) if meta else 0,
            latency_s=latency,
        )
        tier = str(options.get("service_tier") or "standard")
        cost = estimate_cost(model, usage, self.prices, tier)
        if cost is None and model != self.answering_model:
            cost = estimate_cost(self.answering_model, usage, self.prices, tier)
        usage = attrs.evolve(usage, cost_usd=cost)
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            block = _enum_name(feedback.block_reason)
            why = f"the prompt was blocked ({block})"
            if feedback.block_reason_message:
                why += f": {feedback.block_reason_message}"
            return Generation(
                text=None, usage=usage, finish=FinishReason.BLOCKED, model=model, detail=why
            )
        candidates = response.candidates or []
        if not candidates:
            return Generation(
                text=None,
                usage=usage,
                finish=FinishReason.EMPTY,
                model=model,
                detail="the model returned no candidates",
            )
        candidate = candidates[0]
        parts = (candidate.content.parts if candidate.content else None) or []
        text = "".join(p.text for p in parts if p.text and not p.thought) or None
        reason = _enum_name(candidate.finish_reason) if candidate.finish_reason else None
        finish = _finish_reason(reason)
        detail = None
        if finish is FinishReason.SAFETY:
            blocked = [
                _enum_name(r.category)
                for r in candidate.safety_ratings or []
                if r.blocked and r.category is not None
            ]
            detail = f"the answer was withheld ({reason})" + (
                f": {', '.join(blocked)}" if blocked else ""
            )
        elif finish is FinishReason.MAX_TOKENS:
            detail = self.cut_off_detail(usage, options.get("max_output_tokens"))
        elif finish is FinishReason.OTHER:
            detail = f"the model stopped with finish reason {reason}"
            if candidate.finish_message:
                detail += f": {candidate.finish_message}"
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
