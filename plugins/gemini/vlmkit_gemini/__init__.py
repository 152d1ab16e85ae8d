"""vlmkit backends for Google Gemini: gemini-api and gemini-vertex."""
