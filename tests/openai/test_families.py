"""Which convention a served model speaks, and the Qwen2.5 server's resize."""

from __future__ import annotations

import pytest

import vlmkit
from vlmkit_openai.families import QWEN_MAX_PIXELS, resolve_family, smart_resize


@pytest.mark.parametrize(
    ("model", "family", "convention"),
    [
        ("google/gemma-3-4b-it", "gemma", "yxyx-1000"),
        ("gemma3:4b", "gemma", "yxyx-1000"),
        ("google/gemma-4-E4B-it", "gemma", "yxyx-1000"),
        ("Qwen/Qwen2.5-VL-7B-Instruct", "qwen", "xyxy-pixels"),
        ("qwen2.5vl:7b", "qwen", "xyxy-pixels"),
        ("Qwen/Qwen3-VL-8B-Instruct", "qwen3", "xyxy-1000"),
    ],
)
def test_auto_picks_the_family_by_model_name(model, family, convention):
    chosen = resolve_family("auto", model)
    assert (chosen.name, chosen.convention) == (family, convention)


def test_an_unknown_model_name_asks_for_the_family():
    with pytest.raises(vlmkit.ConfigError, match="set family=gemma"):
        resolve_family("auto", "llava-1.6")
    assert resolve_family("gemma", "llava-1.6").convention == "yxyx-1000"
    with pytest.raises(vlmkit.ConfigError, match="unknown model family"):
        resolve_family("llama", "x")


@pytest.mark.parametrize("size", [(3001, 2003), (640, 480), (31, 17), (1, 1), (28, 28)])
def test_smart_resize_is_a_fixed_point_on_the_28px_grid(size):
    width, height = smart_resize(*size)
    assert width % 28 == 0 and height % 28 == 0
    assert 56 * 56 <= width * height <= QWEN_MAX_PIXELS
    assert smart_resize(width, height) == (width, height)  # the server leaves it as sent
