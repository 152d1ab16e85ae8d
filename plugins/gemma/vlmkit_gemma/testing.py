"""Tiny random Gemma 4 / Gemma 3 checkpoints, for testing gemma-local pipelines offline.

A builder writes a complete checkpoint folder (``config.json``, ``model.safetensors``,
``generation_config.json``, ``tokenizer.json``, ``tokenizer_config.json``,
``chat_template.jinja``, ``processor_config.json``) of a few hundred kilobytes that loads
through exactly the code a real Hub checkpoint goes through (``AutoProcessor`` /
``AutoModelForImageTextToText``), in well under a second, without network. With ``script=``
every request gets that exact answer, so a test can assert what a pipeline makes of it::

    import vlmkit
    from vlmkit_gemma.testing import build_tiny_gemma4

    def test_my_pipeline(tmp_path):
        folder = build_tiny_gemma4(
            tmp_path / "tiny", script='[{"box_2d": [100, 200, 500, 600], "label": "cat"}]'
        )
        with vlmkit.Session(backend="gemma-local", model=str(folder), device="cpu") as s:
            assert s.detect("cat.jpg", "cat").labels == ("cat",)

Nothing is downloaded and nothing needs committing: build into ``tmp_path`` (pytest) or a
temporary folder. The weights are random, so without a script the answers are gibberish.

Recipe (pitfalls P1-P13 and measurements: docs/reference/gemma-local.md):

* Tokenizer: ``GemmaTokenizer`` with the base specials (pad 0, eos 1, bos 2, unk 3, mask 4),
  every control token of the real checkpoint as a *special added* token (image, audio and
  ``<|video|>`` tokens included, pitfalls P3, P5, P6), ``▁``, printable ASCII and the 256
  ``<0xNN>`` byte tokens. There are no merges, so byte fallback makes any Unicode string
  round-trip exactly. ``vocab_size == len(tokenizer)``, so every id the model emits decodes.
* Gemma 4: an E2B-shaped text model (per-layer embeddings, KV sharing, double-wide MLP,
  sliding + full layers, a wider global head dim, logit softcapping) and a one-layer vision tower
  with the *real* ``patch_size`` 16 and pooling 3, so image-token counts equal the real model's
  for every ``max_soft_tokens`` budget. ``processor_config.json`` uses the Hub's nested layout
  (``Gemma4Processor`` cannot be built, hence not saved, without torchvision).
* Gemma 3: a two-layer text model and a small SigLIP (64 px images, 8 px patches,
  ``mm_tokens_per_image=16``), saved with ``Gemma3Processor.save_pretrained``.
* Weights are seeded (``torch.manual_seed(0)``), so builds are byte-identical.
* ``script=...`` bakes a deterministic answer into ``generation_config.json`` as a standard
  ``sequence_bias`` list: entry k is ``[anchor + script_ids[:k + 1], 1000.0]`` where ``anchor``
  is the template's generation prompt (``<|turn>model\\n``, found by rendering the template with
  and without ``add_generation_prompt``); a last entry forces the end-of-turn token. Exactly one
  entry matches per step and +1000 beats logits softcapped at ±30, so greedy *and* sampled
  generation emit exactly the script, for single requests and left-padded batches alike.
* ``thinking_prefill=True`` (Gemma 4) writes the template variant that pre-fills an empty
  thought channel ``<|channel>thought\\n<channel|>`` after ``<|turn>model\\n`` when thinking is
  off. The pre-fill is part of the *prompt*, so the decoded answer does not contain it; a script
  that itself starts with ``<|channel>thought\\n…<channel|>`` (a model that thinks) decodes with
  ``skip_special_tokens=True`` to ``"thought\\n…"`` in front of the answer, which a backend must
  strip (pitfall P9).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "GEMMA3_CHAT_TEMPLATE",
    "GEMMA4_CHAT_TEMPLATE",
    "GEMMA4_CHAT_TEMPLATE_THINKING_PREFILL",
    "build_tiny_gemma3",
    "build_tiny_gemma4",
]

SEED = 0
SCRIPT_BIAS = 1000.0

_BASE_SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")  # ids 0..4 as in every Gemma

# Gemma 4: named control tokens (as in gemma-4-E2B-it/tokenizer_config.json) and the others.
G4_NAMED = {
    "image_token": "<|image|>",
    "boi_token": "<|image>",
    "eoi_token": "<image|>",
    "audio_token": "<|audio|>",
    "boa_token": "<|audio>",
    "eoa_token": "<audio|>",
    "sot_token": "<|turn>",
    "eot_token": "<turn|>",
    "soc_token": "<|channel>",
    "eoc_token": "<channel|>",
    "think_token": "<|think|>",
}
G4_EXTRA = (
    "<|video|>",
    "<|tool_call>",
    "<tool_call|>",
    "<|tool>",
    "<tool|>",
    "<|tool_response>",
    "<tool_response|>",
    '<|"|>',
)

# Gemma 3: named tokens of the real tokenizer, plus the turn markers.
G3_NAMED = {
    "boi_token": "<start_of_image>",
    "eoi_token": "<end_of_image>",
    "image_token": "<image_soft_token>",
}
G3_EXTRA = ("<start_of_turn>", "<end_of_turn>")

_G4_CONTENT_MACRO = """\
{%- macro render_content(content) -%}
{%- if content is string -%}{{- content | trim -}}
{%- else -%}{%- for item in content -%}
{%- if item['type'] == 'image' -%}{{- '<|image|>' -}}
{%- elif item['type'] == 'video' -%}{{- '<|video|>' -}}
{%- elif item['type'] == 'audio' -%}{{- '<|audio|>' -}}
{%- elif item['type'] == 'text' -%}{{- item['text'] | trim -}}
{%- endif -%}
{%- endfor -%}{%- endif -%}
{%- endmacro -%}
"""

_G4_TURNS = """\
{{- bos_token -}}
{%- set thinking = enable_thinking | default(false) -%}
{%- set has_system = messages and messages[0]['role'] == 'system' -%}
{%- if thinking or has_system -%}
{{- '<|turn>system\\n' -}}
{%- if thinking -%}{{- '<|think|>' -}}{%- endif -%}
{%- if has_system -%}{{- render_content(messages[0]['content']) -}}{%- endif -%}
{{- '<turn|>\\n' -}}
{%- endif -%}
{%- for message in messages -%}
{%- if not (loop.first and has_system) -%}
{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
{{- '<|turn>' + role + '\\n' + render_content(message['content']) + '<turn|>\\n' -}}
{%- endif -%}
{%- endfor -%}
"""

#: A compact Gemma 4 template:
#: ``<bos>[<|turn>system\n…<turn|>\n]<|turn>user\n…<turn|>\n<|turn>model\n``.
GEMMA4_CHAT_TEMPLATE = (
    _G4_CONTENT_MACRO
    + _G4_TURNS
    + "{%- if add_generation_prompt -%}{{- '<|turn>model\\n' -}}{%- endif -%}\n"
)

#: The variant that pre-fills an empty thought channel when thinking is off (llama.cpp-style).
GEMMA4_CHAT_TEMPLATE_THINKING_PREFILL = (
    _G4_CONTENT_MACRO
    + _G4_TURNS
    + "{%- if add_generation_prompt -%}{{- '<|turn>model\\n' -}}"
    + "{%- if not thinking -%}{{- '<|channel>thought\\n<channel|>' -}}{%- endif -%}"
    + "{%- endif -%}\n"
)

#: Gemma 3's public template, condensed: the system text is prepended to the first user turn.
GEMMA3_CHAT_TEMPLATE = """\
{{- bos_token -}}
{%- if messages and messages[0]['role'] == 'system' -%}
{%- if messages[0]['content'] is string -%}
{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
{%- else -%}
{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}
{%- endif -%}
{%- set loop_messages = messages[1:] -%}
{%- else -%}
{%- set first_user_prefix = '' -%}
{%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
{{- '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') -}}
{%- if message['content'] is string -%}{{- message['content'] | trim -}}
{%- else -%}{%- for item in message['content'] -%}
{%- if item['type'] == 'image' -%}{{- '<start_of_image>' -}}
{%- elif item['type'] == 'text' -%}{{- item['text'] | trim -}}
{%- endif -%}
{%- endfor -%}{%- endif -%}
{{- '<end_of_turn>\\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}
"""


# --------------------------------------------------------------------------------------------
# tokenizer


def _vocab(control_tokens: list[str]) -> dict[str, int]:
    tokens = [*_BASE_SPECIALS, *control_tokens, "▁"]
    tokens += [chr(c) for c in range(0x21, 0x7F)]  # printable ASCII; " " is normalized to "▁"
    tokens += [f"<0x{b:02X}>" for b in range(256)]  # byte fallback for everything else
    return {tok: i for i, tok in enumerate(tokens)}


def _tokenizer(named: dict[str, str], extra: tuple[str, ...], chat_template: str):
    from transformers import GemmaTokenizer

    vocab = _vocab([*named.values(), *extra])
    tok = GemmaTokenizer(
        vocab=vocab,
        merges=[],
        extra_special_tokens=dict(named),  # -> tok.image_token, tok.boi_token_id, ...
        padding_side="left",
        clean_up_tokenization_spaces=False,
        chat_template=chat_template,
    )
    tok.add_special_tokens(
        {"additional_special_tokens": list(extra)}, replace_extra_special_tokens=False
    )
    if len(tok) != len(vocab):  # every token must already be in the vocab (pitfall P5)
        raise AssertionError(f"tokenizer grew from {len(vocab)} to {len(tok)} tokens")
    return tok


def _ids(tok, token: str) -> int:
    token_id = tok.convert_tokens_to_ids(token)
    if token_id is None or token_id == tok.unk_token_id:
        raise AssertionError(f"{token!r} is not in the tiny vocabulary")
    return int(token_id)


# --------------------------------------------------------------------------------------------
# scripted answers


def _generation_prompt_ids(tok, chat_template: str) -> list[int]:
    """Token ids the template appends for ``add_generation_prompt=True`` (the script's anchor)."""
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    without = tok.apply_chat_template(
        messages, chat_template=chat_template, tokenize=False, add_generation_prompt=False
    )
    with_prompt = tok.apply_chat_template(
        messages, chat_template=chat_template, tokenize=False, add_generation_prompt=True
    )
    if not with_prompt.startswith(without) or with_prompt == without:
        raise AssertionError("cannot derive the generation prompt from the chat template")
    anchor = tok.encode(with_prompt[len(without) :], add_special_tokens=False)
    full = tok.encode(with_prompt, add_special_tokens=False)
    if full[-len(anchor) :] != anchor:
        raise AssertionError("the generation prompt does not tokenize the same inside the prompt")
    return list(anchor)


def _sequence_bias(tok, chat_template: str, script: str, eot_id: int) -> list[list[Any]]:
    script_ids = tok.encode(script, add_special_tokens=False)
    if not script_ids:
        raise ValueError("script must not be empty")
    if tok.decode(script_ids, skip_special_tokens=False) != script:
        raise ValueError(f"script does not round-trip through the tiny tokenizer: {script!r}")
    anchor = _generation_prompt_ids(tok, chat_template)
    steps = [*script_ids, eot_id]
    return [[anchor + steps[: k + 1], SCRIPT_BIAS] for k in range(len(steps))]


# --------------------------------------------------------------------------------------------
# writers


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _save_model_and_tokenizer(model, tok, generation: dict[str, Any], out: Path) -> None:
    from transformers import GenerationConfig

    from vlmkit_gemma.progress import transformers_bars_hidden

    model.generation_config = GenerationConfig(**generation)
    with transformers_bars_hidden():
        model.save_pretrained(out)
    tok.save_pretrained(out)


def _g4_processor_config(image_seq_length: int) -> dict[str, Any]:
    from transformers.models.gemma4.feature_extraction_gemma4 import Gemma4AudioFeatureExtractor
    from transformers.models.gemma4.image_processing_pil_gemma4 import Gemma4ImageProcessorPil

    feature_extractor = Gemma4AudioFeatureExtractor().to_dict()
    feature_extractor["mel_floor"] = float(feature_extractor["mel_floor"])
    feature_extractor["feature_extractor_type"] = "Gemma4AudioFeatureExtractor"
    image_processor = Gemma4ImageProcessorPil(max_soft_tokens=image_seq_length).to_dict()
    image_processor["image_processor_type"] = "Gemma4ImageProcessor"  # as on the Hub (P2)
    video_processor = {  # Gemma4VideoProcessor's defaults; it cannot be built without torchvision
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "do_sample_frames": True,
        "image_mean": [0.0, 0.0, 0.0],
        "image_std": [1.0, 1.0, 1.0],
        "max_soft_tokens": 70,
        "num_frames": 32,
        "patch_size": 16,
        "pooling_kernel_size": 3,
        "resample": 3,
        "rescale_factor": 1 / 255,
        "video_processor_type": "Gemma4VideoProcessor",
    }
    return {
        "audio_ms_per_token": 40,
        "audio_seq_length": 750,
        "feature_extractor": feature_extractor,
        "image_processor": image_processor,
        "image_seq_length": image_seq_length,
        "processor_class": "Gemma4Processor",
        "video_processor": video_processor,
    }


def build_tiny_gemma4(
    out_dir: str | Path, *, script: str | None = None, thinking_prefill: bool = False
) -> Path:
    """Write a tiny random Gemma 4 (E2B-shaped) checkpoint into ``out_dir`` and return it.

    ``script``: the exact answer every request gets (greedy or sampled), followed by ``<turn|>``.
    ``thinking_prefill``: use the template that pre-fills ``<|channel>thought\\n<channel|>``.
    """
    import torch
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    template = GEMMA4_CHAT_TEMPLATE_THINKING_PREFILL if thinking_prefill else GEMMA4_CHAT_TEMPLATE
    tok = _tokenizer(G4_NAMED, G4_EXTRA, template)
    vocab_size = len(tok)
    config = Gemma4Config(
        text_config={
            "vocab_size": vocab_size,
            "vocab_size_per_layer_input": vocab_size,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 4,
            "layer_types": ["sliding_attention", "full_attention"] * 2,
            "num_kv_shared_layers": 2,
            "use_double_wide_mlp": True,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "global_head_dim": 32,
            "hidden_size_per_layer_input": 8,
            "sliding_window": 512,
            "max_position_embeddings": 4096,
            "final_logit_softcapping": 30.0,
            "pad_token_id": 0,
            "bos_token_id": 2,
            "eos_token_id": 1,
            "tie_word_embeddings": True,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "patch_size": 16,
            "pooling_kernel_size": 3,
            "position_embedding_size": 1024,
            "use_clipped_linears": True,
            "standardize": False,
        },
        audio_config=None,
        image_token_id=_ids(tok, G4_NAMED["image_token"]),
        boi_token_id=_ids(tok, G4_NAMED["boi_token"]),
        eoi_token_id=_ids(tok, G4_NAMED["eoi_token"]),
        video_token_id=_ids(tok, "<|video|>"),
        audio_token_id=_ids(tok, G4_NAMED["audio_token"]),
        boa_token_id=_ids(tok, G4_NAMED["boa_token"]),
        eoa_token_index=_ids(tok, G4_NAMED["eoa_token"]),
    )
    torch.manual_seed(SEED)
    model = Gemma4ForConditionalGeneration(config).eval()
    eot = _ids(tok, G4_NAMED["eot_token"])
    generation: dict[str, Any] = {
        "bos_token_id": 2,
        "pad_token_id": 0,
        "eos_token_id": [1, eot],
        "do_sample": False,
    }
    if script is not None:
        generation["sequence_bias"] = _sequence_bias(tok, template, script, eot)
    _save_model_and_tokenizer(model, tok, generation, out)
    _write_json(out / "processor_config.json", _g4_processor_config(image_seq_length=280))
    return out


def build_tiny_gemma3(out_dir: str | Path, *, script: str | None = None) -> Path:
    """Write a tiny random Gemma 3 checkpoint (64 px SigLIP, 16 tokens per image) into ``out_dir``.

    ``script``: the exact answer every request gets (greedy or sampled), then ``<end_of_turn>``.
    """
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer(G3_NAMED, G3_EXTRA, GEMMA3_CHAT_TEMPLATE)
    vocab_size = len(tok)
    image_size, patch_size, mm_tokens = 64, 8, 16
    config = Gemma3Config(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "layer_types": ["sliding_attention", "full_attention"],
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "query_pre_attn_scalar": 32,
            "sliding_window": 512,
            "max_position_embeddings": 4096,
            "pad_token_id": 0,
            "bos_token_id": 2,
            "eos_token_id": 1,
            "tie_word_embeddings": True,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": patch_size,
            "vision_use_head": False,
        },
        mm_tokens_per_image=mm_tokens,
        boi_token_index=_ids(tok, G3_NAMED["boi_token"]),
        eoi_token_index=_ids(tok, G3_NAMED["eoi_token"]),
        image_token_index=_ids(tok, G3_NAMED["image_token"]),
    )
    torch.manual_seed(SEED)
    model = Gemma3ForConditionalGeneration(config).eval()
    eot = _ids(tok, "<end_of_turn>")
    generation: dict[str, Any] = {
        "bos_token_id": 2,
        "pad_token_id": 0,
        "eos_token_id": [1, eot],
        "do_sample": False,
    }
    if script is not None:
        generation["sequence_bias"] = _sequence_bias(tok, GEMMA3_CHAT_TEMPLATE, script, eot)
    _save_model_and_tokenizer(model, tok, generation, out)
    image_processor = Gemma3ImageProcessorPil(
        size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        chat_template=GEMMA3_CHAT_TEMPLATE,
        image_seq_length=mm_tokens,
    )
    processor.save_pretrained(out)
    return out
