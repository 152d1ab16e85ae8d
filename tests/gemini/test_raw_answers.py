"""A call reads the raw response's JSON instead of the SDK's response model (issue 16).

Building google-genai's ``GenerateContentResponse`` — converting the whole answer in Python,
validating it with a Python check per model, parsing the answer's JSON again for ``parsed`` —
cost about 0.2 ms of CPU per call, in the GIL a run's requests share, for the few fields
vlmkit reads. The backend asks for the raw HTTP response (``should_return_http_response``) and
reads :class:`vlmkit_gemini.response.Answer` from its JSON. These tests check that the SDK's
model is no longer built, that both readings agree on every kind of answer, and that an
answer split into continuation hops is followed and merged as the SDK's own automatic
continuation does.
"""

from __future__ import annotations

import json
import warnings

import attrs
import pytest

genai = pytest.importorskip("google.genai")
pytest.importorskip("vlmkit_gemini")

from google.genai import types  # noqa: E402

import vlmkit  # noqa: E402
import vlmkit_gemini.backend as gemini_backend  # noqa: E402
from tests.gemini.conftest import MODEL, photo  # noqa: E402
from vlmkit_gemini.response import Answer  # noqa: E402

BOXES = [{"box_2d": [100, 100, 500, 500], "label": "cat"}]
USAGE = {
    "promptTokenCount": 300,
    "candidatesTokenCount": 40,
    "thoughtsTokenCount": 12,
    "cachedContentTokenCount": 7,
    "totalTokenCount": 352,
}


def _candidate(text: str | None, finish: str | None = "STOP", **extra: object) -> dict:
    candidate: dict = {"index": 0, **extra}
    if text is not None:
        candidate["content"] = {"role": "model", "parts": [{"text": text}]}
    if finish is not None:
        candidate["finishReason"] = finish
    return candidate


#: Answers as the server sends them, one of each kind the reader tells apart.
BODIES = {
    "json answer, a thought, usage and the model's version": {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "looking at the image", "thought": True},
                        {"text": json.dumps(BOXES)},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": USAGE,
        "modelVersion": "gemini-2.5-flash-lite-001",
        "responseId": "abc",
    },
    "text in several parts": {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "a "}, {"text": "cat"}]},
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 2},
    },
    "cut off": {
        "candidates": [_candidate('[{"box_2d": [1, 2', "MAX_TOKENS")],
        "usageMetadata": USAGE,
    },
    "withheld for safety": {
        "candidates": [
            _candidate(
                None,
                "SAFETY",
                safetyRatings=[
                    {
                        "category": "HARM_CATEGORY_HARASSMENT",
                        "probability": "HIGH",
                        "blocked": True,
                    },
                    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "LOW"},
                ],
            )
        ]
    },
    "prompt blocked": {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT", "blockReasonMessage": "no"},
        "usageMetadata": {"promptTokenCount": 5},
    },
    "nothing at all": {},
    "no candidates": {"candidates": [], "usageMetadata": {"promptTokenCount": 5}},
    "a candidate without content": {"candidates": [_candidate(None, "STOP")]},
    "stopped for another reason": {
        "candidates": [_candidate("partial", "RECITATION", finishMessage="quoted text")]
    },
    "a finish reason in lower case": {"candidates": [_candidate("ok", "stop")]},
    "a finish reason the SDK does not know": {"candidates": [_candidate("ok", "NEW_REASON")]},
    "no finish reason": {"candidates": [_candidate("ok", None)]},
    "counts written as digits": {
        "candidates": [_candidate("ok")],
        "usageMetadata": {"promptTokenCount": "12", "candidatesTokenCount": "3"},
    },
}


@pytest.mark.parametrize("case", list(BODIES))
@pytest.mark.parametrize("api", ["gemini", "vertex"])
def test_the_raw_answer_reads_as_the_sdk_reads_it(
    api, case, fake_gemini, make_gemini_client, make_vertex_client
):
    fake_gemini.add_rule(body=BODIES[case])
    client = make_gemini_client() if api == "gemini" else make_vertex_client()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK warns of a finish reason it does not know
        parsed = client.models.generate_content(model=MODEL, contents="a cat?")
    raw = client.models.generate_content(
        model=MODEL,
        contents="a cat?",
        config=types.GenerateContentConfig(should_return_http_response=True),
    )
    assert raw.sdk_http_response is not None and raw.candidates is None

    answer = Answer.from_wire(json.loads(raw.sdk_http_response.body))

    expected = Answer.from_sdk(parsed)
    if api == "gemini":  # the SDK's Gemini API conversion drops finishMessage; vlmkit keeps it
        sent = (BODIES[case].get("candidates") or [{}])[0].get("finishMessage")
        assert answer.finish_message == sent
        expected = attrs.evolve(expected, finish_message=sent)
    assert answer == expected


def test_a_call_does_not_build_the_sdk_response_model(fake_gemini, gemini_session, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the SDK's response model was built")

    fake_gemini.add_rule(body=BODIES["json answer, a thought, usage and the model's version"])
    session = gemini_session()
    monkeypatch.setattr(types.GenerateContentResponse, "_from_response", refuse)

    dets = session.detect(photo(400, 300), "cat")

    assert dets.labels == ("cat",)
    assert dets.provenance.model == "gemini-2.5-flash-lite-001"
    usage = dets.provenance.usage
    assert (usage.prompt_tokens, usage.output_tokens, usage.thinking_tokens) == (300, 40, 12)
    assert usage.cached_tokens == 7
    (request,) = fake_gemini.requests_of()
    assert "shouldReturnHttpResponse" not in json.dumps(request.body)  # client-side only


def test_every_kind_of_answer_gives_the_generation_it_gave_before(fake_gemini, gemini_session):
    """The outcomes of the reader's own tests hold on the raw path (spot checks)."""
    session = gemini_session()
    fake_gemini.add_rule(prompt_contains="blocked", body=BODIES["prompt blocked"])
    fake_gemini.add_rule(prompt_contains="safety", body=BODIES["withheld for safety"])
    fake_gemini.add_rule(prompt_contains="other", body=BODIES["stopped for another reason"])
    fake_gemini.add_rule(prompt_contains="empty", body=BODIES["a candidate without content"])

    blocked = session.describe(photo(), "blocked?")
    safety = session.describe(photo(), "safety?")
    other = session.describe(photo(), "other?")
    empty = session.describe(photo(), "empty?")

    assert blocked.finish is vlmkit.FinishReason.BLOCKED
    assert blocked.provenance.detail == "the prompt was blocked (PROHIBITED_CONTENT): no"
    assert safety.finish is vlmkit.FinishReason.SAFETY
    assert safety.provenance.detail == "the answer was withheld (SAFETY): HARM_CATEGORY_HARASSMENT"
    assert other.finish is vlmkit.FinishReason.OTHER
    assert other.provenance.detail == (
        "the model stopped with finish reason RECITATION: quoted text"
    )
    assert empty.finish is vlmkit.FinishReason.EMPTY


# -- continuation ----------------------------------------------------------------------------
TOKEN = "Y29udGludWUtZnJvbS1oZXJl"  # base64 of "continue-from-here"


def _script_two_hops(fake_gemini, first_text: str, rest_text: str) -> None:
    def continued(request) -> bool:
        return (request.body or {}).get("continuationToken") == TOKEN

    fake_gemini.add_rule(
        match=continued,
        body={
            "candidates": [_candidate(rest_text, "STOP")],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 5},
            "modelVersion": "gemini-2.5-flash-lite-002",
        },
    )
    fake_gemini.add_rule(
        match=lambda request: not continued(request),
        body={
            "candidates": [_candidate(first_text, "CONTINUATION", continuationToken=TOKEN)],
            "usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": 30},
            "modelVersion": "gemini-2.5-flash-lite-001",
        },
    )


def test_an_answer_split_into_continuation_hops_is_followed_and_merged(
    fake_gemini, gemini_session, make_gemini_client
):
    first, rest = json.dumps(BOXES)[:20], json.dumps(BOXES)[20:]
    _script_two_hops(fake_gemini, first, rest)
    session = gemini_session()

    dets = session.detect(photo(400, 300), "cat")

    assert dets.labels == ("cat",) and dets.finish is vlmkit.FinishReason.STOP
    hop1, hop2 = fake_gemini.requests_of()
    assert "continuationToken" not in hop1.body and hop2.body["continuationToken"] == TOKEN
    assert hop2.body["contents"] == hop1.body["contents"]  # the same request, continued
    usage = dets.provenance.usage
    assert (usage.prompt_tokens, usage.output_tokens) == (320, 35)
    assert dets.provenance.model == "gemini-2.5-flash-lite-002"

    # The SDK's own automatic continuation, on a parsed response, merges the hops the same way.
    parsed = make_gemini_client().models.generate_content(model=MODEL, contents="a cat?")
    merged = Answer.from_sdk(parsed)
    assert merged.text == first + rest
    assert (merged.prompt_tokens, merged.output_tokens) == (320, 35)
    assert merged.finish_reason == "STOP" and merged.model_version == "gemini-2.5-flash-lite-002"


def test_an_answer_that_never_stops_continuing_is_an_error_after_the_limit(
    fake_gemini, gemini_session, monkeypatch
):
    monkeypatch.setattr(gemini_backend, "MAX_CONTINUATIONS", 3)
    fake_gemini.add_rule(
        body={"candidates": [_candidate("more", "CONTINUATION", continuationToken=TOKEN)]}
    )
    session = gemini_session()

    with pytest.raises(vlmkit.BackendError, match="still continuing its answer after 3"):
        session.describe(photo(), "go on")

    assert len(fake_gemini.requests_of()) == 4


def test_a_continuation_token_that_is_not_base64_is_a_backend_error(fake_gemini, gemini_session):
    fake_gemini.add_rule(
        body={"candidates": [_candidate("more", "CONTINUATION", continuationToken="!!!")]}
    )
    session = gemini_session()

    with pytest.raises(vlmkit.BackendError, match="continuation token that is not base64"):
        session.describe(photo(), "go on")

    assert len(fake_gemini.requests_of()) == 1


def test_a_body_that_is_not_json_is_the_error_it_was_when_the_sdk_read_it(
    fake_gemini, gemini_session
):
    fake_gemini.add_rule(status=200, html_error="<html>not json</html>")
    session = gemini_session()

    with pytest.raises(vlmkit.BackendError, match="JSONDecodeError") as caught:
        session.describe(photo(), "hello?")

    assert "test-api-key" not in str(caught.value)
    assert [request.status for request in fake_gemini.requests_of()] == [200]  # not retried


def test_answer_hops_merge_as_the_sdk_merges_them():
    first = Answer(
        prompt_tokens=10,
        output_tokens=3,
        candidates=1,
        text="ab",
        finish_reason="CONTINUATION",
        blocked_categories=("A",),
        continuation_token=TOKEN,
        model_version="m1",
    )
    later = Answer(
        prompt_tokens=2,
        output_tokens=4,
        thinking_tokens=1,
        candidates=1,
        text="cd",
        finish_reason="STOP",
        blocked_categories=("B", "A"),
    )

    merged = first.then(later)

    assert first.continues and not merged.continues
    assert merged.text == "abcd" and merged.finish_reason == "STOP"
    assert (merged.prompt_tokens, merged.output_tokens, merged.thinking_tokens) == (12, 7, 1)
    assert merged.blocked_categories == ("A", "B") and merged.model_version == "m1"
    assert Answer(finish_reason="STOP", continuation_token=TOKEN).continues is False
    assert Answer(finish_reason=None, continuation_token=TOKEN).continues is True


def _random_json(rng, depth: int = 0):
    kinds = ["null", "bool", "int", "float", "str", "digits"] + (
        ["list", "dict"] if depth < 4 else []
    )
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 7, 2**70])
    if kind == "float":
        return rng.choice([0.5, -3.0, 1e308])
    if kind == "str":
        return rng.choice(["", "STOP", "stop", "SAFETY", "MAX_TOKENS", "CONTINUATION", "²", "x"])
    if kind == "digits":
        return rng.choice(["12", "9" * 5000, "-3", "1e3"])
    if kind == "list":
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(3))]
    keys = [
        "candidates", "content", "parts", "text", "thought", "finishReason", "finishMessage",
        "safetyRatings", "category", "blocked", "usageMetadata", "promptTokenCount",
        "candidatesTokenCount", "thoughtsTokenCount", "cachedContentTokenCount",
        "promptFeedback", "blockReason", "blockReasonMessage", "modelVersion",
        "continuationToken",
    ]  # fmt: skip
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def test_any_json_body_reads_as_an_answer_and_an_outcome_never_an_exception():
    """What the server sends is the server's: a body of any shape is read as an Answer (what is
    missing or of another type reads as absent) and turned into a Generation."""
    import random

    from vlmkit_gemini.pricing import PriceTable
    from vlmkit_gemini.response import AnswerReader

    reader = AnswerReader(answering_model=MODEL, prices=PriceTable.of(None), thinking_knob=None)
    rng = random.Random(16)
    shapes = set()
    for _ in range(3000):
        body = _random_json(rng)
        if rng.random() < 0.7:  # mostly answer-shaped, so the inner fields are reached
            extra = body if isinstance(body, dict) else {}
            body = {**extra, "candidates": [_random_json(rng, 2) for _ in range(2)]}
            body["candidates"][0] = {
                "content": {"parts": [_random_json(rng, 3), {"text": _random_json(rng, 4)}]},
                "finishReason": _random_json(rng, 4),
                "safetyRatings": [_random_json(rng, 3)],
            }
        answer = Answer.from_wire(body)
        generation = reader.generation(answer, {}, 0.1)
        assert isinstance(generation.text, str | None)
        shapes.add(generation.finish)
    assert len(shapes) >= 3  # the bodies reached several outcomes, not one
    huge = {"usageMetadata": {"promptTokenCount": "9" * 5000, "candidatesTokenCount": "²"}}
    assert (Answer.from_wire(huge).prompt_tokens, Answer.from_wire(huge).output_tokens) == (0, 0)
