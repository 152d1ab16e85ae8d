"""Scripted answers and injected failures: adding rules, picking the one that answers a request,
and the error bodies a failing rule answers with (quota details, retry delays, HTML pages)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from vlmkit_gemini.testing.records import RecordedRequest, Rule, TextSpec
from vlmkit_gemini.testing.wire import GENERATION_OPS, OPS, Answer, error_body, retry_info

__all__ = ["RuleScripting", "error_answer"]

_VERTEX_429_MESSAGE = (
    "Resource exhausted. Please try again later. Please refer to "
    "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
)


class RuleScripting:
    """The scripting half of :class:`~.fake_server.FakeGemini`: rules added, failures injected,
    and the rule that answers a request picked (first matching, non-exhausted rule wins)."""

    _lock: threading.Lock
    _rules: list[Rule]

    def add_rule(
        self,
        *,
        op: str | Iterable[str] | None = None,
        model: str | None = None,
        prompt_contains: str | re.Pattern[str] | None = None,
        path_kind: str | None = None,
        match: Callable[[RecordedRequest], bool] | None = None,
        text: TextSpec = None,
        finish_reason: str = "STOP",
        usage: dict[str, Any] | None = None,
        thoughts_tokens: int = 32,
        thought_text: str | None = None,
        block_reason: str | None = None,
        candidate_safety: bool = False,
        status: int | None = None,
        error_status: str | None = None,
        message: str | None = None,
        details: list[dict[str, Any]] | None = None,
        retry_delay: float | None = None,
        delay_s: float = 0.0,
        drop_connection: bool = False,
        times: int | None = None,
        ratio: float | None = None,
        seed: int = 0,
        body: Any = None,
        html_error: str | None = None,
        headers: dict[str, str | None] | None = None,
        stream_chunks: int = 2,
        stream_error_after: int | None = None,
        first: bool = False,
    ) -> Rule:
        """Script an answer; the first matching, non-exhausted rule wins.

        Matchers (all optional, all must hold): ``op`` (default generate + stream; also
        ``count_tokens``, ``upload_start``, ``upload_chunk``, ``files_get``, ``files_list``,
        ``files_delete``), ``model`` (exact or glob), ``prompt_contains`` (substring or compiled
        regex of the joined prompt text), ``path_kind`` and ``match(request) -> bool``.

        Answers: ``text`` (str, JSON-able dict/list, or ``callable(request)``), with
        ``finish_reason``, ``usage`` overrides (snake or camel keys), ``thoughts_tokens``;
        ``block_reason`` (prompt blocked, no candidates); ``candidate_safety`` (finishReason SAFETY,
        no content); ``status``/``error_status``/``message``/``details`` for an error body,
        ``retry_delay`` seconds for a RetryInfo detail (implies 429); ``html_error`` for a non-JSON
        error page (default status 502); ``body`` (JSON returned verbatim; a list is streamed as SSE
        chunks); ``headers`` extra response headers (None removes a default one);
        ``drop_connection``; ``delay_s`` latency. ``times`` limits uses (None: forever); ``ratio``
        fires on an exact deterministic fraction of matching calls (phase from ``seed``).
        ``stream_chunks`` splits streamed text; ``stream_error_after=N`` sends N chunks and then
        the error object inside the 200 stream. ``first=True`` puts the rule ahead of the others.
        """
        if isinstance(op, str):
            ops = frozenset({op})
        elif op is None:
            ops = GENERATION_OPS
        else:
            ops = frozenset(op)
        unknown = ops - set(OPS)
        if unknown:
            raise ValueError(f"unknown op(s) {sorted(unknown)}; known: {OPS}")
        if path_kind not in (None, "gemini", "vertex", "express"):
            raise ValueError(f"path_kind must be gemini, vertex or express, not {path_kind!r}")
        if retry_delay is not None and status is None:
            status = 429
        if html_error is not None and status is None:
            status = 502
        if ratio is not None and not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ratio must be within [0, 1], not {ratio}")
        rule = Rule(
            ops=ops,
            model=model.removeprefix("models/") if model else None,
            prompt_contains=prompt_contains,
            path_kind=path_kind,
            match=match,
            text=text,
            finish_reason=finish_reason,
            usage=usage,
            thoughts_tokens=thoughts_tokens,
            thought_text=thought_text,
            block_reason=block_reason,
            candidate_safety=candidate_safety,
            status=status,
            error_status=error_status,
            message=message,
            details=details,
            retry_delay=retry_delay,
            delay_s=delay_s,
            drop_connection=drop_connection,
            times=times,
            ratio=ratio,
            seed=seed,
            body=body,
            html_error=html_error,
            headers=headers,
            stream_chunks=stream_chunks,
            stream_error_after=stream_error_after,
        )
        with self._lock:
            if first:
                self._rules.insert(0, rule)
            else:
                self._rules.append(rule)
        return rule

    def fail_next(
        self,
        status: int,
        times: int = 1,
        retry_delay: float | None = None,
        *,
        message: str | None = None,
        op: str | Iterable[str] | None = None,
        **options: Any,
    ) -> Rule:
        """Make the next ``times`` generation calls fail with ``status`` (ahead of other rules)."""
        return self.add_rule(
            status=status,
            times=times,
            retry_delay=retry_delay,
            message=message,
            op=op,
            first=True,
            **options,
        )

    def fail_ratio(
        self,
        status: int,
        ratio: float,
        seed: int = 0,
        retry_delay: float | None = None,
        **options: Any,
    ) -> Rule:
        """Fail an exact, deterministic fraction of generation calls (e.g. 0.2 → 1 in 5)."""
        return self.add_rule(
            status=status, ratio=ratio, seed=seed, retry_delay=retry_delay, first=True, **options
        )

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    def _pick_rule(self, req: RecordedRequest) -> Rule | None:
        with self._lock:
            rules = list(self._rules)
        candidates = [r for r in rules if not r.exhausted and r.matches(req)]  # no lock: user code
        with self._lock:
            for rule in candidates:
                if rule._take():
                    req.rule = rule
                    return rule
        return None

    def _scripted(self, req: RecordedRequest, default: Callable[[], Answer]) -> Answer:
        """Answer a non-generation op: a matching rule's error, drop or body, else ``default()``.

        A rule with only ``headers``/``delay_s`` decorates the default answer.
        """
        rule = self._pick_rule(req)
        if rule is None:
            return default()
        if rule.drop_connection:
            return Answer(drop=True, delay_s=rule.delay_s)
        if rule.is_error:
            answer = error_answer(req, rule)
            if req.op == "upload_chunk":  # so the SDK raises at once instead of its retry loop
                answer.headers = {"x-goog-upload-status": "final", **answer.headers}
        elif rule.body is not None:
            answer = Answer(rule.status or 200, rule.body, headers=rule.headers)
        else:
            answer = default()
            answer.headers.update(rule.headers or {})
        answer.delay_s += rule.delay_s
        return answer


def error_answer(req: RecordedRequest, rule: Rule) -> Answer:
    status = rule.status or 502
    if rule.html_error is not None:
        return Answer(
            status,
            raw=rule.html_error.encode(),
            content_type="text/html; charset=UTF-8",
            headers=rule.headers,
        )
    details = list(rule.details) if rule.details is not None else []
    message = rule.message
    if message is None and status == 429 and req.path_kind in ("vertex", "express"):
        message = _VERTEX_429_MESSAGE
    if rule.details is None and status == 429 and req.path_kind == "gemini":
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": req.model or ""},
                        "quotaValue": "10",
                    }
                ],
            }
        )
    if rule.retry_delay is not None:
        details.append(retry_info(rule.retry_delay))
    return Answer(
        status,
        error_body(status, message, rule.error_status, details),
        headers=rule.headers,
    )
