"""vlmkit backends for Google Gemini: gemini-api and gemini-vertex.

Use them through :class:`vlmkit.Session` (``Session(backend="gemini-api", model=...)``); the
backend classes live in :mod:`vlmkit_gemini.backend` and import google-genai, so this package
imports nothing heavy. Extend the model table with :func:`vlmkit_gemini.models.register_model`
and the price table with :func:`vlmkit_gemini.pricing.set_price`.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
