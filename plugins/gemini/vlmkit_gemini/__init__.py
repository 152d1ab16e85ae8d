"""vlmkit backends for Google Gemini: gemini-api and gemini-vertex.

Use them through :class:`vlmkit.Session` (``Session(backend="gemini-api", model=...)``); the
backend classes live in :mod:`vlmkit_gemini.backend` and import google-genai, so this package
imports nothing heavy. The model and price tables (:data:`vlmkit_gemini.models.MODEL_TABLE`,
:data:`vlmkit_gemini.pricing.PRICES`) are immutable; extend them for one backend with its
``capabilities=`` and ``prices=`` arguments.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
