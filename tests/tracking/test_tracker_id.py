"""``Detection.tracker_id`` and ``FrameDetections``: first-class fields, kept by every writer,
and records written before they existed still read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import vlmkit
from vlmkit.ledger import Ledger, LedgerRecord, read_ledger
from vlmkit.serialize import result_from_dict, result_to_dict
from vlmkit.types import Box, Detection, Detections, FrameDetections, VideoResult


def detections(*ids: int | None) -> Detections:
    return Detections(
        image_size=(320, 240),
        items=[
            Detection(box=Box.from_xyxy((10 * i, 5, 10 * i + 8, 20)), label="car", tracker_id=t)
            for i, t in enumerate(ids)
        ],
    )


def test_tracker_id_is_a_validated_field() -> None:
    assert detections(3).items[0].tracker_id == 3
    assert Detection(box=Box.from_xyxy((0, 0, 1, 1)), tracker_id=np.int64(7)).tracker_id == 7
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(vlmkit.ConfigError, match="tracker_id"):
            Detection(box=Box.from_xyxy((0, 0, 1, 1)), tracker_id=bad)


def test_to_supervision_carries_tracker_ids() -> None:
    assert detections(None, None).to_supervision().tracker_id is None
    converted = detections(4, None, 9).to_supervision()
    assert converted.tracker_id.tolist() == [4, -1, 9]


def test_serialize_and_ledger_keep_tracker_id_and_frame_index(tmp_path: Path) -> None:
    result = VideoResult(
        text="2 track(s)",
        frames=[
            FrameDetections(index=0, timestamp_s=0.0, detections=detections(1, 2)),
            FrameDetections(index=5, timestamp_s=0.5, detections=detections(2, None)),
        ],
    )
    data = result_to_dict(result)
    assert data["frames"][1]["index"] == 5 and data["frames"][1]["timestamp_s"] == 0.5
    assert data["frames"][0]["detections"]["items"][0]["tracker_id"] == 1
    assert result_from_dict(json.loads(json.dumps(data))) == result

    path = tmp_path / "results.jsonl"
    with Ledger(path) as ledger:
        ledger.append(LedgerRecord(key="a.mp4", status="done", result=result))
    again = read_ledger(path).done["a.mp4"].result
    assert isinstance(again, VideoResult)
    assert [f.index for f in again.frames] == [0, 5]
    assert again.frames[1].detections.tracker_ids == (2, None)


def test_records_written_before_the_field_still_read() -> None:
    """Old records kept the id in ``attributes["tracker_id"]`` and frames as pairs."""
    old_frame = result_to_dict(detections(None))
    old_frame["items"][0]["attributes"] = {"tracker_id": 6, "colour": "red"}
    old = result_to_dict(VideoResult(text="old"))
    old["frames"] = [[1.5, old_frame]]
    read = result_from_dict(json.loads(json.dumps(old)))
    assert isinstance(read, VideoResult)
    (frame,) = read.frames
    assert (frame.index, frame.timestamp_s) == (None, 1.5)
    detection = frame.detections.items[0]
    assert detection.tracker_id == 6 and detection.attributes == {"colour": "red"}
    timestamp, dets = frame  # a frame still unpacks like the old pair
    assert timestamp == 1.5 and dets is frame.detections


def test_a_pair_given_as_a_frame_becomes_frame_detections() -> None:
    result = VideoResult(text="", frames=[(2.0, detections(1))])
    assert result.frames == (FrameDetections(timestamp_s=2.0, detections=detections(1)),)
