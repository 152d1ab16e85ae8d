"""Sink.warm_up: a run tells its sinks its task once it is made, before its first request, so
that a sink loads what it needs (a large import) then, not with the first result while every
request in flight waits on the import lock and the GIL (issue 16)."""

from __future__ import annotations

import pytest
from PIL import Image

import vlmkit
from tests.runner.test_runner import CAT
from vlmkit.errors import ConfigError, VlmkitError
from vlmkit.sink import Sink, SinkItem
from vlmkit.testing import scripted_plugin


class Recording(Sink):
    """A third-party sink, registered by its plugin; ``events`` is the test's log."""

    accepts = frozenset({"detect", "segment"})

    def __init__(self, out_dir, *, events: list, fail: Exception | None = None) -> None:
        super().__init__(out_dir)
        self.events, self.fail = events, fail

    def warm_up(self, task: str) -> None:
        self.events.append(("warm_up", task))
        if self.fail is not None:
            raise self.fail

    def write(self, item: SinkItem) -> None:
        self.events.append(("write", item.key))


def images(folder, count=3):
    folder.mkdir()
    for index in range(count):
        Image.new("RGB", (32, 24), (index, 90, 160)).save(folder / f"{index}.png")
    return folder


def session(events, fail=None):
    def answer(request):
        events.append(("request", None))
        return CAT

    class Plugin:
        @vlmkit.hookimpl
        def vlmkit_sinks(self):
            def factory(out_dir, **options):
                return Recording(out_dir, events=events, fail=fail)

            yield vlmkit.SinkInfo(name="recording", factory=factory, accepts={"detect", "segment"})

    plugins = [scripted_plugin(answer), Plugin()]
    return vlmkit.Session("scripted", plugins=plugins, entrypoints=["vlmkit"])


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_a_run_warms_its_sinks_up_with_its_task_before_the_first_request(tmp_path, task):
    events: list = []
    with session(events) as s:
        run = s.run(task, [images(tmp_path / "images")], "cat", out_dir=tmp_path / "out",
                    sinks=["recording"])  # fmt: skip
        assert events == [("warm_up", task)]  # once the run is made
        assert all(outcome.status == "done" for outcome in run)
    assert events[1][0] == "request"
    assert events.count(("warm_up", task)) == 1
    assert sorted(key for what, key in events if what == "write") == ["0.png", "1.png", "2.png"]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConfigError("this sink needs a font that is not installed"), "font that is not"),
        # anything else is a SinkError naming the sink, not a bare traceback
        (ImportError("No module named 'shapely'"), r"sink 'recording' could not get ready for"),
    ],
)
def test_a_sink_that_cannot_warm_up_stops_the_run_before_anything_is_sent(
    tmp_path, error, expected
):
    events: list = []
    with session(events, fail=error) as s, pytest.raises(VlmkitError, match=expected):
        s.run("detect", [images(tmp_path / "images")], "cat", out_dir=tmp_path / "out",
              sinks=["recording"])  # fmt: skip
    assert events == [("warm_up", "detect")]
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_the_base_sink_needs_nothing(tmp_path):
    assert Sink(tmp_path).warm_up("detect") is None


def test_an_export_warms_its_sinks_up_before_the_first_result_of_each_task(tmp_path):
    from vlmkit.export import export

    events: list = []
    with session(events) as s:
        run = s.run("detect", [images(tmp_path / "images")], "cat", out_dir=tmp_path / "run")
        assert all(outcome.status == "done" for outcome in run)
    written: list = []
    export(tmp_path / "run" / "results.jsonl", [Recording(tmp_path / "out", events=written)],
           tmp_path / "out")  # fmt: skip
    assert written[0] == ("warm_up", "detect")
    assert written.count(("warm_up", "detect")) == 1
    assert sorted(key for what, key in written if what == "write") == ["0.png", "1.png", "2.png"]
