"""From generated token ids to an answer: cut at end-of-turn, drop thinking, say why it stopped.

Works on plain lists of ids (no torch), so it is the same for single requests and for rows of a
left-padded batch, where a row that finished early is followed by pad tokens.

Thinking is removed by token id, not by text: a Gemma 4 ``<|channel>thought ...<channel|>``
block is skipped whole, so no ``thought`` line survives decoding (pitfall P9), and its length is
reported as thinking tokens. A channel that never closes (the model was cut off while thinking)
leaves no answer.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import attrs

from vlmkit import FinishReason

__all__ = ["Decoded", "Split", "decode_answer", "split_generated"]


@attrs.frozen(kw_only=True)
class Split:
    """A generated row taken apart: the answer's ids and the counts usage needs."""

    answer_ids: tuple[int, ...]
    generated_tokens: int  # everything the model produced, end-of-turn included
    thinking_tokens: int
    finish: FinishReason


@attrs.frozen(kw_only=True)
class Decoded:
    """The answer text of one row, why generation stopped, and its token counts."""

    text: str
    finish: FinishReason
    output_tokens: int
    thinking_tokens: int


def split_generated(
    ids: Sequence[int],
    *,
    eos_ids: Collection[int],
    max_new_tokens: int,
    channel: tuple[int, int] | None = None,
) -> Split:
    """Split one row of new token ids (prompt already removed).

    ``eos_ids``: the ids that end a turn (``<eos>``, ``<turn|>`` / ``<end_of_turn>``).
    ``channel``: the ``(<|channel>, <channel|>)`` ids of a model that can think, else ``None``.
    The finish is ``STOP`` at an end-of-turn id, ``MAX_TOKENS`` when the row ran to
    ``max_new_tokens`` without one, and ``OTHER`` when it stopped short without one.
    """
    ids = [int(i) for i in ids]
    end = next((index for index, token in enumerate(ids) if token in eos_ids), None)
    if end is not None:
        body, generated, finish = ids[:end], end + 1, FinishReason.STOP
    else:
        body, generated = ids, len(ids)
        finish = FinishReason.MAX_TOKENS if len(ids) >= max_new_tokens else FinishReason.OTHER
    answer: list[int] = []
    thinking = 0
    inside = False
    for token in body:
        if channel is not None and not inside and token == channel[0]:
            inside = True
        if inside:
            thinking += 1
            if channel is not None and token == channel[1]:
                inside = False
        else:
            answer.append(token)
    return Split(
        answer_ids=tuple(answer),
        generated_tokens=generated,
        thinking_tokens=thinking,
        finish=finish,
    )


def decode_answer(
    ids: Sequence[int],
    decode: Callable[[list[int]], str],
    *,
    eos_ids: Collection[int],
    max_new_tokens: int,
    channel: tuple[int, int] | None = None,
) -> Decoded:
    """Decode one row: ``decode`` turns ids into text without special tokens.

    An empty answer that ended normally is reported as ``EMPTY``.
    """
    split = split_generated(ids, eos_ids=eos_ids, max_new_tokens=max_new_tokens, channel=channel)
    text = decode(list(split.answer_ids)).strip() if split.answer_ids else ""
    finish = split.finish
    if not text and finish is FinishReason.STOP:
        finish = FinishReason.EMPTY
    return Decoded(
        text=text,
        finish=finish,
        output_tokens=split.generated_tokens - split.thinking_tokens,
        thinking_tokens=split.thinking_tokens,
    )
