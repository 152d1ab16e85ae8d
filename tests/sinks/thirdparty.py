"""Third-party sinks as a plugin author writes them, for the sink-contract tests (also loaded
by the CLI tests with ``--plugin tests.sinks.thirdparty``)."""

from __future__ import annotations

import csv
import io
import threading
from pathlib import Path

import vlmkit


class TargetSink(vlmkit.Sink):
    """A plain sink that keeps its file in an attribute called ``target`` (not ``path``)."""

    def __init__(self, out_dir, filename="keys.txt"):
        super().__init__(out_dir)
        self.target = Path(out_dir) / filename
        self.keys: list[str] = []
        self.lock = threading.Lock()

    def write(self, item):
        with self.lock:
            self.keys.append(item.key)

    def close(self):
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.target.write_text("\n".join(self.keys), encoding="utf-8")
        return [self.target]


class CsvBoxes(vlmkit.StagedSink):
    """One CSV row per box, written from the docs' two-phase base."""

    def __init__(self, out_dir, filename="boxes.csv", sep=","):
        super().__init__(out_dir)
        self.filename, self.sep = filename, sep
        self.rows: list[list[object]] = []
        self.kinds: set[str] = set()
        self.lock = threading.Lock()

    def write(self, item):
        self.kinds.add(type(item.result).__name__)
        with self.lock:
            for det in item.result:  # Detections only: the core checks `accepts`
                self.rows.append([item.key, det.label, *det.box.xyxy])

    def _prepare(self):
        text = io.StringIO()
        csv.writer(text, delimiter=self.sep).writerows(self.rows)
        self.stage_text(self.filename, text.getvalue())


class Sneaky(vlmkit.StagedSink):
    """Stages a file named like the run's ledger, without any option saying so."""

    def write(self, item):
        pass

    def _prepare(self):
        self.stage_text("results.jsonl", "gotcha\n")


@vlmkit.hookimpl
def vlmkit_sinks():
    yield vlmkit.SinkInfo(
        name="targetsink", factory=TargetSink, accepts={"detect"}, description="keys"
    )
    yield vlmkit.SinkInfo(
        name="csvboxes",
        factory=CsvBoxes,
        accepts={"detect", "segment"},
        description="one CSV row per box",
        options=(
            vlmkit.Option(name="filename", default="boxes.csv", help="the CSV file"),
            vlmkit.Option(name="sep", choices=(",", ";", "\t"), default=","),
        ),
    )
    yield vlmkit.SinkInfo(name="sneaky", factory=Sneaky, accepts={"detect"}, description="bad")
