"""Faults: vlmkit's retry policy against scripted 429s, 5xx, timeouts and dropped connections;
errors mapped into the vlmkit tree; blocked, cut-off and empty answers as first-class outcomes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("google.genai")
pytest.importorskip("vlmkit_gemini")
httpx2 = pytest.importorskip("httpx2")

from google.auth import exceptions as auth_exceptions  # noqa: E402
from google.genai import errors as genai_errors  # noqa: E402

import vlmkit  # noqa: E402
from tests.gemini.conftest import MODEL, TEST_API_KEY, SleepRecorder, photo  # noqa: E402
from vlmkit import (  # noqa: E402
    AuthError,
    BackendError,
    ConfigError,
    InvalidRequest,
    RateLimited,
    TransientError,
)
from vlmkit_gemini.errors import (  # noqa: E402
    map_error,
    parse_duration,
    redact,
    refused_option,
    retry_after_of,
)
from vlmkit_gemini.lifecycle import RetiredTable  # noqa: E402
from vlmkit_gemini.retry import RetryPolicy  # noqa: E402

BOXES = [{"box_2d": [100, 100, 500, 500], "label": "cat"}]


# ---- retries through the real SDK -----------------------------------------------------------


def test_429_waits_the_servers_retry_delay(fake_gemini, gemini_session, sleeps):
    fake_gemini.fail_next(429, times=2, retry_delay=1.5)
    fake_gemini.add_rule(text=BOXES)
    dets = gemini_session().detect(photo(), "cats")
    assert len(dets) == 1
    assert [r.status for r in fake_gemini.requests_of()] == [429, 429, 200]
    assert len(sleeps.calls) == 2
    assert all(1.5 <= s <= 1.5 * 1.2 for s in sleeps.calls)  # honoured, with a little jitter


def test_429_retry_after_header_is_honoured(fake_gemini, gemini_session, sleeps):
    fake_gemini.add_rule(status=429, details=[], headers={"Retry-After": "3"}, times=1, first=True)
    assert gemini_session().describe(photo()).text == "ok"
    (delay,) = sleeps.calls
    assert 3.0 <= delay <= 3.6


def test_5xx_backs_off_exponentially_with_jitter(fake_gemini, gemini_session, sleeps):
    fake_gemini.fail_next(503, times=2)
    fake_gemini.add_rule(html_error="<html>bad gateway</html>", times=1)  # a proxy's error page
    assert gemini_session().describe(photo()).text == "ok"
    assert [r.status for r in fake_gemini.requests_of()] == [503, 503, 502, 200]
    first, second, third = sleeps.calls
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0 and 2.0 <= third <= 4.0


def test_timeout_is_retried(fake_gemini, gemini_session, sleeps):
    slow = fake_gemini.add_rule(delay_s=1.0, times=1, text="slow")
    fast = fake_gemini.add_rule(text="fast")
    session = gemini_session(timeout_s=0.3)
    assert session.describe(photo()).text == "fast"  # the slow answer was never waited for
    assert (slow.hits, fast.hits) == (1, 1)
    assert len(fake_gemini.requests_of()) == 2
    assert len(sleeps.calls) == 1  # one backoff between the timed-out call and the retry


def test_per_call_timeout_option(fake_gemini, gemini_session):
    fake_gemini.add_rule(delay_s=1.0, text="slow")
    session = gemini_session(retry_overrides={"max_attempts": 2})
    with pytest.raises(TransientError, match=r"timed out.*gave up after 2 attempts"):
        session.describe(photo(), timeout_s=0.2)


def test_dropped_connection_is_retried(fake_gemini, gemini_session, sleeps):
    fake_gemini.add_rule(drop_connection=True, times=1)
    assert gemini_session().describe(photo()).text == "ok"
    first, second = fake_gemini.requests_of()
    assert first.status is None and second.status == 200
    assert len(sleeps.calls) == 1


def test_retries_exhausted_raise_the_last_error_with_the_attempt_count(
    fake_gemini, gemini_session, sleeps
):
    fake_gemini.add_rule(status=503)
    session = gemini_session(max_attempts=3)
    with pytest.raises(TransientError, match=r"503 UNAVAILABLE.*gave up after 3 attempts"):
        session.describe(photo())
    assert len(fake_gemini.requests_of()) == 3 and len(sleeps.calls) == 2


def test_total_wait_budget_stops_a_long_retry_delay(fake_gemini, gemini_session, sleeps):
    fake_gemini.fail_next(429, retry_delay=100)
    session = gemini_session(max_retry_wait_s=10)
    with pytest.raises(RateLimited) as info:
        session.describe(photo())
    assert info.value.retry_after == 100  # a runner can still schedule the item for later
    assert sleeps.calls == [] and len(fake_gemini.requests_of()) == 1


def test_client_errors_are_not_retried(fake_gemini, gemini_session, sleeps):
    fake_gemini.add_rule(status=400, message="Request contains an invalid argument.", times=1)
    fake_gemini.add_rule(status=404, message="models/gemini-2.5-flashy is not found")
    session = gemini_session()
    with pytest.raises(InvalidRequest, match=r"invalid argument"):
        session.describe(photo())
    with pytest.raises(InvalidRequest, match=rf"model name '{MODEL}'"):
        session.describe(photo())
    assert sleeps.calls == [] and len(fake_gemini.requests_of()) == 2


def test_invalid_api_key_is_an_auth_error_without_the_key(fake_gemini, gemini_session, sleeps):
    secret = "AIzaSyD-this-is-a-secret-key-1234567890"
    fake_gemini.add_rule(status=403, message=f"key {secret} was revoked", times=1, first=True)
    session = gemini_session(api_key=secret)
    with pytest.raises(AuthError) as info:
        session.describe(photo())
    assert secret not in str(info.value) and "<redacted>" in str(info.value)
    fake_gemini.invalid_keys.add(secret)
    with pytest.raises(AuthError, match=r"API key not valid") as info:
        session.describe(photo())
    assert secret not in str(info.value)
    assert sleeps.calls == []


def test_many_threads_ride_out_a_429_storm(fake_gemini):
    """A fifth of all answers are 429 with a short real retry delay: every call completes."""
    fake_gemini.latency_s = 0.02
    fake_gemini.fail_ratio(429, 0.2, retry_delay=0.05)
    fake_gemini.add_rule(text=BOXES)
    with (
        vlmkit.Session(
            backend="gemini-api",
            api_key=TEST_API_KEY,
            base_url=fake_gemini.base_url,
            max_attempts=10,  # with 5, a call meets 5 429s in a row in about 1 run in 50
        ) as session,
        ThreadPoolExecutor(16) as pool,
    ):
        results = list(pool.map(lambda i: session.detect(photo(32, 32, i), "cats"), range(60)))
    assert all(len(r) == 1 for r in results)
    statuses = [r.status for r in fake_gemini.requests_of()]
    assert statuses.count(200) == 60 and statuses.count(429) >= 12


# ---- blocked, withheld, cut-off and empty answers are outcomes ------------------------------


def test_blocked_prompt_is_an_outcome(fake_gemini, gemini_session):
    fake_gemini.add_rule(block_reason="SAFETY")
    session = gemini_session()
    dets = session.detect(photo(), "cats")
    described = session.describe(photo())
    assert len(dets) == 0 and dets.finish is vlmkit.FinishReason.BLOCKED
    assert not dets.complete
    assert described.text == "" and described.finish is vlmkit.FinishReason.BLOCKED
    assert dets.provenance.usage.prompt_tokens > 0
    # the provider's reason reaches the result, not only the finish status
    assert dets.provenance.detail == "the prompt was blocked (SAFETY)"
    assert "SAFETY" in described.provenance.detail


def test_withheld_answer_is_a_safety_outcome(fake_gemini, gemini_session):
    fake_gemini.add_rule(candidate_safety=True)
    result = gemini_session().ocr(photo())
    assert result.text == "" and result.finish is vlmkit.FinishReason.SAFETY


def test_max_tokens_keeps_the_complete_items(fake_gemini, gemini_session):
    fake_gemini.add_rule(
        text='[{"box_2d": [100, 100, 500, 500], "label": "a"}, '
        '{"box_2d": [0, 0, 1000, 1000], "label": "b"}, {"box_2d": [9, 1',
        finish_reason="MAX_TOKENS",
    )
    dets = gemini_session().detect(photo(400, 300), "things", max_output_tokens=40)
    assert dets.labels == ("a", "b")
    np.testing.assert_allclose(dets.xyxy[0], [40, 30, 200, 150])
    assert dets.finish is vlmkit.FinishReason.MAX_TOKENS and dets.report.truncated


def test_thinking_that_eats_the_budget_is_a_max_tokens_outcome(fake_gemini, gemini_session):
    fake_gemini.add_rule(text="", finish_reason="MAX_TOKENS", thoughts_tokens=500)
    dets = gemini_session(model="gemini-2.5-pro", retired=RetiredTable([])).detect(photo(), "cats")
    assert len(dets) == 0 and dets.finish is vlmkit.FinishReason.MAX_TOKENS
    assert dets.provenance.usage.thinking_tokens == 500


def test_empty_answer_is_flagged_not_a_silent_empty_list(fake_gemini, gemini_session):
    fake_gemini.add_rule(text="")
    fake_gemini.add_rule(body={"candidates": [], "usageMetadata": {"promptTokenCount": 3}})
    session = gemini_session()
    first = session.detect(photo(), "cats")
    second = session.detect(photo(), "cats")
    assert first.finish is vlmkit.FinishReason.EMPTY and second.finish is vlmkit.FinishReason.EMPTY


def test_backend_generation_detail_explains_the_outcome(fake_gemini, gemini_session):
    fake_gemini.add_rule(block_reason="PROHIBITED_CONTENT", times=1)
    fake_gemini.add_rule(candidate_safety=True, times=1)
    fake_gemini.add_rule(text="partial", finish_reason="MAX_TOKENS", times=1)
    backend = gemini_session().backend
    request = vlmkit.Request(task="describe", prompt="hi")
    blocked, withheld, cut = (backend.generate(request) for _ in range(3))
    assert blocked.finish is vlmkit.FinishReason.BLOCKED
    assert "PROHIBITED_CONTENT" in blocked.detail
    assert withheld.finish is vlmkit.FinishReason.SAFETY
    assert "HARM_CATEGORY_DANGEROUS_CONTENT" in withheld.detail
    assert cut.text == "partial" and "max_output_tokens" in cut.detail


# ---- units: error mapping, durations, the retry policy --------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("0.5s", 0.5),
        ("1.500s", 1.5),
        ("250ms", 0.25),
        ("2", 2.0),
        (3, 3.0),
        ({"seconds": 1, "nanos": 500_000_000}, 1.5),
        ("soon", None),
        (None, None),
        (-1, None),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def _api_error(code: int, status: str, message: str = "m", details=None):
    body = {"error": {"code": code, "status": status, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    cls = genai_errors.ClientError if code < 500 else genai_errors.ServerError
    return cls(code, body)


def test_map_api_errors():
    retry = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.5s"}]
    limited = map_error(_api_error(429, "RESOURCE_EXHAUSTED", details=retry))
    assert isinstance(limited, RateLimited) and limited.retry_after == 0.5
    assert retry_after_of(_api_error(429, "RESOURCE_EXHAUSTED", details=retry)) == 0.5
    assert isinstance(map_error(_api_error(401, "UNAUTHENTICATED")), AuthError)
    assert isinstance(map_error(_api_error(403, "PERMISSION_DENIED")), AuthError)
    invalid_key = [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
    ]
    assert isinstance(
        map_error(_api_error(400, "INVALID_ARGUMENT", details=invalid_key)), AuthError
    )
    assert type(map_error(_api_error(400, "INVALID_ARGUMENT"))) is InvalidRequest
    assert type(map_error(_api_error(404, "NOT_FOUND"))) is InvalidRequest
    for code in (408, 500, 502, 503, 504):
        assert type(map_error(_api_error(code, "X"))) is TransientError
    assert type(map_error(_api_error(501, "NOT_IMPLEMENTED"))) is InvalidRequest


def test_map_transport_and_auth_errors():
    request = httpx2.Request("POST", "http://127.0.0.1/x")
    for err in (
        httpx2.ReadTimeout("", request=request),
        httpx2.ConnectError("refused", request=request),
        httpx2.RemoteProtocolError("Server disconnected", request=request),
        httpx2.ReadError("reset", request=request),
        TimeoutError(),
        ConnectionResetError(),
    ):
        assert type(map_error(err)) is TransientError, err
    assert "timed out" in str(map_error(httpx2.ReadTimeout("", request=request)))
    no_adc = auth_exceptions.DefaultCredentialsError("no ADC")
    assert isinstance(map_error(no_adc), AuthError)
    retryable = auth_exceptions.RefreshError("503 from the token server", retryable=True)
    assert type(map_error(retryable)) is TransientError
    assert type(map_error(RuntimeError("?"))) is BackendError


def test_aiohttp_errors_are_transient_when_aiohttp_is_installed():
    aiohttp = pytest.importorskip("aiohttp")
    assert type(map_error(aiohttp.ServerDisconnectedError())) is TransientError


def test_redact_and_refused_option():
    assert redact("key AIzaSyA1234567890abcdefghijklmnopqrstuv and s3cret", ["s3cret"]) == (
        "key <redacted> and <redacted>"
    )
    assert refused_option("Thinking budget 0 is invalid") == "thinking_budget"
    assert refused_option("thinking_level is not supported") == "thinking_level"
    assert refused_option("Developer instruction is not enabled for models/gemma-3") == "system"
    assert refused_option("JSON mode is not enabled for this model") == "structured_output"
    assert refused_option("Request contains an invalid argument.") is None


def test_retry_policy_limits_and_jitter():
    sleeps = SleepRecorder()
    policy = RetryPolicy(
        max_attempts=4, initial_delay_s=0.1, multiplier=3, jitter=0.5, sleep=sleeps
    )
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise TransientError("boom")
        return "done"

    assert policy.call(flaky) == "done"
    low = [0.05, 0.15, 0.45]
    high = [0.1, 0.3, 0.9]
    assert all(lo <= s <= hi for s, lo, hi in zip(sleeps.calls, low, high, strict=True))
    with pytest.raises(ConfigError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(InvalidRequest):  # not transient: one attempt
        policy.call(lambda: (_ for _ in ()).throw(InvalidRequest("no")))
