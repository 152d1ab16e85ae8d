"""Fuzz: 10,000+ mutated model answers give a result or a ParseError — nothing else."""

from __future__ import annotations

import base64
import io
import json
import math
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import vlmkit
from vlmkit import ParseError, VlmkitError
from vlmkit.masks import MaskLimits

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
        tokens = [m for m in re.finditer(r'-?\d+(?:\.\d+)?|"[^"]*"', text)]
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


@pytest.mark.slow
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


# -- hypothesis: any answer gives a result or a ParseError, within the mask limits --------------
def _png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


HUGE_INT = 10**400
numbers = st.one_of(
    st.integers(-2000, 2000),
    st.just(HUGE_INT),
    st.just(-HUGE_INT),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["12", "1e999", "NaN", "", "50%", str(HUGE_INT)]),
)
polygons = st.lists(st.lists(numbers, min_size=2, max_size=2), max_size=40)
zigzags = st.integers(3, 400).map(
    lambda n: [[i * 1000 / n, 0 if i % 2 else 1000] for i in range(n)]
)
masks = st.one_of(
    st.sampled_from([_png(1, 1), _png(64, 32), "not base64!", "", None]),
    polygons,
    zigzags,
)
items = st.fixed_dictionaries(
    {"box_2d": st.lists(numbers, min_size=0, max_size=5)},
    optional={
        "label": st.one_of(st.text(max_size=8), numbers),
        "confidence": numbers,
        "mask": masks,
        "point": st.lists(numbers, max_size=3),
        "start": numbers,
        "end": st.one_of(numbers, st.sampled_from(["00:05", "1:02:03", "99:99"])),
        "text": st.text(max_size=8),
    },
)
dialects = st.sampled_from(["json", "python", "unquoted", "fenced", "cut", "comment"])


def render(answer: list, dialect: str, cut: int) -> str:
    text = json.dumps(answer)
    if dialect == "python":
        text = text.replace('"', "'").replace("null", "None") + "\n"
    elif dialect == "unquoted":
        text = re.sub(r'"(\w+)":', r"\1:", text)
    elif dialect == "fenced":
        text = f"Here you go:\n```json\n{text}\n```<turn|>"
    elif dialect == "cut":
        text = text[: max(1, len(text) - cut)]
    elif dialect == "comment":
        text = text.replace("}, {", "}, // next\n{")
    return text


@pytest.mark.slow
@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    answer=st.lists(items, max_size=12),
    dialect=dialects,
    cut=st.integers(0, 200),
    task=st.sampled_from(["detect", "segment", "points", "ocr", "video", "describe"]),
)
def test_any_answer_is_a_result_or_a_parse_error_within_the_limits(answer, dialect, cut, task):
    text = render(answer, dialect, cut)
    limits = MaskLimits(pixels=300_000, vertices=500)
    size = (640, 480)
    try:
        if task in ("detect", "segment"):
            result = vlmkit.parse(text, task=task, image_size=size, mask_limits=limits)
        else:
            result = vlmkit.parse(text, task=task, image_size=size)
    except ParseError as err:
        assert isinstance(err, VlmkitError) and err.reason
        return
    # No other exception escapes (hypothesis reports any). A result stays within the limits:
    if task == "segment":
        stored = sum(d.mask.data.size for d in result if d.mask is not None)
        assert stored <= limits.pixels
        assert result.report.masks_dropped + result.report.masks_invalid <= len(result)
    if task in ("detect", "segment"):
        xyxy = result.xyxy
        assert ((xyxy >= 0) & (xyxy <= [640, 480, 640, 480])).all()
        for detection in result:
            if detection.mask is not None and detection.mask.data.size:
                x0, y0, x1, y1 = detection.mask.region
                assert 0 <= x0 <= x1 <= 640 and 0 <= y0 <= y1 <= 480
    if task == "video":
        assert all(math.isfinite(e.start) for e in result.events)


# -- answers built to be expensive: each parses without blowing up -----------------------------
UNQUOTED = "{box_2d: [100, 200, 500, 600], label: 'cat', score: 0.9}"
EXPENSIVE = {
    "unquoted keys, 100 KB": "[" + ", ".join([UNQUOTED] * 1700) + "]",
    "64-deep nested junk": "[" * 64 + "a, " * 30_000 + "]" * 64,
    "closed junk list": "[" + "{a b c}, " * 12_000 + "]",
    "bracketless junk": "[" + "@#! ,, " * 15_000 + "]",
    "unclosed thinking": "<think>" * 15_000,
    "unclosed channel": "<|channel>" * 10_000,
    "video line of brackets": "00:01 x" + " ]" * 50_000 + "y",
    "huge integers": "[" + ", ".join([f'{{"box_2d": [{HUGE_INT}, 1, 2, 3]}}'] * 200) + "]",
}


@pytest.mark.parametrize("name", sorted(EXPENSIVE))
@pytest.mark.parametrize("task", ["detect", "segment", "video", "ocr"])
def test_expensive_answers_end_in_a_result_or_a_parse_error(name, task):
    text = EXPENSIVE[name]
    try:
        result = vlmkit.parse(text, task=task, image_size=(4000, 3000))
    except ParseError as err:
        assert err.raw_text in (text, None) or task in ("video", "ocr")
        return
    assert result is not None


def test_the_repair_budget_is_shared_by_every_candidate_of_an_answer(monkeypatch):
    # 64 separate junk lists: json_repair reads at most the per-answer budget in all.
    import json_repair

    from vlmkit import parsing

    read: list[int] = []
    real = json_repair.loads
    monkeypatch.setattr(
        json_repair, "loads", lambda text, **kw: read.append(len(text)) or real(text, **kw)
    )
    text = ("[" + "a b c " * 2000 + "] ") * 64
    with pytest.raises(ParseError):
        vlmkit.parse(text, task="detect", image_size=(10, 10))
    assert 0 < sum(read) <= parsing._REPAIR_BUDGET
