"""vlmkit-gemma: the gemma-local backend (Gemma 4 and Gemma 3 through transformers)."""
