"""Tolerant, honest parsing of what vision-language models write.

Models wrap JSON in markdown fences, put prose or thinking text around it, end with chat tokens
(``<turn|>``, ``<end_of_turn>``), use Python quotes or trailing commas, write numbers as strings,
and get cut off by the token limit mid-list. This module recovers every complete item and says
what it had to repair or leave out (:class:`~vlmkit.ParseReport`). What cannot be parsed raises
:class:`~vlmkit.ParseError` carrying the raw text — never an empty result that looks like
"nothing found".

Layers, each usable alone:

* :func:`clean_text` — strip chat tokens and thinking.
* :func:`extract_json` — find the JSON value in the text (fences, prose), repair syntax, cut a
  truncated list back to its complete items.
* :func:`parse_detections`, :func:`parse_points`, :func:`parse_ocr`, :func:`parse_video` — build
  typed results in original-image pixels through :mod:`vlmkit.geometry`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

import attrs
import numpy as np

from vlmkit.errors import ConfigError, ParseError
from vlmkit.geometry import Convention, Transform, boxes_to_pixels, points_to_pixels
from vlmkit.masks import LIMIT_REASON, MaskLimits
from vlmkit.types import (
    Box,
    Description,
    Detection,
    Detections,
    Mask,
    OcrBlock,
    OcrResult,
    ParseReport,
    Point,
    Points,
    Provenance,
    Result,
    SkippedItem,
    TimedEvent,
    VideoResult,
)

__all__ = [
    "JsonValue",
    "clean_text",
    "extract_json",
    "parse",
    "parse_description",
    "parse_detections",
    "parse_ocr",
    "parse_points",
    "parse_timestamp",
    "parse_video",
]

_EXCERPT = 120
_MAX_CANDIDATES = 64
_MAX_DEPTH = 64  # no detection answer nests deeper; deeper input is refused, not recursed into


class _TooDeep(Exception):
    pass


# -- cleaning ---------------------------------------------------------------------------------
_CHAT_TOKENS = re.compile(
    r"<turn\|>|<\|turn>(?:model|user|system)?\n?|<end_of_turn>|<start_of_turn>(?:model|user)?\n?"
    r"|<eos>|<bos>|<\|endoftext\|>|<\|im_end\|>|<\|im_start\|>(?:assistant)?\n?|</s>|<\|end\|>"
)
_THINKING_OPEN = re.compile(r"<\|channel>|<think>|<thinking>|<thought>")
_THINKING_CLOSE = {
    "<|channel>": "<channel|>",
    "<think>": "</think>",
    "<thinking>": "</thinking>",
    "<thought>": "</thought>",
}


def _strip_thinking(text: str) -> str:
    """Remove every closed thinking block, in one pass (a regex with ``.*?`` rescans to the end
    of the text for every unclosed opener: quadratic on an answer full of them)."""
    kept: list[str] = []
    position = 0
    unclosed: set[str] = set()  # closers not found after some point are not found later either
    for match in _THINKING_OPEN.finditer(text):
        opener = match.group()
        if match.start() < position or opener in unclosed:
            continue
        closer = _THINKING_CLOSE[opener]
        end = text.find(closer, match.end())
        if end < 0:
            unclosed.add(opener)
            continue
        kept.append(text[position : match.start()])
        position = end + len(closer)
    kept.append(text[position:])
    return "".join(kept)


_UNCLOSED_THINKING = re.compile(r"^\s*(?:<\|channel>|<think>|<thinking>|<thought>)")
_THOUGHT_LINE = re.compile(r"^\s*thought\s*\n")


def clean_text(text: str) -> str:
    """Remove chat-template tokens and thinking text, keeping the answer.

    Handles Gemma 4's ``<|channel>thought ...<channel|>`` blocks (and the bare ``thought``
    line they leave when decoded without special tokens), ``<think>...</think>``, and end-of-turn
    markers such as ``<turn|>`` and ``<end_of_turn>``.
    """
    text = _strip_thinking(text)
    if _UNCLOSED_THINKING.match(text):
        # Thinking that never closed: the answer, if any, follows the last closing-looking
        # marker; without one the whole text is thinking and we keep it for the JSON search.
        text = re.sub(r"^\s*(?:<\|channel>|<think>|<thinking>|<thought>)", "", text)
    text = _CHAT_TOKENS.sub("", text)
    text = _THOUGHT_LINE.sub("", text, count=1)
    return text.strip()


# -- locating and loading JSON ----------------------------------------------------------------
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|"(?:[^"\\]|\\.)*\Z|\'(?:[^\'\\\n]|\\.)*\Z'
    r"|//[^\n]*|/\*.*?\*/|[\[\]{}]",
    re.DOTALL,
)
_CLOSERS = {"[": "]", "{": "}"}


@attrs.frozen(kw_only=True)
class JsonValue:
    """A JSON value found in model text: the value, whether the text was cut off, and where."""

    value: Any
    truncated: bool = False
    repaired: bool = False  # syntax had to be repaired (quotes, commas, comments, ...)
    source: str = ""  # the text span the value was read from
    # What was repaired, by kind (see ParseReport.syntax), and the list items that could not be
    # read at all: each left as None in the list, at the index its SkippedItem names.
    syntax: tuple[str, ...] = ()
    unreadable: tuple[SkippedItem, ...] = ()


def _scan(text: str, start: int) -> tuple[int, bool, int | None, list[str]]:
    """Walk one JSON-ish value from ``text[start]`` (``[`` or ``{``), string-aware.

    Returns ``(end, closed, cut, open_stack)``: ``end`` is the index after the value when it
    closed; otherwise ``cut`` is the index after the last complete element of the outermost
    array still open at the end of the text, and ``open_stack`` the brackets to close there.
    """
    stack: list[tuple[str, int]] = []
    # For each open array (by its position), the index after its last completed container element.
    last_complete: dict[int, int] = {}
    for match in _TOKEN.finditer(text, start):
        token = match.group()
        if token in ("[", "{"):
            stack.append((token, match.start()))
            if len(stack) > _MAX_DEPTH:
                raise _TooDeep
        elif token in ("]", "}"):
            if not stack:
                return match.start(), False, None, []
            opener, _ = stack[-1]
            if _CLOSERS[opener] != token:
                continue  # stray closer inside a malformed value: ignore it
            stack.pop()
            if not stack:
                return match.end(), True, None, []
            parent, parent_pos = stack[-1]
            if parent == "[":
                last_complete[parent_pos] = match.end()
    if not stack:
        return len(text), False, None, []
    # Truncated: cut back to the last complete element of the outermost open array.
    for depth, (opener, pos) in enumerate(stack):
        if opener == "[":
            cut = last_complete.get(pos, pos + 1)
            return len(text), False, cut, [b for b, _ in stack[: depth + 1]]
    return len(text), False, None, [b for b, _ in stack]


# Model dialects of JSON, rewritten to strict JSON in one linear pass (json_repair, which
# handles everything, is pure Python and quadratic on long non-strict text).
_DIALECT = re.compile(
    r'(?P<dq>"(?:[^"\\]|\\.)*")'
    r"|(?P<sq>'(?:[^'\\\n]|\\.)*')"
    r"|(?P<comment>//[^\n]*|/\*.*?\*/)"
    r"|(?P<comma>,(?=\s*[\]}]))"
    r"|:(?P<space>[ \t]*)(?P<bare>[A-Za-z_][^,{}\[\]\"\n]*?)(?=[ \t]*[,}\]\n])"
    r"|(?P<key>[A-Za-z_][A-Za-z0-9_]*)(?=\s*:)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)",
    re.DOTALL,
)
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}
_JSON_WORDS = frozenset({"true", "false", "null", "NaN", "Infinity"})
_ESCAPE_QUOTE = re.compile(r'(\\.)|"', re.DOTALL)
_SPLIT = re.compile(
    r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|//[^\n]*|/\*.*?\*/|[\[\]{},:]', re.DOTALL
)
# json_repair is the fallback for what the dialect pass cannot fix, on pieces of at most
# _REPAIR_PIECE characters and _REPAIR_BUDGET characters per answer (about 2 µs per character).
_REPAIR_PIECE = 16_384
_REPAIR_BUDGET = 131_072
_REPAIR_CALL = 64  # each call costs at least this much of the budget (per-call overhead)


class _BudgetSpent(ParseError):
    pass


def _dialect(span: str) -> tuple[str, set[str]]:
    """``span`` with Python quotes and literals, comments, trailing commas, unquoted keys and
    unquoted (bare-word) values rewritten to strict JSON, and the kinds of repair made."""
    kinds: set[str] = set()

    def rewrite(match: re.Match[str]) -> str:
        group = match.lastgroup
        if group == "dq":
            return match.group()
        if group == "sq":
            kinds.add("python-quotes")
            body = match.group()[1:-1].replace("\\'", "'")
            return '"' + _ESCAPE_QUOTE.sub(lambda m: m.group(1) or '\\"', body) + '"'
        if group == "comment":
            kinds.add("comments")
            return " "
        if group == "comma":
            kinds.add("trailing-commas")
            return ""
        if group == "bare":  # a value after a colon, unquoted: `label: red car`
            bare = match.group("bare")
            if bare in _JSON_WORDS:
                return match.group()
            if bare in _PY_LITERALS:
                kinds.add("python-literals")
                return ":" + match.group("space") + _PY_LITERALS[bare]
            kinds.add("unquoted-values")
            return ":" + match.group("space") + json.dumps(bare.rstrip(), ensure_ascii=False)
        if group == "key":
            kinds.add("unquoted-keys")
            return f'"{match.group()}"'
        word = match.group()
        if word in _PY_LITERALS:
            kinds.add("python-literals")
            return _PY_LITERALS[word]
        return word

    return _DIALECT.sub(rewrite, span), kinds


class _Repair:
    """Loads one JSON-ish span, repairing it piece by piece; what it fixed is in ``kinds``."""

    def __init__(self, budget: int = _REPAIR_BUDGET) -> None:
        self.kinds: set[str] = set()
        self.budget = budget  # characters json_repair may still read (shared by one answer)
        self.unreadable: list[SkippedItem] = []

    def load(self, span: str) -> Any:
        try:
            return json.loads(span)
        except (ValueError, RecursionError):
            pass
        return self._piece(span, depth=0)

    def _strict(self, piece: str) -> tuple[bool, Any]:
        rewritten, kinds = _dialect(piece)
        try:
            value = json.loads(rewritten)
        except (ValueError, RecursionError):
            return False, None
        self.kinds |= kinds
        return True, value

    def _piece(self, piece: str, depth: int) -> Any:
        """One value: the dialect pass; else its elements one by one (a list, or the members
        of an object, two levels deep); else json_repair within budget; else ParseError."""
        ok, value = self._strict(piece)
        if ok:
            return value
        text = piece.strip()
        if depth < 2 and text[:1] in ("[", "{") and len(text) > 2:
            parts = _split_top(text)
            if parts is not None:
                return self._list(parts, depth) if text[0] == "[" else self._object(parts, depth)
        return self._json_repair(text)

    def _list(self, parts: list[str], depth: int) -> list[Any]:
        values: list[Any] = []
        for part in parts:
            try:
                values.append(self._piece(part, depth + 1))
            except _BudgetSpent as err:
                if depth > 0:
                    raise
                rest = len(parts) - len(values)
                reason = f"{err.args[0]}; this item and the {rest - 1:,} after it were not read"
                self.unreadable.append(
                    SkippedItem(index=len(values), reason=reason, excerpt=_excerpt(part))
                )
                values.append(None)
                break
            except ParseError as err:
                if depth > 0:
                    raise
                self.unreadable.append(
                    SkippedItem(index=len(values), reason=err.args[0], excerpt=_excerpt(part))
                )
                values.append(None)
        return values

    def _object(self, parts: list[str], depth: int) -> dict[str, Any]:
        if depth > 0:  # an item: small, json_repair reads it whole
            return self._json_repair("{" + ",".join(parts) + "}")
        members: dict[str, Any] = {}
        for part in parts:
            key, colon, rest = _split_member(part)
            if not colon:
                continue
            ok, name = self._strict(key)
            if not ok or not isinstance(name, str):
                name = key.strip().strip("'\"")
                self.kinds.add("unquoted-keys")
            members[name] = self._piece(rest, depth)  # a wrapper's list stays at this depth
        if not members:
            raise ParseError("could not repair JSON", raw_text="", reason="invalid-json")
        return members

    def _json_repair(self, text: str) -> Any:
        cost = max(len(text), _REPAIR_CALL)
        if cost > self.budget:
            raise _BudgetSpent(
                f"malformed JSON beyond what one answer may have repaired ({_REPAIR_BUDGET:,} "
                "characters)",
                reason="invalid-json",
            )
        if len(text) > _REPAIR_PIECE:
            raise ParseError(
                f"could not read {len(text):,} characters of malformed JSON (the repairer takes "
                f"pieces of at most {_REPAIR_PIECE:,})",
                reason="invalid-json",
            )
        self.budget -= cost
        import json_repair

        try:
            value = json_repair.loads(text, skip_json_loads=True)
        except Exception as err:  # json_repair is defensive but untrusted input can surprise it
            raise ParseError(f"could not repair JSON: {err}", reason="invalid-json") from err
        if value == "" and text not in ('""', "''"):
            raise ParseError("could not repair JSON", reason="invalid-json")
        self.kinds.add("other")
        return value


def _split_top(text: str) -> list[str] | None:
    """The elements (or members) of the container ``text`` at its top level, split at commas
    outside strings and nested brackets; None when its brackets do not balance."""
    parts: list[str] = []
    depth = 0
    start = 1
    for match in _SPLIT.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
        elif token in ("]", "}"):
            depth -= 1
            if depth == 0:
                parts.append(text[start : match.start()])
                break
        elif token == "," and depth == 1:
            parts.append(text[start : match.start()])
            start = match.end()
    else:
        return None
    return [p for p in parts if p.strip()]


def _split_member(part: str) -> tuple[str, str, str]:
    """``key: value`` split at the first colon outside strings."""
    for match in _SPLIT.finditer(part):
        token = match.group()
        if token == ":":
            return part[: match.start()], ":", part[match.end() :]
        if token in ("[", "{"):
            break
    return part, "", ""


def _candidates(text: str) -> list[int]:
    """Start offsets of plausible JSON values: inside fences first, then in the open text."""
    starts: list[int] = []
    for fence in _FENCE.finditer(text):
        body_start = fence.start(2)
        body = fence.group(2)
        offset = len(body) - len(body.lstrip())
        if body[offset : offset + 1] in ("[", "{"):
            starts.append(body_start + offset)
    for match in re.finditer(r"[\[{]", text):
        if match.start() not in starts:
            starts.append(match.start())
        if len(starts) >= _MAX_CANDIDATES:
            break
    return starts


_WHOLE_FENCE = re.compile(r"\s*```[A-Za-z0-9_+-]*[ \t]*\n(.*?)\n?[ \t]*```\s*", re.DOTALL)


def _whole_json(text: str) -> Any:
    """The text (or its single fence) as strict JSON, or ``None``."""
    match = _WHOLE_FENCE.fullmatch(text)
    body = (match.group(1) if match else text).strip()
    if body[:1] not in ("[", "{"):
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def extract_json(text: str, *, accept: Any = None) -> JsonValue:
    """Find and load the JSON value in model text.

    Tries fenced blocks, then every ``[``/``{`` in the text, and returns the first value that
    ``accept(value)`` approves (any list or object by default). A value cut off by the token
    limit is closed after its last complete list element and flagged ``truncated``.
    Raises :class:`ParseError` when no acceptable value exists.
    """
    cleaned = clean_text(text)
    fast = _whole_json(cleaned)  # the common case: one clean value, maybe fenced
    if isinstance(fast, (list, dict)) and (accept is None or accept(fast)):
        return JsonValue(value=fast, source=cleaned)
    errors: list[str] = []
    tried: list[tuple[int, int]] = []  # spans already read: candidates inside them are skipped
    work = 0  # characters scanned and read; bounded so that nested junk stays linear
    budget = _REPAIR_BUDGET  # what json_repair may read, for all candidates together
    for start in _candidates(cleaned):
        if any(lo < start < hi for lo, hi in tried):
            continue
        if work > 2 * len(cleaned) + 65_536:
            errors.append("work-limit")
            break
        try:
            end, closed, cut, open_stack = _scan(cleaned, start)
        except _TooDeep:
            raise ParseError(
                f"the answer nests brackets more than {_MAX_DEPTH} deep: {_excerpt(text)!r}",
                raw_text=text,
                reason="too-deep",
            ) from None
        work += end - start
        truncated = False
        if closed:
            span = cleaned[start:end]
        elif cut is not None:
            span = cleaned[start:cut] + "".join(_CLOSERS[b] for b in reversed(open_stack))
            truncated = True
        else:
            span = cleaned[start:end]
            truncated = bool(open_stack)
        repair = _Repair(budget)
        try:
            value = repair.load(span)
        except ParseError as err:
            errors.append(err.reason)
            continue
        finally:
            budget = repair.budget
        tried.append((start, end))
        value = _acceptable(value, accept)
        if value is None:
            continue
        return JsonValue(
            value=value,
            truncated=truncated,
            repaired=bool(repair.kinds or repair.unreadable),
            source=span,
            syntax=tuple(sorted(repair.kinds)),
            unreadable=tuple(repair.unreadable),
        )
    reason = "no JSON value found" if not errors else "no usable JSON value found"
    raise ParseError(
        f"{reason} in the model's answer: {_excerpt(text)!r}", raw_text=text, reason="no-json"
    )


def _acceptable(value: Any, accept: Any, limit: int = 10_000) -> Any:
    """The first list or object in ``value`` (itself, then breadth-first inside it) that
    ``accept`` approves, or None; looks at no more than ``limit`` values."""
    queue = [value]
    for candidate in queue:
        if isinstance(candidate, (list, dict)):
            if accept is None or accept(candidate):
                return candidate
            if len(queue) < limit:
                children = candidate.values() if isinstance(candidate, dict) else candidate
                queue.extend(c for c in children if isinstance(c, (list, dict)))
    return None


def _excerpt(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


# -- items ------------------------------------------------------------------------------------
_LIST_KEYS = (
    "boxes",
    "objects",
    "detections",
    "items",
    "results",
    "annotations",
    "masks",
    "points",
    "predictions",
    "data",
    "text_blocks",
    "blocks",
    "events",
)
_BOX_KEYS = ("box_2d", "box", "bbox", "bbox_2d", "bounding_box", "box2d", "boundingBox")
_LABEL_KEYS = ("label", "name", "class", "category", "object", "class_name", "text")
_SCORE_KEYS = ("confidence", "score", "probability", "conf")
_MASK_KEYS = ("mask", "polygon", "segmentation", "mask_polygon")
_POINT_KEYS = ("point", "point_2d", "keypoint")
_ITEM_KEYS = set(_BOX_KEYS) | set(_MASK_KEYS) | set(_POINT_KEYS)


def _looks_like_item(value: Any) -> bool:
    return isinstance(value, Mapping) and any(k in value for k in _ITEM_KEYS)


def _items_of(value: Any) -> list[Any] | None:
    """The list of items in a bare list, a wrapping object, or a single item object."""
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        if _looks_like_item(value):
            return [value]
        for key in _LIST_KEYS:
            if isinstance(value.get(key), list):
                return value[key]
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return None


def _accept_items(value: Any) -> bool:
    items = _items_of(value)
    if items is None:
        return False
    return not items or any(isinstance(item, Mapping) for item in items)


class _ItemError(ValueError):
    pass


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise _ItemError(f"expected a number, got {value!r}")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except OverflowError:  # an integer too large for a float (>= 10**309)
        raise _ItemError(f"number out of range: {_excerpt(value)}") from None
    except (TypeError, ValueError):
        raise _ItemError(f"expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise _ItemError(f"expected a finite number, got {value!r}")
    return number


def _numbers(value: Any, count: int, what: str) -> list[float]:
    if isinstance(value, str):
        parts = [p for p in re.split(r"[\s,;\[\]()]+", value) if p]
        value = parts
    if isinstance(value, Mapping):
        keys = {k.lower(): v for k, v in value.items()}
        orders = (
            ("ymin", "xmin", "ymax", "xmax"),
            ("y_min", "x_min", "y_max", "x_max"),
            ("y0", "x0", "y1", "x1"),
            ("top", "left", "bottom", "right"),
        )
        if count == 4:
            for names in orders:
                if all(n in keys for n in names):
                    return [_number(keys[n]) for n in names]
        if count == 2 and "y" in keys and "x" in keys:
            return [_number(keys["y"]), _number(keys["x"])]
        raise _ItemError(f"{what} object has unexpected keys {sorted(keys)}")
    if not isinstance(value, (list, tuple)):
        raise _ItemError(f"{what} must be a list of {count} numbers, got {_excerpt(value)}")
    if len(value) == 1 and isinstance(value[0], (list, tuple)):
        value = value[0]
    if len(value) != count:
        raise _ItemError(f"{what} must have {count} numbers, got {len(value)}")
    return [_number(v) for v in value]


def _first(item: Mapping[str, Any], keys: Sequence[str]) -> tuple[str | None, Any]:
    for key in keys:
        if key in item:
            return key, item[key]
    return None, None


def _label_of(item: Mapping[str, Any], keys: Sequence[str] = _LABEL_KEYS) -> tuple[str, str | None]:
    key, value = _first(item, keys)
    if value is None:
        return "", key
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False), key
    return str(value).strip(), key


def _score_of(item: Mapping[str, Any]) -> tuple[float | None, str | None]:
    key, value = _first(item, _SCORE_KEYS)
    if value is None:
        return None, key
    try:
        score = _number(value.rstrip("%") if isinstance(value, str) else value)
    except _ItemError:
        return None, None  # an unusable score stays in attributes
    if isinstance(value, str) and value.strip().endswith("%"):
        score /= 100
    return score, key


def _provenance_for(
    provenance: Provenance | None, raw_text: str, convention: Convention, transform: Transform
) -> Provenance | None:
    if provenance is None:
        return None
    changes: dict[str, Any] = {}
    if provenance.raw_text is None:
        changes["raw_text"] = raw_text
    if provenance.convention is None:
        changes["convention"] = convention.name
    if provenance.transform is None:
        changes["transform"] = transform
    return attrs.evolve(provenance, **changes) if changes else provenance


def _resolve_transform(image_size: Sequence[int] | None, transform: Transform | None) -> Transform:
    if transform is not None:
        if not isinstance(transform, Transform):
            raise ConfigError(f"transform must be a vlmkit.Transform, got {transform!r}")
        if image_size is not None and _image_size(image_size) != transform.original_size:
            raise ConfigError(
                f"image_size {tuple(image_size)} does not match the transform's original size "
                f"{transform.original_size}"
            )
        return transform
    if image_size is None:
        raise ConfigError("image_size=(width, height) of the original image is required")
    return Transform.identity(_image_size(image_size))


def _image_size(value: Any) -> tuple[int, int]:
    try:
        width, height = value
        if isinstance(width, bool) or isinstance(height, bool):
            raise TypeError
        if int(width) != width or int(height) != height or width <= 0 or height <= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(
            f"image_size must be (width, height) as two positive integers, got {value!r}"
        ) from None
    return int(width), int(height)


# -- PaliGemma <loc> tokens -------------------------------------------------------------------
_LOC_ITEM = re.compile(r"((?:<loc\d{4}>\s*){4})([^;<]*)")


def _loc_items(text: str) -> list[dict[str, Any]]:
    items = []
    for match in _LOC_ITEM.finditer(text):
        values = [int(v) for v in re.findall(r"<loc(\d{4})>", match.group(1))]
        items.append({"box_2d": values, "label": match.group(2).strip()})
    return items


# -- detections -------------------------------------------------------------------------------
def parse_detections(
    text: str,
    *,
    image_size: Sequence[int] | None = None,
    convention: str | Convention = "yxyx-1000",
    transform: Transform | None = None,
    masks: bool = True,
    threshold: int = 127,
    keep_probability: bool = False,
    provenance: Provenance | None = None,
    mask_limits: MaskLimits | None = None,
) -> Detections:
    """Parse a detection or segmentation answer into :class:`~vlmkit.Detections`.

    Boxes come back as ``xyxy`` pixels of the original image (``image_size``, or the
    ``transform`` recorded when the image was resized or padded before sending). Masks — base64
    PNG probability crops (Gemini 2.5) or polygons on the 0–1000 grid (Gemini 3.x) — are placed
    box-local and binarized at ``threshold``. Repairs and skipped items are in ``.report``.

    ``mask_limits`` bounds what the answer's masks may cost (default
    :class:`~vlmkit.masks.MaskLimits`: 134 M pixels, 100,000 polygon vertices); masks beyond
    it are dropped, their detections kept, and counted in ``report.masks_dropped``.
    """
    if mask_limits is not None and not isinstance(mask_limits, MaskLimits):
        raise ConfigError(f"mask_limits must be a vlmkit.masks.MaskLimits, got {mask_limits!r}")
    conv = Convention.parse(convention)
    tf = _resolve_transform(image_size, transform)
    if conv.tokens:
        cleaned = clean_text(text)
        items: list[Any] = _loc_items(cleaned)
        if not items and cleaned and "<loc" not in cleaned:
            raise ParseError(
                f"no <loc> boxes in the answer: {_excerpt(text)!r}", raw_text=text, reason="no-json"
            )
        found = JsonValue(value=items, truncated=False)
    else:
        found = extract_json(text, accept=_accept_items)
        items = _items_of(found.value) or []
    return _build_detections(
        text,
        items,
        found,
        conv,
        tf,
        masks,
        threshold,
        keep_probability,
        provenance,
        mask_limits,
    )


def _build_detections(
    text: str,
    items: list[Any],
    found: JsonValue,
    conv: Convention,
    tf: Transform,
    want_masks: bool,
    threshold: int,
    keep_probability: bool,
    provenance: Provenance | None,
    mask_limits: MaskLimits | None = None,
) -> Detections:
    truncated = found.truncated
    skipped: list[SkippedItem] = list(found.unreadable)
    unreadable = {s.index for s in found.unreadable}
    rows: list[list[float]] = []
    extras: list[tuple[int, Mapping[str, Any], str, float | None, dict[str, Any]]] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            if index not in unreadable:
                reason = "not an object"
                skipped.append(SkippedItem(index=index, reason=reason, excerpt=_excerpt(item)))
            continue
        try:
            box_key, box_value = _first(item, _BOX_KEYS)
            if box_key is None:
                raise _ItemError("no box (expected a 'box_2d' key)")
            row = _numbers(box_value, 4, box_key)
        except _ItemError as err:
            skipped.append(SkippedItem(index=index, reason=str(err), excerpt=_excerpt(item)))
            continue
        label, label_key = _label_of(item)
        score, score_key = _score_of(item)
        used = {box_key, label_key, score_key, *_MASK_KEYS}
        attributes = {k: v for k, v in item.items() if k not in used}
        rows.append(row)
        extras.append((index, item, label, score, attributes))

    if items and not rows:
        raise ParseError(
            f"none of the {len(items)} items in the answer could be used "
            f"({skipped[0].reason if skipped else 'unknown reason'})",
            raw_text=text,
            reason="no-usable-items",
        )
    if truncated and not rows:
        raise ParseError(
            "the answer was cut off before its first complete item",
            raw_text=text,
            reason="truncated",
        )

    pixels, repairs = boxes_to_pixels(np.asarray(rows, dtype=np.float64).reshape(-1, 4), conv, tf)
    # Boxes on the grid can still fall in padding outside the original image: clip to it.
    width, height = tf.original_size
    bounds = np.array([width, height, width, height], dtype=np.float64)
    clipped = np.minimum(np.maximum(pixels, 0.0), bounds)  # np.clip, without its wrapper
    outside = (clipped != pixels).any(axis=1) & repairs.keep
    keep = repairs.keep & (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    degenerate = int(np.count_nonzero(repairs.keep & ~keep)) + repairs.degenerate

    detections: list[Detection] = []
    masks_resized = masks_invalid = masks_dropped = 0
    budget = _MaskBudget(mask_limits or MaskLimits())
    # Python floats and bools once for all rows: indexing an array per box is slower
    for kept, corners, (_, item, label, score, attributes) in zip(
        keep.tolist(), clipped.tolist(), extras, strict=True
    ):
        if not kept:
            continue  # counted in ``degenerate``, once
        x0, y0, x1, y1 = corners
        box = Box(x0=x0, y0=y0, x1=x1, y1=y1)
        mask = None
        if want_masks:
            _, mask_value = _first(item, _MASK_KEYS)
            if mask_value is not None and mask_value != "":
                try:
                    mask, resized = _mask_for(
                        mask_value, box, conv, tf, threshold, keep_probability, budget
                    )
                    masks_resized += int(resized)
                except ParseError as err:
                    if err.reason == LIMIT_REASON:
                        masks_dropped += 1
                    else:
                        masks_invalid += 1
                    attributes = {**attributes, "mask_error": err.reason}
        detections.append(
            Detection(box=box, label=label, score=score, mask=mask, attributes=attributes)
        )

    report = ParseReport(
        swapped=repairs.swapped,
        clamped=repairs.clamped + int(np.count_nonzero(outside)),
        degenerate=degenerate,
        masks_resized=masks_resized,
        masks_invalid=masks_invalid,
        masks_dropped=masks_dropped,
        skipped=sorted(skipped, key=lambda item: item.index),
        truncated=truncated,
        syntax=found.syntax,
    )
    return Detections(
        items=detections,
        image_size=tf.original_size,
        report=report,
        provenance=_provenance_for(provenance, text, conv, tf),
    )


class _MaskBudget:
    """What is left of one answer's :class:`~vlmkit.masks.MaskLimits` (private, per call)."""

    def __init__(self, limits: MaskLimits) -> None:
        self.pixels = limits.pixels
        self.vertices = limits.vertices


def _mask_for(
    value: Any,
    box: Box,
    conv: Convention,
    tf: Transform,
    threshold: int,
    keep_probability: bool,
    budget: _MaskBudget,
) -> tuple[Mask, bool]:
    """One item's mask, charged to the answer's budget; a ParseError for anything unusable."""
    try:
        return _mask_within(value, box, conv, tf, threshold, keep_probability, budget)
    except ParseError:
        raise
    except MemoryError:
        raise ParseError("mask too large for the memory left", reason="mask-memory") from None
    except (ValueError, ArithmeticError) as err:
        raise ParseError(f"unusable mask ({err})", reason="mask-format") from None
    except Exception as err:  # cv2.error, the one other exception mask work can raise
        if type(err).__module__.split(".")[0] != "cv2":
            raise
        raise ParseError(f"OpenCV could not place the mask ({err})", reason="mask-opencv") from None


def _mask_within(
    value: Any,
    box: Box,
    conv: Convention,
    tf: Transform,
    threshold: int,
    keep_probability: bool,
    budget: _MaskBudget,
) -> tuple[Mask, bool]:
    from vlmkit import masks as mask_ops

    if isinstance(value, str):
        probability = mask_ops.decode_mask_image(value, max_pixels=budget.pixels)
        budget.pixels -= probability.size
        placed = mask_ops.place_probability_mask(
            probability,
            box.xyxy,
            threshold=threshold,
            keep_probability=keep_probability,
            image_size=tf.original_size,
            max_pixels=budget.pixels,
        )
        budget.pixels -= placed.mask.data.size
        return placed
    if isinstance(value, (list, tuple)):
        polygons = _polygons(value)
        vertices = sum(len(p) for p in polygons)
        if vertices > budget.vertices:
            raise ParseError(
                f"mask dropped: {vertices:,} polygon vertices, over the {budget.vertices:,} "
                "left (raise vlmkit.masks.MaskLimits.vertices to keep more masks)",
                reason=mask_ops.LIMIT_REASON,
            )
        budget.vertices -= vertices
        scale = conv.scale if conv.scale is not None else None
        polygon_convention = Convention(order="xyxy", scale=scale)
        pixel_polygons = []
        for polygon in polygons:
            xy, _ = points_to_pixels(polygon, polygon_convention, tf)
            pixel_polygons.append(xy)
        mask, cost = mask_ops._polygon_mask(pixel_polygons, tf.original_size, budget.pixels)
        budget.pixels -= cost
        return mask, False
    raise ParseError(f"unsupported mask value {_excerpt(value)}", reason="mask-format")


def _polygons(value: Any) -> list[np.ndarray]:
    """One polygon ``[[x, y], ...]`` or several ``[[[x, y], ...], ...]`` as (K, 2) arrays."""
    try:
        array = np.asarray(value, dtype=np.float64)
        if array.ndim == 2 and array.shape[1] == 2:
            return [array]
    except (TypeError, ValueError, OverflowError):
        pass
    polygons = []
    for part in value:
        try:
            array = np.asarray(part, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise ParseError(
                "polygon points must be numbers within the float range", reason="mask-format"
            ) from None
        if array.ndim == 1 and array.size % 2 == 0 and array.size >= 6:
            array = array.reshape(-1, 2)  # flat [x1, y1, x2, y2, ...]
        if array.ndim != 2 or array.shape[1] != 2:
            raise ParseError("polygon must be a list of [x, y] points", reason="mask-format")
        polygons.append(array)
    if not polygons:
        raise ParseError("empty polygon", reason="mask-format")
    return polygons


# -- points -----------------------------------------------------------------------------------
def _point_row(value: Any, key: str, order: str) -> list[float]:
    """One point's two numbers in the convention's ``order``; ``{"x": .., "y": ..}`` objects
    are read by name, so their key order does not matter."""
    if isinstance(value, Mapping):
        keys = {str(k).lower(): v for k, v in value.items()}
        if "x" in keys and "y" in keys:
            x, y = _number(keys["x"]), _number(keys["y"])
            return [y, x] if order == "yxyx" else [x, y]
        raise _ItemError(f"{key} object has unexpected keys {sorted(keys)}")
    return _numbers(value, 2, key)


def parse_points(
    text: str,
    *,
    image_size: Sequence[int] | None = None,
    convention: str | Convention = "yxyx-1000",
    transform: Transform | None = None,
    provenance: Provenance | None = None,
) -> Points:
    """Parse a pointing answer (``[{"point": [y, x], "label": ...}]`` on 0–1000, the format
    Google documents for Gemini) into :class:`~vlmkit.Points` in original-image pixels.

    The same layer as boxes: the bounded JSON pass (fences, prose, truncated lists, dialect
    repairs), the backend's ``convention``, the ``transform`` of a resized or padded image, and
    a clamp into the image. An item without a usable point (missing, NaN, too many numbers, a
    number past the float range) is skipped alone and listed in ``report.skipped``; extra keys
    are kept in ``Point.attributes``.
    """
    conv = Convention.parse(convention)
    tf = _resolve_transform(image_size, transform)
    found = extract_json(text, accept=_accept_items)
    items = _items_of(found.value) or []
    skipped: list[SkippedItem] = list(found.unreadable)
    unreadable = {s.index for s in found.unreadable}
    rows: list[list[float]] = []
    extras: list[tuple[str, float | None, dict[str, Any]]] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            if index not in unreadable:
                reason = "not an object"
                skipped.append(SkippedItem(index=index, reason=reason, excerpt=_excerpt(item)))
            continue
        try:
            key, value = _first(item, _POINT_KEYS)
            if key is None:
                raise _ItemError("no point (expected a 'point' key)")
            rows.append(_point_row(value, key, conv.order))
        except _ItemError as err:
            skipped.append(SkippedItem(index=index, reason=str(err), excerpt=_excerpt(item)))
            continue
        label, label_key = _label_of(item)
        score, score_key = _score_of(item)
        used = {key, label_key, score_key}
        extras.append((label, score, {k: v for k, v in item.items() if k not in used}))
    if items and not rows:
        raise ParseError(
            f"none of the {len(items)} items in the answer is a usable point "
            f"({skipped[0].reason if skipped else 'unknown reason'})",
            raw_text=text,
            reason="no-usable-items",
        )
    if found.truncated and not rows:
        raise ParseError(
            "the answer was cut off before its first complete point",
            raw_text=text,
            reason="truncated",
        )
    point_convention = Convention(order=conv.order, scale=conv.scale)
    xy, clamped = points_to_pixels(np.asarray(rows).reshape(-1, 2), point_convention, tf)
    width, height = tf.original_size
    clipped = np.clip(xy, 0.0, [width, height])
    clamped += int(np.any(clipped != xy, axis=1).sum())
    points = [
        Point(x=x, y=y, label=label, score=score, attributes=attributes)
        for (x, y), (label, score, attributes) in zip(clipped, extras, strict=True)
    ]
    return Points(
        items=points,
        image_size=tf.original_size,
        report=ParseReport(
            clamped=clamped,
            skipped=sorted(skipped, key=lambda item: item.index),
            truncated=found.truncated,
            syntax=found.syntax,
        ),
        provenance=_provenance_for(provenance, text, conv, tf),
    )


# -- text answers -----------------------------------------------------------------------------
def _strip_fence(text: str) -> str:
    match = re.fullmatch(r"\s*```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)(?:```)?\s*", text, re.DOTALL)
    return match.group(1).strip() if match else text.strip()


def parse_description(text: str, *, provenance: Provenance | None = None) -> Description:
    """A free-text answer with chat tokens and thinking removed."""
    cleaned = clean_text(text)
    if provenance is not None and provenance.raw_text is None:
        provenance = attrs.evolve(provenance, raw_text=text)
    return Description(text=cleaned, provenance=provenance)


_TEXT_KEYS = ("text", "content", "transcription", "value", "label")


def parse_ocr(
    text: str,
    *,
    image_size: Sequence[int] | None = None,
    convention: str | Convention = "yxyx-1000",
    transform: Transform | None = None,
    provenance: Provenance | None = None,
) -> OcrResult:
    """Parse an OCR answer: plain text, or a JSON list of ``{"text", "box_2d"}`` blocks.

    With blocks, ``text`` is their texts joined by newlines and each block keeps its box in
    original-image pixels (when ``image_size``/``transform`` is known).
    """
    cleaned = clean_text(text)
    if provenance is not None and provenance.raw_text is None:
        provenance = attrs.evolve(provenance, raw_text=text)
    stripped = _strip_fence(cleaned)
    if stripped[:1] in ("[", "{") or cleaned.lstrip().startswith("```json"):
        try:
            found = extract_json(cleaned, accept=_accept_blocks)
        except ParseError:
            found = None
        if found is not None:
            return _ocr_blocks(text, found, image_size, convention, transform, provenance)
    return OcrResult(
        text=stripped,
        blocks=(OcrBlock(text=stripped),) if stripped else (),
        provenance=provenance,
        image_size=tuple(image_size) if image_size else None,  # type: ignore[arg-type]
    )


def _accept_blocks(value: Any) -> bool:
    items = _items_of(value)
    return bool(items) and any(
        isinstance(i, Mapping) and any(k in i for k in _TEXT_KEYS)
        for i in items  # type: ignore[union-attr]
    )


def _ocr_blocks(
    text: str,
    found: JsonValue,
    image_size: Sequence[int] | None,
    convention: str | Convention,
    transform: Transform | None,
    provenance: Provenance | None,
) -> OcrResult:
    items = _items_of(found.value) or []
    conv = Convention.parse(convention)
    tf = (
        None
        if image_size is None and transform is None
        else _resolve_transform(image_size, transform)
    )
    blocks: list[OcrBlock] = []
    skipped: list[SkippedItem] = list(found.unreadable)
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            if isinstance(item, str):
                blocks.append(OcrBlock(text=item))
            continue
        block_text, _ = _label_of(item, _TEXT_KEYS)
        box = None
        box_key, box_value = _first(item, _BOX_KEYS)
        if box_key is not None and tf is not None:
            try:
                row = _numbers(box_value, 4, box_key)
                pixels, repairs = boxes_to_pixels([row], conv, tf)
                if repairs.keep[0]:
                    width, height = tf.original_size
                    box = Box.from_xyxy(np.clip(pixels[0], 0, [width, height, width, height]))
            except _ItemError as err:
                skipped.append(SkippedItem(index=index, reason=str(err), excerpt=_excerpt(item)))
        language = item.get("language") or item.get("lang")
        blocks.append(
            OcrBlock(text=block_text, box=box, language=str(language) if language else None)
        )
    full = "\n".join(b.text for b in blocks if b.text)
    return OcrResult(
        text=full,
        blocks=blocks,
        provenance=provenance,
        report=ParseReport(
            skipped=sorted(skipped, key=lambda item: item.index),
            truncated=found.truncated,
            syntax=found.syntax,
        ),
        image_size=tf.original_size if tf else None,
    )


# -- video ------------------------------------------------------------------------------------
_TS = r"(?:\d{1,2}:)?\d{1,3}:\d{2}(?:[.,]\d{1,3})?"
_TIMESTAMP = re.compile(rf"(?<![\d:.]){_TS}(?!\d|:\d)")
_RANGE = re.compile(
    rf"(?<![\d:.])(?P<start>{_TS})\s*(?:-|–|—|to|until|~)\s*(?P<end>{_TS})(?!\d|:\d)", re.IGNORECASE
)
_START_KEYS = ("start", "start_time", "begin", "from", "timestamp", "time", "start_timestamp")
_END_KEYS = ("end", "end_time", "to", "stop", "end_timestamp")
_EVENT_TEXT_KEYS = (
    "description",
    "text",
    "event",
    "caption",
    "summary",
    "title",
    "label",
    "chapter",
    "content",
)


def parse_timestamp(value: str | float | int) -> float:
    """``"MM:SS"``, ``"H:MM:SS"`` (optionally with a fraction), or plain seconds → seconds."""
    if isinstance(value, bool):
        raise ParseError(f"not a timestamp: {value!r}", reason="timestamp")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # an integer too large for a float
            seconds = math.inf
        if not math.isfinite(seconds) or seconds < 0:
            raise ParseError(f"not a timestamp: {_excerpt(value)}", reason="timestamp")
        return seconds
    text = str(value).strip().strip("[]()").strip().replace(",", ".")
    match = re.fullmatch(r"(?:(\d+):)?(\d+):(\d{1,2}(?:\.\d+)?)", text)
    if match:
        # float() of digit strings never overflows (it gives inf): no int arithmetic here.
        hours = float(match.group(1) or 0)
        minutes = float(match.group(2))
        seconds = float(match.group(3))
        if seconds >= 60 or (match.group(1) and minutes >= 60):
            raise ParseError(f"not a valid timestamp: {_excerpt(text)}", reason="timestamp")
        total = hours * 3600 + minutes * 60 + seconds
        if not math.isfinite(total):
            raise ParseError(f"timestamp out of range: {_excerpt(text)}", reason="timestamp")
        return total
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(?:s|sec|secs|seconds)?", text)
    if match and math.isfinite(float(match.group(1))):
        return float(match.group(1))
    raise ParseError(f"not a timestamp: {_excerpt(text)}", reason="timestamp")


def _event_from_mapping(item: Mapping[str, Any]) -> TimedEvent | None:
    _, start_value = _first(item, _START_KEYS)
    if start_value is None:
        return None
    _, end_value = _first(item, _END_KEYS)
    if isinstance(start_value, str):
        ranged = _RANGE.search(start_value)
        if ranged and end_value is None:
            start_value, end_value = ranged["start"], ranged["end"]
    start = parse_timestamp(start_value)
    end = parse_timestamp(end_value) if end_value not in (None, "") else None
    if end is not None and end < start:
        start, end = end, start
    _, label_value = _first(item, ("label",))
    description, _ = _label_of(item, _EVENT_TEXT_KEYS)
    return TimedEvent(
        start=start,
        end=None if end == start else end,
        text=description,
        label=str(label_value) if label_value is not None else None,
    )


def parse_video(
    text: str, *, provenance: Provenance | None = None, duration_s: float | None = None
) -> VideoResult:
    """Parse a video answer into timed events.

    Accepts a JSON list of ``{"start": "mm:ss", "end": "mm:ss", "description": ...}`` objects,
    or text whose lines carry ``MM:SS``/``H:MM:SS`` timestamps or ranges (``00:05 - 00:12``).
    Events without an end are instants (``end=None``). Lines without a timestamp stay in
    ``text`` only.
    """
    cleaned = clean_text(text)
    if provenance is not None and provenance.raw_text is None:
        provenance = attrs.evolve(provenance, raw_text=text)
    events: list[TimedEvent] = []
    skipped: list[SkippedItem] = []
    truncated = False
    syntax: tuple[str, ...] = ()
    stripped = _strip_fence(cleaned)
    if stripped[:1] in ("[", "{"):
        try:
            found = extract_json(cleaned)
        except ParseError:
            found = None
        if found is not None:
            truncated = found.truncated
            syntax = found.syntax
            skipped.extend(found.unreadable)
            for index, item in enumerate(_items_of(found.value) or []):
                if not isinstance(item, Mapping):
                    continue
                try:
                    event = _event_from_mapping(item)
                except (ParseError, ValueError) as err:
                    skipped.append(
                        SkippedItem(index=index, reason=str(err), excerpt=_excerpt(item))
                    )
                    continue
                if event is not None:
                    events.append(event)
    if not events:
        events = _events_from_lines(stripped, skipped)
    if duration_s is not None:
        events = [e for e in events if e.start <= duration_s + 1]
    return VideoResult(
        text=stripped,
        events=events,
        provenance=provenance,
        report=ParseReport(skipped=skipped, truncated=truncated, syntax=syntax),
        duration_s=duration_s,
    )


_EVENT_LEAD = " \t\r\f\v\u00a0-*•#>[]():|"
_EVENT_TRAIL = " \t\r\f\v\u00a0[]():|,-"


def _events_from_lines(text: str, skipped: list[SkippedItem]) -> list[TimedEvent]:
    events: list[TimedEvent] = []
    for index, line in enumerate(text.splitlines()):
        ranged = _RANGE.search(line)
        try:
            if ranged:
                start = parse_timestamp(ranged["start"])
                end: float | None = parse_timestamp(ranged["end"])
                rest = line[: ranged.start()] + line[ranged.end() :]
            else:
                single = _TIMESTAMP.search(line)
                if not single:
                    continue
                start, end = parse_timestamp(single.group()), None
                rest = line[: single.start()] + line[single.end() :]
        except ParseError as err:
            skipped.append(SkippedItem(index=index, reason=err.reason, excerpt=line[:_EXCERPT]))
            continue
        if end is not None and end < start:
            start, end = end, start
        # str.strip, not a regex: ``[...]+$`` rescans every run of these characters (quadratic).
        description = rest.lstrip(_EVENT_LEAD).rstrip(_EVENT_TRAIL)
        description = re.sub(r"\*\*|__", "", description).strip()
        events.append(TimedEvent(start=start, end=None if end == start else end, text=description))
    return events


# -- the public entry point -------------------------------------------------------------------
_PARSE_TASKS = ("detect", "segment", "points", "ocr", "describe", "video")


@overload
def parse(
    text: str,
    *,
    task: Literal["detect", "segment"] = "detect",
    image_size: Sequence[int] | None = None,
    convention: str | Convention = "yxyx-1000",
    transform: Transform | None = None,
    threshold: int = 127,
    provenance: Provenance | None = None,
    mask_limits: MaskLimits | None = None,
) -> Detections: ...
@overload
def parse(
    text: str,
    *,
    task: Literal["points"],
    image_size: Sequence[int] | None = None,
    convention: str | Convention = "yxyx-1000",
    transform: Transform | None = None,
    threshold: int = 127,
    provenance: Provenance | None = None,
    mask_limits: MaskLimits | None = None,
) -> Points: ...
@overload
def parse(
    text: str,
    *,
    task: Literal["ocr"],
    image_size: Sequence[int] | None = None,
    convention: str | Convention = "yxyx-1000",
    transform: Transform | None = None,
    threshold: int = 127,
    provenance: Provenance | None = None,
    mask_limits: MaskLimits | None = None,
) -> OcrResult: ...
@overload
def parse(
    text: str,
    *,
    task: Literal["describe"],
    image_size: Sequence[int] | None = None,
    convention: str | Convention = "yxyx-1000",
    transform: Transform | None = None,
    threshold: int = 127,
    provenance: Provenance | None = None,
    mask_limits: MaskLimits | None = None,
) -> Description: ...
@overload
def parse(
    text: str,
    *,
    task: Literal["video"],
    image_size: Sequence[int] | None = None,
    convention: str | Convention = "yxyx-1000",
    transform: Transform | None = None,
    threshold: int = 127,
    provenance: Provenance | None = None,
    mask_limits: MaskLimits | None = None,
) -> VideoResult: ...
@overload
def parse(
    text: str,
    *,
    task: str,
    image_size: Sequence[int] | None = None,
    convention: str | Convention = "yxyx-1000",
    transform: Transform | None = None,
    threshold: int = 127,
    provenance: Provenance | None = None,
    mask_limits: MaskLimits | None = None,
) -> Result: ...


def parse(
    text: str,
    *,
    task: str = "detect",
    image_size: Sequence[int] | None = None,
    convention: str | Convention = "yxyx-1000",
    transform: Transform | None = None,
    threshold: int = 127,
    provenance: Provenance | None = None,
    mask_limits: MaskLimits | None = None,
) -> Result:
    """Parse model text you obtained yourself into a vlmkit result.

    ``task="detect"`` or ``"segment"`` returns :class:`~vlmkit.Detections` (segment also places
    masks), ``"points"`` returns :class:`~vlmkit.Points`; ``"ocr"``, ``"describe"`` and
    ``"video"`` return their result types. Coordinates are mapped to pixels of the original
    image: pass its ``image_size=(width, height)``, or the ``transform`` recorded when it was
    resized or padded before sending (see :mod:`vlmkit.media`). ``mask_limits`` bounds what a
    segmentation answer's masks may cost (see :class:`~vlmkit.masks.MaskLimits`).

    >>> dets = parse('[{"box_2d": [100, 200, 500, 600], "label": "cat"}]', image_size=(1000, 500))
    >>> dets.xyxy.tolist(), dets.labels
    ([[200.0, 50.0, 600.0, 250.0]], ('cat',))
    """
    if not isinstance(text, str):
        raise ConfigError(f"model text must be a string, got {type(text).__name__}")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= 255:
        raise ConfigError(f"threshold must be an integer within 0–255, got {threshold!r}")
    if task in ("detect", "segment"):
        return parse_detections(
            text,
            image_size=image_size,
            convention=convention,
            transform=transform,
            masks=task == "segment",
            threshold=threshold,
            provenance=provenance,
            mask_limits=mask_limits,
        )
    if task == "points":
        return parse_points(
            text,
            image_size=image_size,
            convention=convention,
            transform=transform,
            provenance=provenance,
        )
    if task == "ocr":
        return parse_ocr(
            text,
            image_size=image_size,
            convention=convention,
            transform=transform,
            provenance=provenance,
        )
    if task == "describe":
        return parse_description(text, provenance=provenance)
    if task == "video":
        return parse_video(text, provenance=provenance)
    raise ConfigError(f"unknown task {task!r}; use one of {list(_PARSE_TASKS)}")
