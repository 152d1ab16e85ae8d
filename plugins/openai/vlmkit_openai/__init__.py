"""vlmkit-openai: the ``openai`` backend for models behind an OpenAI-compatible chat endpoint.

Serve Gemma with vLLM (``vllm serve google/gemma-3-4b-it``) and::

    vlmkit label photos/ --task detect --prompt "person, car" --backend openai \
        --model google/gemma-3-4b-it --config base_url=http://localhost:8000/v1 --out runs/a

``family`` (``auto`` by default: from the model name) chooses the prompts and box convention:
Gemma ``box_2d`` on 0–1000, Qwen2.5-VL ``bbox_2d`` in pixels, Qwen3-VL ``bbox_2d`` on 0–1000.
See docs/backends/openai.md.
"""

from __future__ import annotations

from vlmkit_openai.backend import OpenAIBackend
from vlmkit_openai.families import FAMILIES, Family, resolve_family, smart_resize

__all__ = ["FAMILIES", "Family", "OpenAIBackend", "resolve_family", "smart_resize"]
