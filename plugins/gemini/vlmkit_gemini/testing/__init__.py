"""Offline testing for code that calls Gemini: a loopback fake of the Gemini REST API.

``FakeGemini`` speaks the wire format the real ``google-genai`` SDK uses, on 127.0.0.1, so a
pipeline built on vlmkit (or on the SDK directly) can be tested without network or cost.
"""

from vlmkit_gemini.testing.fake_server import FakeGemini, Headers, RecordedRequest, Rule

__all__ = ["FakeGemini", "Headers", "RecordedRequest", "Rule"]
