"""The pointing answer (``[{"point": [y, x], "label": ...}]`` on 0–1000) through the same
normalization layer as boxes: real answers, then adversarial ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

import vlmkit
from vlmkit import ParseError, Point, Points, Transform
from vlmkit.parsing import parse_points

SIZE = (1000, 500)  # width, height: x pixels = grid value, y pixels = grid value / 2

# The shape of Gemini Robotics-ER's answer to Google's pointing prompt (fenced, y first).
ROBOTICS_ER = """```json
[
  {"point": [376, 508], "label": "banana"},
  {"point": [287, 609], "label": "red pepper"},
  {"point": [223, 303], "label": "paper towel"}
]
```"""


def test_a_robotics_er_answer_becomes_labelled_pixels():
    points = parse_points(ROBOTICS_ER, image_size=SIZE)
    np.testing.assert_allclose(points.xy, [[508, 188], [609, 143.5], [303, 111.5]])
    assert points.labels == ("banana", "red pepper", "paper towel")
    assert points.report.clean and len(points) == 3
    first = points[0]
    assert isinstance(first, Point) and (first.label, first.score) == ("banana", None)
    assert [p.label for p in points] == list(points.labels)
    assert vlmkit.parse(ROBOTICS_ER, task="points", image_size=SIZE) == points


def test_score_and_extra_keys_are_kept_on_the_point():
    points = parse_points(
        '[{"point": [500, 500], "label": "cup", "confidence": "90%", "color": "red"}]',
        image_size=SIZE,
    )
    (cup,) = points
    assert cup.score == pytest.approx(0.9) and cup.attributes == {"color": "red"}
    assert math.isnan(parse_points('[{"point": [1, 2]}]', image_size=SIZE).scores[0])


def test_a_resized_and_letterboxed_image_maps_back_to_original_pixels():
    resized = parse_points(
        '[{"point": [500, 250]}]', transform=Transform.resize((4000, 2000), (1000, 500))
    )
    np.testing.assert_allclose(resized.xy, [[1000, 1000]])
    # a 1000x500 photo letterboxed onto a 1000x1000 canvas: the content spans y 250..750
    boxed = parse_points(
        '[{"point": [500, 500]}, {"point": [100, 500]}]',
        transform=Transform.letterbox((1000, 500), (1000, 1000)),
    )
    np.testing.assert_allclose(boxed.xy, [[500, 250], [500, 0]])  # the padding point is clamped
    assert boxed.report.clamped == 1


def test_truncated_answer_keeps_its_complete_points():
    points = parse_points(
        '[{"point": [100, 200], "label": "a"}, {"point": [300, 4', image_size=SIZE
    )
    assert points.labels == ("a",) and points.report.truncated
    with pytest.raises(ParseError) as err:
        parse_points('[{"point": [100, 2', image_size=SIZE)
    assert err.value.reason == "truncated"


def test_x_y_objects_are_read_by_name_in_any_convention():
    answer = '[{"point": {"x": 800, "y": 100}, "label": "a"}]'
    for convention in ("yxyx-1000", "xyxy-1000"):
        points = parse_points(answer, image_size=SIZE, convention=convention)
        np.testing.assert_allclose(points.xy, [[800, 50]])


def test_out_of_range_points_are_clamped_and_counted():
    points = parse_points(
        '[{"point": [-20, 500]}, {"point": [1200, 1e300]}, {"point": [500, 500]}]',
        image_size=SIZE,
    )
    np.testing.assert_allclose(points.xy, [[500, 0], [1000, 500], [500, 250]])
    assert points.report.clamped == 2


@pytest.mark.parametrize(
    "bad",
    [
        '{"point": [NaN, 5]}',
        '{"point": [1, 2, 3]}',
        '{"point": "here"}',
        '{"point": [true, 5]}',
        '{"label": "no point"}',
        '{"point": [' + "9" * 400 + ", 5]}",
        '"just text"',
    ],
    ids=["nan", "three", "text", "bool", "missing", "huge", "string"],
)
def test_a_bad_item_is_dropped_alone_and_reported(bad):
    points = parse_points(
        f'[{{"point": [100, 100], "label": "a"}}, {bad}, {{"point": [200, 200], "label": "b"}}]',
        image_size=SIZE,
    )
    assert points.labels == ("a", "b")
    assert [s.index for s in points.report.skipped] == [1]


def test_an_answer_without_any_usable_point_is_a_parse_error_with_the_raw_text():
    with pytest.raises(ParseError) as err:
        parse_points('[{"point": [NaN, 1]}]', image_size=SIZE)
    assert err.value.reason == "no-usable-items" and err.value.raw_text
    with pytest.raises(ParseError):
        parse_points("I cannot see any banana.", image_size=SIZE)
    assert len(parse_points("[]", image_size=SIZE)) == 0  # an honest "nothing found"


def test_dialect_answers_are_repaired_and_reported():
    points = parse_points("[{'point': [100, 200], 'label': 'a',},]", image_size=SIZE)
    assert points.labels == ("a",) and points.report.syntax


def test_points_value_type_accepts_the_older_label_pairs_and_filters():
    points = Points(
        items=[(Point(x=1, y=2), "cup"), Point(x=3, y=4, label="Dog")], image_size=(9, 9)
    )
    assert points.labels == ("cup", "Dog")
    assert points.filter(["dog"]).labels == ("Dog",)
    with pytest.raises(vlmkit.ConfigError):
        Point(x=1, y=2, score=float("nan"))
