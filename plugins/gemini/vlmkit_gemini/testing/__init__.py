"""Offline testing for code that calls Gemini: a loopback fake of the Gemini REST API.

``FakeGemini`` speaks the wire format the real ``google-genai`` SDK uses, on 127.0.0.1, so a
pipeline built on vlmkit (or on the SDK directly) can be tested without network or cost.
Answers are scripted with rules (``add_rule``), per image (:class:`ImageAnswers`) or by a
function of the request. ``python -m vlmkit_gemini.testing`` runs it as a server; see
docs/try-offline.md.
"""

from vlmkit_gemini.testing.answers import ImageAnswers, load_function, true_answers
from vlmkit_gemini.testing.fake_server import FakeGemini, Headers, RecordedRequest, Rule

__all__ = [
    "FakeGemini",
    "Headers",
    "ImageAnswers",
    "RecordedRequest",
    "Rule",
    "load_function",
    "true_answers",
]
