"""Tolerant parsing: every repair and recovery behaviour, each in its own small test."""

from __future__ import annotations

import numpy as np
import pytest

import vlmkit
from vlmkit import ParseError, Transform
from vlmkit.parsing import clean_text, extract_json, parse_ocr, parse_points, parse_timestamp

SIZE = (1000, 500)  # width, height: x pixels = grid value, y pixels = grid value / 2
CAT = '{"box_2d": [100, 200, 500, 600], "label": "cat"}'
DOG = '{"box_2d": [200, 300, 600, 700], "label": "dog"}'
CAT_XYXY = [200.0, 50.0, 600.0, 250.0]
DOG_XYXY = [300.0, 100.0, 700.0, 300.0]


def detect(text: str, **kwargs):
    return vlmkit.parse(text, task="detect", image_size=kwargs.pop("image_size", SIZE), **kwargs)


def test_plain_json_list():
    dets = detect(f"[{CAT}, {DOG}]")
    assert dets.labels == ("cat", "dog")
    np.testing.assert_allclose(dets.xyxy, [CAT_XYXY, DOG_XYXY])
    assert dets.report.clean and dets.complete


@pytest.mark.parametrize(
    "wrapped",
    [
        f"```json\n[{CAT}]\n```",
        f"```JSON\n[{CAT}]\n```",
        f"  ```json  \n[{CAT}]\n```",
        f"```\n[{CAT}]\n```",
        f"Here are the boxes:\n```json\n[{CAT}]\n```\nLet me know if you need more.",
        f"```json [{CAT}] ```",
        f"Sure! [{CAT}] Those are all.",
        f"```json\n[{CAT}]\n```<turn|>",
        f"```json\n[{CAT}]\n```<end_of_turn>",
        f"<start_of_turn>model\n[{CAT}]<end_of_turn><eos>",
    ],
)
def test_fences_prose_and_turn_tokens(wrapped):
    dets = detect(wrapped)
    assert dets.labels == ("cat",)
    np.testing.assert_allclose(dets.xyxy, [CAT_XYXY])


@pytest.mark.parametrize(
    "text",
    [
        f"<|channel>thought\nThe cat [at 100, 200] is left.<channel|>```json\n[{CAT}]\n```",
        f"<think>Boxes are [ymin, xmin, ymax, xmax]; {{not json}}</think>\n[{CAT}]",
        f"thought\n```json\n[{CAT}]\n```",
        f"thought\nI should list the cat first, e.g. [1, 2].\n```json\n[{CAT}]\n```",
    ],
)
def test_thinking_text_before_the_answer_is_ignored(text):
    assert detect(text).labels == ("cat",)


def test_clean_text_strips_tokens_and_thinking():
    assert clean_text("<|channel>thought\nhmm<channel|>Hello<turn|>") == "Hello"
    assert clean_text("thought\nA bridge.") == "A bridge."


@pytest.mark.parametrize(
    "text",
    [
        f'{{"boxes": [{CAT}]}}',
        f'{{"objects": [{CAT}], "note": "one cat"}}',
        f'{{"result": [{CAT}]}}',
        CAT,  # a single object, not in a list
    ],
)
def test_wrapping_object_or_single_item(text):
    assert detect(text).labels == ("cat",)


def test_single_quoted_python_list_and_trailing_commas():
    text = (
        "[{'box_2d': [100, 200, 500, 600], 'label': 'cat',}, "
        "{'box_2d': [200, 300, 600, 700], 'label': \"dog's toy\"},]"
    )
    dets = detect(text)
    assert dets.labels == ("cat", "dog's toy")
    np.testing.assert_allclose(dets.xyxy, [CAT_XYXY, DOG_XYXY])
    assert dets.report.syntax == ("python-quotes", "trailing-commas")
    assert not dets.report.clean
    assert "syntax=python-quotes+trailing-commas" in dets.report.summary()


def test_numbers_as_strings():
    dets = detect('[{"box_2d": ["100", "200", " 500 ", "600.0"], "label": "cat"}]')
    np.testing.assert_allclose(dets.xyxy, [CAT_XYXY])


def test_box_as_object_with_named_corners():
    dets = detect(
        '[{"box_2d": {"ymin": 100, "xmin": 200, "ymax": 500, "xmax": 600}, "label": "cat"}]'
    )
    np.testing.assert_allclose(dets.xyxy, [CAT_XYXY])


@pytest.mark.parametrize(
    "cut",
    [
        '{"box_2d": [200, 300, 6',
        '{"box_2d": [200, 300, 600, 700], "label": "do',
        '{"box_2d": [200, 300, 600, 700], "label": "dog"',
        '{"box_2d": [200, 300, 600, 700], "lab',
        "",
    ],
)
def test_truncated_list_keeps_complete_items_and_flags_it(cut):
    dets = detect(f"```json\n[{CAT}, {cut}")
    assert dets.labels == ("cat",)  # never a half item such as label "do"
    assert dets.report.truncated and not dets.complete


def test_truncated_wrapper_object():
    dets = detect(f'{{"boxes": [{CAT}, {{"box_2d": [1, 2')
    assert dets.labels == ("cat",) and dets.report.truncated


def test_truncated_before_first_item_is_a_parse_error():
    with pytest.raises(ParseError) as info:
        detect('```json\n[{"box_2d": [100, 2')
    assert info.value.reason == "truncated"
    assert info.value.raw_text.startswith("```json")


@pytest.mark.parametrize(
    "bad",
    [
        '{"box_2d": [1, 2, 3], "label": "three"}',
        '{"box_2d": [1, 2, 3, 4, 5], "label": "five"}',
        '{"box_2d": ["a", "b", "c", "d"], "label": "letters"}',
        '{"box_2d": null, "label": "null"}',
        '{"label": "no box"}',
        '"just a string"',
        '{"box_2d": [1, 2, 3, NaN], "label": "nan"}',
    ],
)
def test_one_malformed_item_is_skipped_and_reported(bad):
    dets = detect(f"[{CAT}, {bad}, {DOG}]")
    assert dets.labels == ("cat", "dog")
    assert len(dets.report.skipped) == 1
    assert dets.report.skipped[0].index == 1
    assert dets.report.skipped[0].reason


def test_syntax_error_inside_one_item_is_repaired():
    dets = detect(f'[{CAT}, {{"box_2d": [200, 300, 600, 700] "label": "dog"}}]')
    assert dets.labels == ("cat", "dog")


def test_label_with_braces_and_brackets_inside_strings():
    text = '```json\n[{"box_2d": [100, 200, 500, 600], "label": "cat {left} [big]"}, {"box_2d": [1,'
    dets = detect(text)
    assert dets.labels == ("cat {left} [big]",) and dets.report.truncated


def test_swapped_corners_are_sorted_and_counted():
    dets = detect('[{"box_2d": [500, 600, 100, 200], "label": "cat"}]')
    np.testing.assert_allclose(dets.xyxy, [CAT_XYXY])
    assert dets.report.swapped == 1


def test_out_of_grid_values_are_clamped_and_counted():
    dets = detect('[{"box_2d": [-50, 900, 1200, 1100], "label": "edge"}]')
    np.testing.assert_allclose(dets.xyxy, [[900, 0, 1000, 500]])
    assert dets.report.clamped == 1


def test_degenerate_boxes_are_dropped_and_counted():
    dets = detect(f'[{CAT}, {{"box_2d": [100, 100, 100, 400], "label": "flat"}}]')
    assert dets.labels == ("cat",)
    assert dets.report.degenerate == 1
    assert dets.report.skipped == ()  # counted once, as degenerate
    assert dets.report.summary() == "degenerate=1"


def test_extra_keys_become_attributes_and_scores_are_read():
    dets = detect(
        '[{"box_2d": [100, 200, 500, 600], "label": "cat", "confidence": "0.9", "color": "black"}]'
    )
    assert dets[0].score == pytest.approx(0.9)
    assert dets[0].attributes == {"color": "black"}


def test_empty_list_is_nothing_found_not_an_error():
    dets = detect("```json\n[]\n```")
    assert len(dets) == 0 and dets.report.clean


@pytest.mark.parametrize(
    "text", ["", "I could not find any cats.", "```json\n```", "[1, 2, 3]", "{}"]
)
def test_unparseable_answers_raise_parse_error_with_raw_text(text):
    with pytest.raises(ParseError) as info:
        detect(text)
    assert info.value.raw_text == text


def test_all_items_unusable_is_an_error_not_an_empty_result():
    with pytest.raises(ParseError) as info:
        detect('[{"box_2d": [1, 2, 3], "label": "a"}, {"label": "b"}]')
    assert info.value.reason == "no-usable-items"


# -- conventions ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("convention", "box"),
    [
        ("yxyx-1000", [100, 200, 500, 600]),
        ("xyxy-1000", [200, 100, 600, 500]),
        ("xyxy-1", [0.2, 0.1, 0.6, 0.5]),
        ("yxyx-1", [0.1, 0.2, 0.5, 0.6]),
        ("xyxy-pixels", [200, 50, 600, 250]),
    ],
)
def test_conventions(convention, box):
    dets = detect(f'[{{"bbox": {box}, "label": "cat"}}]', convention=convention)
    np.testing.assert_allclose(dets.xyxy, [CAT_XYXY])


def test_paligemma_loc_tokens():
    dets = vlmkit.parse(
        "<loc0256><loc0128><loc0768><loc0640> cat ; <loc0000><loc0000><loc1024><loc1024> big dog",
        convention="loc-1024",
        image_size=(1024, 512),
    )
    assert dets.labels == ("cat", "big dog")
    np.testing.assert_allclose(dets.xyxy, [[128, 128, 640, 384], [0, 0, 1024, 512]])


def test_pixels_of_a_resized_image_map_back_through_the_transform():
    transform = Transform.resize((2000, 1000), (1000, 500))  # sent at half size
    dets = vlmkit.parse(
        '[{"bbox_2d": [200, 50, 600, 250], "label": "cat"}]',
        convention="xyxy-pixels",
        transform=transform,
    )
    np.testing.assert_allclose(dets.xyxy, [[400, 100, 1200, 500]])
    assert dets.image_size == (2000, 1000)


def test_letterboxed_image_maps_back_and_clips_padding():
    # 1000x500 original letterboxed onto a 1000x1000 canvas: content rows 250..750.
    transform = Transform.letterbox((1000, 500), (1000, 1000))
    dets = vlmkit.parse(
        '[{"box_2d": [250, 0, 750, 1000], "label": "all"},'
        ' {"box_2d": [0, 0, 500, 500], "label": "pad"}]',
        transform=transform,
    )
    np.testing.assert_allclose(dets.xyxy, [[0, 0, 1000, 500], [0, 0, 500, 250]])
    assert dets.report.clamped == 1  # the second box reached into the padding


def test_image_size_must_match_transform():
    with pytest.raises(vlmkit.ConfigError):
        vlmkit.parse(f"[{CAT}]", image_size=(10, 10), transform=Transform.identity((20, 20)))


def test_missing_image_size_is_a_clear_error():
    with pytest.raises(vlmkit.ConfigError, match="image_size"):
        vlmkit.parse(f"[{CAT}]")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_size": "100x100"},
        {"image_size": (10, 10, 3)},
        {"image_size": (10.5, 10)},
        {"image_size": (0, 10)},
        {"image_size": (10, 10), "threshold": "abc"},
        {"image_size": (10, 10), "threshold": 300},
        {"image_size": (10, 10), "task": "classify"},
        {"image_size": (10, 10), "convention": "zyx-9"},
    ],
)
def test_bad_arguments_are_config_errors(kwargs):
    with pytest.raises(vlmkit.ConfigError):
        vlmkit.parse(f"[{CAT}]", **kwargs)


def test_deeply_nested_text_is_a_parse_error_not_a_recursion_error():
    for text in ("[" * 100_000, "{" * 50_000 + "}" * 50_000, "[" * 5_000 + "]" * 5_000):
        with pytest.raises(ParseError):
            vlmkit.parse(text, image_size=(10, 10))


def test_lone_surrogates_in_labels_survive():
    dets = vlmkit.parse('[{"box_2d": [0, 0, 10, 10], "label": "\\ud800 cat"}]', image_size=(10, 10))
    assert dets.labels == ("\ud800 cat",)


# -- points -----------------------------------------------------------------------------------
def test_points_yx_on_1000_grid():
    points = parse_points(
        '```json\n[{"point": [100, 200], "label": "a"}, {"point": [500, "600"], "label": "b"},'
        ' {"point": [1]}]\n```',
        image_size=SIZE,
    )
    np.testing.assert_allclose(points.xy, [[200, 50], [600, 250]])
    assert points.labels == ("a", "b")
    assert len(points.report.skipped) == 1
    assert vlmkit.parse(
        '[{"point": [100, 200], "label": "a"}]', task="points", image_size=SIZE
    ).labels == ("a",)


# -- OCR --------------------------------------------------------------------------------------
def test_ocr_plain_text_keeps_unicode():
    answer = "The sign in the image says:\n\n**猫に注意** (Neko ni chūi)<turn|>"
    result = parse_ocr(answer)
    assert "猫に注意" in result.text and "<turn|>" not in result.text


def test_ocr_blocks_with_boxes():
    result = parse_ocr(
        '```json\n[{"text": "STOP", "box_2d": [100, 200, 500, 600]}, {"text": "猫"}]\n```',
        image_size=SIZE,
    )
    assert result.text == "STOP\n猫"
    assert result.blocks[0].box.xyxy == tuple(CAT_XYXY)
    assert result.blocks[1].box is None


# -- video ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stamp", "seconds"),
    [
        ("00:05", 5),
        ("1:05", 65),
        ("12:34", 754),
        ("1:02:03", 3723),
        ("00:05.5", 5.5),
        ("[02:00]", 120),
        (7, 7.0),
    ],
)
def test_timestamps(stamp, seconds):
    assert parse_timestamp(stamp) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["5:75", "ab:cd", "", "1:60:00", -1])
def test_bad_timestamps(bad):
    with pytest.raises(ParseError):
        parse_timestamp(bad)


def test_video_text_with_ranges_and_stamps():
    result = vlmkit.parse(
        "Chapters:\n00:00 - 00:15: Intro\n**00:15-01:02** Setup of the kit\n"
        "1:02:03 Finale\nno stamp here<turn|>",
        task="video",
    )
    assert [(e.start, e.end, e.text) for e in result.events] == [
        (0, 15, "Intro"),
        (15, 62, "Setup of the kit"),
        (3723, None, "Finale"),
    ]


def test_video_json_events():
    result = vlmkit.parse(
        '```json\n[{"start": "00:05", "end": "00:10", "description": "a dog runs"},'
        ' {"timestamp": "01:00 - 01:30", "event": "rain"}, {"start": "bad"}]\n```',
        task="video",
    )
    assert [(e.start, e.end, e.text) for e in result.events] == [
        (5, 10, "a dog runs"),
        (60, 90, "rain"),
    ]
    assert len(result.report.skipped) == 1


def test_extract_json_reports_repairs():
    found = extract_json("[{'a': 1,}]")
    assert found.value == [{"a": 1}] and found.repaired and not found.truncated


# -- numbers beyond the float range (>= 10**309) are bad items, never an OverflowError ---------
HUGE = "1" + "0" * 400


@pytest.mark.parametrize(
    "bad",
    [
        f'{{"box_2d": [{HUGE}, 200, 500, 600], "label": "huge box"}}',
        f'{{"box_2d": {{"ymin": {HUGE}, "xmin": 1, "ymax": 2, "xmax": 3}}, "label": "obj"}}',
    ],
    ids=["list", "object"],
)
def test_a_huge_integer_drops_its_item_and_reports_it(bad):
    dets = detect(f"[{CAT}, {bad}, {DOG}]")
    assert dets.labels == ("cat", "dog")
    assert [s.index for s in dets.report.skipped] == [1]
    assert "out of range" in dets.report.skipped[0].reason


def test_a_huge_score_keeps_the_item_and_the_answer():
    dets = detect(f'[{CAT}, {{"box_2d": [200, 300, 600, 700], "label": "dog", "score": {HUGE}}}]')
    assert dets.labels == ("cat", "dog") and dets.items[1].score is None


def test_a_huge_polygon_point_drops_only_the_mask():
    text = (
        f'[{{"box_2d": [100, 200, 500, 600], "label": "cat",'
        f' "mask": [[1, 2], [{HUGE}, 3], [5, 6]]}}]'
    )
    dets = vlmkit.parse(text, task="segment", image_size=SIZE)
    assert dets.labels == ("cat",) and dets.items[0].mask is None
    assert dets.report.masks_invalid == 1


def test_huge_points_are_skipped_not_overflowed():
    points = parse_points(f'[{{"point": [{HUGE}, 1]}}, {{"point": [100, 200]}}]', image_size=SIZE)
    assert len(points.items) == 1 and points.report.skipped[0].index == 0
    with pytest.raises(ParseError):
        parse_points(f'[{{"point": [{HUGE}, 1]}}]', image_size=SIZE)


@pytest.mark.parametrize(
    "stamp", [10**400, HUGE + ":00", "1:" + HUGE + ":00", HUGE], ids=["int", "mm", "hmm", "s"]
)
def test_huge_timestamps_are_parse_errors(stamp):
    with pytest.raises(ParseError):
        parse_timestamp(stamp)


def test_a_video_event_with_a_huge_start_is_skipped():
    result = vlmkit.parse(
        f'[{{"start": {HUGE}, "end": 3, "description": "x"}},'
        ' {"start": "00:05", "end": "00:10", "description": "a dog runs"}]',
        task="video",
    )
    assert [(e.start, e.end) for e in result.events] == [(5, 10)]
    assert len(result.report.skipped) == 1


def test_ocr_block_with_a_huge_box_keeps_its_text():
    result = parse_ocr(f'[{{"text": "STOP", "box_2d": [{HUGE}, 1, 2, 3]}}]', image_size=SIZE)
    assert result.text == "STOP" and result.blocks[0].box is None
    assert len(result.report.skipped) == 1


# -- every syntax repair is reported ------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        (f"[{CAT}, // the cat\n {DOG}]", ("comments",)),
        (f"[{CAT}, /* a dog */ {DOG}]", ("comments",)),
        (f"[{CAT}, {DOG},]", ("trailing-commas",)),
        ("[{'box_2d': [100, 200, 500, 600], 'label': 'cat'}]", ("python-quotes",)),
        ('[{box_2d: [100, 200, 500, 600], label: "cat"}]', ("unquoted-keys",)),
        ('[{"box_2d": [100, 200, 500, 600], "label": cat}]', ("unquoted-values",)),
        ('[{"box_2d": [100, 200, 500, 600], "label": "cat", "ok": True}]', ("python-literals",)),
        (f'[{CAT}, {{"box_2d": [200, 300, 600, 700] "label": "dog"}}]', ("other",)),
    ],
)
def test_syntax_repairs_are_reported(text, kinds):
    dets = detect(text)
    assert dets.labels[0] == "cat"
    assert dets.report.syntax == kinds and not dets.report.clean


def test_strict_json_reports_no_syntax_repair():
    assert detect(f"```json\n[{CAT}, {DOG}]\n```").report.syntax == ()
    assert detect(f"Sure: [{CAT}] and // no comment").report.clean


def test_strings_that_look_like_repairs_are_left_alone():
    text = '[{"box_2d": [100, 200, 500, 600], "label": "a // b, \'c\' True: ,]"}, ]'
    dets = detect(text)
    assert dets.labels == ("a // b, 'c' True: ,]",)
    assert dets.report.syntax == ("trailing-commas",)


def test_an_unreadable_item_is_skipped_at_its_index_and_the_rest_kept():
    junk = '{"box_2d": [1, 2, 3, 4], "label": ' + '"x' * 10_000 + "}"
    dets = detect(f"[{{box_2d: [100, 200, 500, 600], label: 'cat'}}, {junk}, {DOG}]")
    assert dets.labels == ("cat", "dog")
    assert [s.index for s in dets.report.skipped] == [1]


def test_a_nested_answer_inside_a_rejected_value_is_found():
    dets = detect(f'{{"note": "ok", "answer": {{"boxes": [{CAT}]}}}}')
    assert dets.labels == ("cat",)


def test_a_long_answer_with_bare_keys_and_values_keeps_every_item():
    # The shape that made json_repair quadratic (issue 12): read by the linear dialect pass.
    item = "{box_2d: [100, 200, 500, 600], label: red car, score: 0.5}"
    dets = detect("[" + ", ".join([item] * 4000) + "]")  # 240 KB
    assert len(dets) == 4000 and set(dets.labels) == {"red car"}
    assert dets.report.syntax == ("unquoted-keys", "unquoted-values")
    assert dets.report.skipped == ()
