"""Fuzz: 10,000+ mutated model answers give a result or a ParseError — nothing else."""

from __future__ import annotations

import json
import random

import vlmkit
from vlmkit import ParseError

SEED_ANSWERS = [
    '```json\n[\n  {"box_2d": [243, 252, 956, 415], "label": "person"},\n'
    '  {"box_2d": [356, 606, 654, 802], "label": "cat"}\n]\n```<turn|>',
    '{"boxes": [{"box_2d": [20, 20, 80, 60], "label": "box",'
    ' "mask": [[200, 200], [600, 200], [600, 800]]}]}',
    "[{'box_2d': ['100', '200', '300', '400'], 'label': 'a {b}',},]",
    '<|channel>thought\nhmm [1,2]<channel|>[{"point": [100, 200], "label": "p"}]',
    '[{"box_2d": [1, 2, 3, 4], "label": null, "confidence": "0.5", "text": "STOP"}]',
]
JUNK = [
    '"',
    "\\ud800",  # an escaped lone surrogate: valid JSON, not encodable as UTF-8
    "\\udfff",
    "[" * 200,  # nesting deeper than any answer
    "{" * 70,
    "'",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "\\",
    "```",
    "null",
    "NaN",
    "-1e309",
    "\x00",
    "猫",
    "<turn|>",
    "<|channel>",
    "\n",
    " ",
    "1",
    "true",
    "[[",
    "]]",
    "//",
    "/*",
]
WRONG_TYPES = [
    "null",
    "true",
    '"x"',
    "[]",
    "{}",
    "[[1,2],[3,4]]",
    '{"a": 1}',
    "1e999",
    "-5",
    '"NaN"',
]


def mutate(text: str, rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:  # truncate anywhere
        return text[: rng.randrange(len(text) + 1)]
    if kind == 1:  # delete a span
        i = rng.randrange(len(text) + 1)
        return text[:i] + text[i + rng.randrange(1, 8) :]
    if kind == 2:  # insert junk
        i = rng.randrange(len(text) + 1)
        return text[:i] + rng.choice(JUNK) + text[i:]
    if kind == 3:  # replace a number or string with a wrong type
        tokens = [m for m in __import__("re").finditer(r'-?\d+(?:\.\d+)?|"[^"]*"', text)]
        if not tokens:
            return text
        m = rng.choice(tokens)
        return text[: m.start()] + rng.choice(WRONG_TYPES) + text[m.end() :]
    if kind == 4:  # swap two characters
        if len(text) < 2:
            return text
        i, j = sorted(rng.sample(range(len(text)), 2))
        chars = list(text)
        chars[i], chars[j] = chars[j], chars[i]
        return "".join(chars)
    return "".join(rng.choice(JUNK) for _ in range(rng.randrange(1, 20)))  # pure garbage


def test_ten_thousand_mutated_answers_never_crash():
    rng = random.Random(20261121)
    tasks = ["detect", "segment", "points", "ocr", "video", "describe"]
    outcomes = {"result": 0, "parse_error": 0}
    for i in range(10_500):
        seed = SEED_ANSWERS[i % len(SEED_ANSWERS)]
        text = seed
        for _ in range(rng.randrange(1, 4)):
            text = mutate(text, rng)
        task = tasks[i % len(tasks)]
        try:
            result = vlmkit.parse(text, task=task, image_size=(640, 480))
        except ParseError as err:
            assert err.raw_text == text or task not in ("detect", "segment", "points")
            outcomes["parse_error"] += 1
            continue
        except Exception as err:  # pragma: no cover - the point of the test
            raise AssertionError(
                f"{type(err).__name__}: {err}\ntask={task}\ntext={text!r}"
            ) from err
        outcomes["result"] += 1
        if task in ("detect", "segment"):
            xyxy = result.xyxy
            assert ((xyxy >= 0) & (xyxy[:, [2, 3, 2, 3]] <= [640, 480, 640, 480])).all()
            json.dumps(result.labels)
    assert outcomes["result"] > 1000 and outcomes["parse_error"] > 1000, outcomes
