"""Cutting generated ids into an answer: end of turn, pads, thinking, finish reasons."""

from __future__ import annotations

import pytest

from vlmkit import FinishReason
from vlmkit_gemma.decoding import decode_answer, split_generated

EOS = (1, 12)
CHANNEL = (13, 14)  # <|channel>, <channel|>
PAD = 0


def text_of(ids: list[int]) -> str:
    return "".join(chr(96 + i) for i in ids)  # 20 -> "t", ...


@pytest.mark.parametrize(
    ("ids", "answer", "generated", "thinking", "finish"),
    [
        ([20, 21, 12, PAD, PAD], (20, 21), 3, 0, FinishReason.STOP),  # row of a padded batch
        ([20, 21, 22, 23], (20, 21, 22, 23), 4, 0, FinishReason.MAX_TOKENS),
        ([20, 21], (20, 21), 2, 0, FinishReason.OTHER),  # stopped short, no end of turn
        ([13, 30, 31, 14, 20, 1], (20,), 6, 4, FinishReason.STOP),  # thought, then answer
        ([20, 13, 30, 31], (20,), 4, 3, FinishReason.MAX_TOKENS),  # cut off while thinking
        ([12, 20], (), 1, 0, FinishReason.STOP),
    ],
)
def test_split_generated(ids, answer, generated, thinking, finish):
    split = split_generated(ids, eos_ids=EOS, max_new_tokens=4, channel=CHANNEL)
    assert split.answer_ids == answer
    assert split.generated_tokens == generated
    assert split.thinking_tokens == thinking
    assert split.finish is finish


def test_without_a_channel_thinking_tokens_are_plain_text():
    split = split_generated([13, 20, 14, 1], eos_ids=EOS, max_new_tokens=9, channel=None)
    assert split.answer_ids == (13, 20, 14) and split.thinking_tokens == 0


def test_decode_answer_counts_and_empty_answers():
    decoded = decode_answer(
        [13, 30, 14, 20, 21, 1], text_of, eos_ids=EOS, max_new_tokens=9, channel=CHANNEL
    )
    assert decoded.text == "tu" and decoded.finish is FinishReason.STOP
    assert decoded.output_tokens == 3 and decoded.thinking_tokens == 3
    empty = decode_answer([13, 30, 14, 1], text_of, eos_ids=EOS, max_new_tokens=9, channel=CHANNEL)
    assert empty.text == "" and empty.finish is FinishReason.EMPTY
    blank = decode_answer([20, 1], lambda ids: "  \n", eos_ids=EOS, max_new_tokens=9)
    assert blank.text == "" and blank.finish is FinishReason.EMPTY
