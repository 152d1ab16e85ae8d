"""Re-emit sink outputs from a run ledger, without calling a model (``vlmkit export``).

:func:`export` reads ``results.jsonl`` (:func:`vlmkit.ledger.read_ledger`: torn lines skipped,
duplicates resolved, first-seen order; a file that is not a ledger is refused with
:class:`~vlmkit.ConfigError`) and replays every ``done`` record into the given sinks, then
closes them. The output is the same as writing the sinks during the run.

Sinks are given as built :class:`~vlmkit.Sink` instances, or as names turned into sinks by a
``resolve`` callable — ``resolve(name)`` returns a factory ``factory(out_dir, **options)`` or a
record with a ``factory`` attribute (a :class:`~vlmkit.records.SinkInfo`). The Session's plugin
registry provides one; this module does not depend on the plugin layer.

Guarantees:

* **Every key is checked before any sink sees it.** Each ``done`` record's key is checked as an
  output path (the rules of :func:`vlmkit.atomic.safe_join`: no ``..``, no absolute path, no
  character a file name cannot hold, no folder that leads out of the output folder) before the
  sinks are given the record.
* **One bad item never fails the export.** A record whose key is refused is skipped for every
  sink (so all outputs hold the same items); a record one sink refuses (:class:`~vlmkit.
  SinkError`, e.g. two keys that map to the same YOLO label file) or cannot convert is skipped
  for that sink. Each skip is logged (the first ten one by one, then a summary) and listed in
  :attr:`ExportResult.skipped`. Only when a sink fails on *every* record is that a broken sink,
  and the export fails.
* **All or nothing for the built-in sinks.** They are two-phase
  (:class:`~vlmkit.StagedSink`): while records are replayed and while they are
  closed, every file — per-image files (``labels/``, ``images/``, ``annotated/``) and
  dataset-level files (``annotations.json``, ``data.yaml``, ``results.jsonl``) — is written in
  full under a hidden temporary name next to its target. Only when every sink has finished
  are they moved into place, a burst of renames: per-image files first, each sink's
  dataset-level files last. So an export that fails — a full disk, a broken sink, Ctrl-C —
  changes no file of a built-in sink (the previous export stays whole and consistent), and
  per-image files never appear without their dataset-level file, except when the process dies
  inside that final burst of renames (then each file is still whole, old or new, and a
  re-export repairs the set). A process killed before the commit may leave hidden
  ``.NAME.*.tmp`` files, which nothing reads; a later commit into the same folder removes those
  more than a minute old.
* **The run's class ids.** When the ledger's folder holds the ``run.json`` of a run given a
  label list (``vlmkit label -l b -l a``), the ``coco`` and ``yolo`` sinks get that list as
  their ``categories`` — the class ids the run's own sinks used — unless ``options`` sets
  ``categories`` for them. Exporting a run therefore reproduces its datasets byte for byte.
* Errors of the environment (:class:`OSError`: disk full, permission denied) stop the export
  with a :class:`~vlmkit.SinkError` and the guarantee above.

A third-party sink takes part in the commit by providing ``prepare()``, ``commit()`` and
``discard()`` (the StagedSink protocol); any other sink is closed before the built-in sinks
commit, and its own ``close`` decides what it leaves behind on failure.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import attrs

from vlmkit.atomic import Staging, relative_parts, safe_join
from vlmkit.errors import ConfigError, SinkError, VlmkitError
from vlmkit.filelist import FileList
from vlmkit.ledger import LedgerRecord, LedgerState, read_ledger
from vlmkit.records import TASKS, SinkInfo
from vlmkit.sink import Sink, SinkItem, StagedSink, build_sink, confine_options
from vlmkit.types import Description, Detections, OcrResult, Points, VideoResult

__all__ = [
    "CATEGORY_SINKS",
    "ExportResult",
    "Exporter",
    "SkippedRecord",
    "export",
    "run_labels",
    "with_label_categories",
]

logger = logging.getLogger(__name__)

Resolver = Callable[[str], Any]

_LOGGED_SKIPS = 10  # skips logged one by one; the rest only in the summary
CATEGORY_SINKS = ("coco", "yolo")
"""The built-in sinks whose class ids a run's label list fixes (their ``categories`` option)."""


def with_label_categories(
    sinks: Iterable[str | Sink],
    options: Mapping[str, Mapping[str, Any]] | None,
    labels: Sequence[str] | None,
) -> dict[str, dict[str, Any]]:
    """``options`` (copied) with ``categories=labels`` for each of :data:`CATEGORY_SINKS` among
    ``sinks`` that has no ``categories`` option yet: a label list given to a run fixes the
    class ids of its datasets, all of its labels included (also those never found)."""
    chosen = {name: dict(given) for name, given in (options or {}).items()}
    if labels is None:
        return chosen
    for name in sinks:
        if isinstance(name, str) and name in CATEGORY_SINKS:
            chosen.setdefault(name, {}).setdefault("categories", list(labels))
    return chosen


def run_labels(ledger_path: str | os.PathLike[str]) -> list[str] | None:
    """The label list of the run that wrote ``ledger_path`` (its ``run.json`` ``prompt``, when
    that is a list), or None: no manifest next to the ledger, or a free-text prompt."""
    from vlmkit.manifest import MANIFEST_NAME

    path = Path(ledger_path).parent / MANIFEST_NAME
    try:
        prompt = json.loads(path.read_text(encoding="utf-8")).get("prompt")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as err:
        logger.warning("export: %s is unreadable (%s); class ids follow the results", path, err)
        return None
    if isinstance(prompt, list) and all(isinstance(label, str) for label in prompt):
        return list(prompt)
    return None


@attrs.frozen
class SkippedRecord:
    """A ledger record that was not exported: by every sink (``sink`` is None) or by one."""

    key: str
    reason: str
    sink: str | None = None


class ExportResult(dict[str, Sequence[Path]]):
    """The files each sink wrote, by sink name — a dict, as before — and what was skipped.

    ``records``: the ``done`` records replayed; ``skipped``: the records (or record and sink
    pairs) left out, with the reason; ``bad_lines``: ledger lines that were not records.
    """

    def __init__(
        self,
        files: Mapping[str, Sequence[Path]] | None = None,
        *,
        records: int = 0,
        skipped: Iterable[SkippedRecord] = (),
        bad_lines: int = 0,
    ) -> None:
        super().__init__(files or {})
        self.records = records
        self.skipped = list(skipped)
        self.bad_lines = bad_lines


def _build(
    entry: str | Sink,
    out_dir: Path,
    resolve: Resolver | None,
    options: Mapping[str, Mapping[str, Any]],
    ledger: Path | None,
) -> tuple[str, Sink, frozenset[str]]:
    """Build one sink; return its name, the sink and the tasks it accepts."""
    if isinstance(entry, Sink):
        name = getattr(entry, "name", None) or type(entry).__name__
        return name, entry, frozenset(entry.accepts) or frozenset(TASKS)
    if not isinstance(entry, str):
        raise ConfigError(f"a sink must be a Sink or a sink name, got {entry!r}")
    if resolve is None:
        raise ConfigError(
            f"sink {entry!r} is given by name but no resolve= callable was passed to turn "
            "names into sinks (Session provides one), or pass built Sink instances"
        )
    found = resolve(entry)
    given = dict(options.get(entry, {}))
    if isinstance(found, SinkInfo):
        return entry, build_sink(found, out_dir, given, ledger=ledger), found.accepts
    factory = getattr(found, "factory", found)
    if not callable(factory):
        raise ConfigError(f"resolve({entry!r}) returned {found!r}, not a sink factory")
    confine_options(entry, given, out_dir, ledger=ledger)
    sink = factory(out_dir, **given)
    if not isinstance(sink, Sink):
        raise ConfigError(f"the factory of sink {entry!r} built {sink!r}, not a vlmkit Sink")
    declared = getattr(found, "accepts", None) or sink.accepts
    return entry, sink, frozenset(declared) or frozenset(TASKS)


def _task_of(result: Any) -> str | None:
    provenance = getattr(result, "provenance", None)
    task = getattr(provenance, "task", None)
    if task:
        return str(task)
    kinds = {
        Description: "describe",
        Detections: "detect",
        OcrResult: "ocr",
        VideoResult: "video",
        Points: "points",
    }
    return next((t for kind, t in kinds.items() if isinstance(result, kind)), None)


class _TwoPhase(Protocol):
    def prepare(self) -> None: ...
    def commit(self) -> Sequence[Path]: ...
    def discard(self) -> None: ...


def _two_phase(sink: Sink) -> bool:
    return all(callable(getattr(sink, name, None)) for name in ("prepare", "commit", "discard"))


def _image_path(record: LedgerRecord, image_root: Path | None) -> Path | None:
    if image_root is not None:
        return image_root.joinpath(*record.key.replace("\\", "/").split("/"))
    return Path(record.image_path) if record.image_path is not None else None


class _Skips:
    """Collects skipped records and logs the first few of them."""

    def __init__(self) -> None:
        self.items: list[SkippedRecord] = []

    def add(self, key: str, reason: str, sink: str | None = None) -> None:
        self.items.append(SkippedRecord(key=key, reason=reason, sink=sink))
        if len(self.items) <= _LOGGED_SKIPS:
            where = "every sink" if sink is None else f"sink {sink!r}"
            logger.warning("export: skipping %r for %s: %s", key, where, reason)

    def summarize(self, records: int) -> None:
        if not self.items:
            return
        keys = len({s.key for s in self.items})
        logger.warning(
            "export: %d of %d record(s) were left out of at least one sink (%d skip(s) in "
            "all; ExportResult.skipped lists them)",
            keys,
            records,
            len(self.items),
        )


class Exporter:
    """Replays ledger records into sinks one at a time, then commits them together: the engine
    of :func:`export`, and what a run uses to write its sinks while it is still running.

    Sinks are built (and checked) at construction. :meth:`add` takes records in ledger order
    (``done`` ones are written — staged, invisible until the commit — the rest ignored);
    :meth:`finish` stages the dataset-level files and commits everything, or changes nothing
    when it fails; :meth:`discard` drops what is staged. The guarantees of :func:`export` hold.
    """

    def __init__(
        self,
        sinks: str | Sink | Iterable[str | Sink],
        out_dir: str | os.PathLike[str],
        *,
        ledger_path: str | os.PathLike[str] | None = None,
        image_root: str | os.PathLike[str] | None = None,
        resolve: Resolver | None = None,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.out = Path(out_dir)
        ledger = Path(ledger_path) if ledger_path is not None else None
        entries = [sinks] if isinstance(sinks, str | Sink) else list(sinks)
        self.ledger = ledger
        built: list[tuple[str, Sink]] = []
        self.accepts: dict[str, frozenset[str]] = {}
        for entry in entries:
            name, sink, accepts = _build(entry, self.out, resolve, options or {}, ledger)
            # whatever the sink calls its attributes: none of its paths may be the ledger
            for target in _path_attributes(sink):
                if ledger is not None and _same_file(target, ledger):
                    self._check_target(name, target)
            if any(existing == name for existing, _ in built):
                name = f"{name}#{len(built) + 1}"
            built.append((name, sink))
            self.accepts[name] = accepts
        self.built = built
        self.root = Path(image_root) if image_root is not None else None
        self.records = 0
        self._skips = _Skips()
        self._unexpected = {name: 0 for name, _ in built}
        self._first_error: dict[str, Exception] = {}
        self._key_folders: set[str] = set()  # key folders checked (see _check_key)
        self._staged = [(n, cast(_TwoPhase, sink)) for n, sink in built if _two_phase(sink)]
        self._staged_sinks = [(n, sink) for n, sink in built if _two_phase(sink)]
        self._plain = [(n, sink) for n, sink in built if not _two_phase(sink)]
        self._background = [(n, sink) for n, sink in built if isinstance(sink, StagedSink)]
        self._warmed: set[str] = set()  # tasks the sinks were warmed up for (see warm_up)

    def warm_up(self, task: str) -> None:
        """Each sink's :meth:`~vlmkit.Sink.warm_up` for ``task``, once per task: a run calls
        this when it is made, :meth:`add` before the first record of a task not warmed yet."""
        if task in self._warmed:
            return
        self._warmed.add(task)
        for name, sink in self.built:
            try:
                sink.warm_up(task)
            except VlmkitError:
                raise
            except Exception as err:  # a missing module, a font that cannot load: name the sink
                raise SinkError(f"sink {name!r} could not get ready for {task}: {err}") from err

    @property
    def staged_only(self) -> bool:
        """Whether every sink is two-phase (nothing they write shows before :meth:`finish`)."""
        return not self._plain

    @property
    def has_staged(self) -> bool:
        """Whether any sink is two-phase: those can be fed while a run goes on (``only=
        "staged"``), the plain ones then get the records at its end (``only="plain"``)."""
        return bool(self._staged)

    def replay(
        self, state: LedgerState, progress: Callable[[str], object] | None = None
    ) -> ExportResult:
        """:meth:`add` every record of ``state`` in order, then :meth:`finish`. ``progress``
        is called with the key of each ``done`` record once it is handed to the sinks."""
        try:
            for record in state:
                self.add(record)
                if progress is not None and record.status == "done":
                    progress(record.key)
        except BaseException:
            self.discard()
            raise
        return self.finish(bad_lines=state.bad_lines)

    def add(self, record: LedgerRecord, *, only: str | None = None) -> None:
        """Write one record to every sink: its key is checked as an output path first (a
        refused key is skipped for every sink); a sink refusing it skips it for that sink.

        ``only="staged"`` writes it to the two-phase sinks alone, ``only="plain"`` to the
        others alone: a run feeds the first while it runs and the second at its end, each
        record once to each (the record is counted, and a refused key reported, by the
        ``"staged"`` pass)."""
        if only not in (None, "staged", "plain"):
            raise ValueError(f"only must be None, 'staged' or 'plain', got {only!r}")
        if record.status != "done" or record.result is None:
            return
        first_pass = only != "plain"
        try:
            self._check_key(record.key)
        except SinkError as err:
            if first_pass:
                self._skips.add(record.key, str(err))
            return
        if first_pass:
            self.records += 1
        chosen = {
            None: self.built,
            "staged": self._staged_sinks,
            "plain": self._plain,
        }[only]
        item = SinkItem(
            key=record.key,
            result=record.result,
            image_path=_image_path(record, self.root),
            image_size=record.image_size,
        )
        task = _task_of(record.result)
        if task is not None and task not in self._warmed:
            self.warm_up(task)
        for name, sink in chosen:
            if task is not None and task not in self.accepts[name]:
                accepted = ", ".join(sorted(self.accepts[name]))
                self._skips.add(
                    record.key, f"sink {name!r} does not accept {task} results ({accepted})", name
                )
                continue
            write_record = getattr(sink, "write_record", None)
            try:
                if callable(write_record):
                    write_record(record)
                else:
                    sink.write(item)
            except Exception as err:
                self._failed(name, record.key, err)
        if only != "plain":
            self._take_background_failures()

    def _failed(self, name: str, key: str, err: Exception) -> None:
        """Sink ``name`` could not write ``key``: an error of the environment stops the
        export, anything else skips the record for that sink."""
        if isinstance(err, OSError):
            raise SinkError(
                f"sink {name!r} could not write {key!r}: {err}; the export stopped"
            ) from err
        if isinstance(err, SinkError):
            self._skips.add(key, str(err), name)
            return
        if isinstance(err, MemoryError | RecursionError):
            raise err
        logger.debug("sink %r failed on %r", name, key, exc_info=err)
        self._skips.add(key, f"{type(err).__name__}: {err}", name)
        self._unexpected[name] += 1
        self._first_error.setdefault(name, err)

    def _take_background_failures(self, *, wait: bool = False) -> None:
        """Report what the sinks' background work (:meth:`StagedSink.in_background`) failed
        on, against its own record; with ``wait``, once all of it is done."""
        for name, sink in self._background:
            if wait:
                sink.wait_background()
            for key, err in sink.background_failures():
                if not isinstance(err, Exception):  # KeyboardInterrupt, SystemExit in a thread
                    raise err
                self._failed(name, key, err)

    def _check_key(self, key: str) -> None:
        """Refuse a key that cannot be an output path: its rules as text, each of its folders
        once (:func:`~vlmkit.atomic.safe_join`). ``out/KEY`` itself is not looked up — no sink
        writes there, and each checks the files it does write (issue 16)."""
        parts = relative_parts(key)
        folder = "/".join(parts[:-1])
        if folder and folder not in self._key_folders:
            safe_join(self.out, folder)
            self._key_folders.add(folder)

    def finish(self, *, bad_lines: int = 0) -> ExportResult:
        """Stage the dataset-level files, close plain sinks, commit; on any failure discard
        what is staged and raise. ``bad_lines``: the ledger lines that were not records."""
        try:
            self._take_background_failures(wait=True)
            for name, count in self._unexpected.items():
                if self.records and count == self.records:
                    cause = self._first_error[name]
                    raise SinkError(
                        f"sink {name!r} failed on every record ({type(cause).__name__}: "
                        f"{cause}); nothing was exported"
                    ) from cause
            checked: dict[str, set[str]] = {}  # staged files checked before the commit
            for name, two_phase in self._staged:
                _finish(name, two_phase.prepare)
                staging = getattr(two_phase, "staging", None)
                fresh = staging.made if isinstance(staging, Staging) else None
                where = _TargetCheck(self.out, self.ledger, fresh)
                checked[name] = set(_staged_targets(two_phase))
                for target in checked[name]:
                    self._check_target(name, target, where)
            before = _fingerprint(self.ledger)
            files: dict[str, Sequence[Path]] = {}
            for name, sink in self._plain:
                files[name] = _finish(name, sink.close)
                self._check_files(name, files[name], before)
            for name, two_phase in self._staged:
                files[name] = _finish(name, two_phase.commit)
                self._check_files(name, files[name], before, checked[name])
        except BaseException:
            self.discard()
            raise
        self._skips.summarize(self.records)
        return ExportResult(
            {name: files[name] for name, _ in self.built},
            records=self.records,
            skipped=self._skips.items,
            bad_lines=bad_lines,
        )

    def _check_target(
        self, name: str, target: str | os.PathLike[str], where: _TargetCheck | None = None
    ) -> None:
        """Refuse a sink file outside the output folder or on the ledger (resolved paths).
        ``where``: the resolutions already made for the files checked together."""
        where = where or _TargetCheck(self.out, self.ledger)
        if where.is_ledger(target):
            raise SinkError(
                f"sink {name!r} would overwrite the ledger ({self.ledger}); change its "
                "file name or choose another output folder"
            )
        if not where.inside(target):
            raise SinkError(
                f"sink {name!r} would write {target}, outside the output folder {self.out}; "
                "sinks write only inside it"
            )

    def _check_files(
        self,
        name: str,
        files: Iterable[Any],
        ledger_before: Any,
        checked: Container[str] = (),
    ) -> None:
        """After a sink finished: the ledger is untouched, and every file it says it wrote is
        inside the output folder (``checked``: files it staged, checked just before)."""
        if ledger_before is not None and _fingerprint(self.ledger) != ledger_before:
            raise SinkError(
                f"sink {name!r} changed the run's ledger ({self.ledger}); the sink is broken: "
                "report it to its author"
            )
        where = _TargetCheck(self.out, self.ledger)
        texts = files.texts() if isinstance(files, FileList) else map(os.fspath, files or ())
        for text in texts:
            if text not in checked:
                self._check_target(name, text, where)

    def discard(self) -> None:
        """Drop every staged file (a failed cleanup is logged, never raised)."""
        for _, two_phase in self._staged:
            try:
                two_phase.discard()
            except Exception:  # a failed cleanup must not hide the real error
                logger.debug("discarding staged files failed", exc_info=True)


def export(
    ledger_path: str | os.PathLike[str],
    sinks: str | Sink | Iterable[str | Sink],
    out_dir: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    resolve: Resolver | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    state: LedgerState | None = None,
    progress: bool | Callable[[str], object] = False,
) -> ExportResult:
    """Replay the ``done`` records of a ledger into ``sinks`` and close them.

    ``image_root``: where the input images are now, when they moved since the run (an item's
    image is then ``image_root/key``); by default the path recorded in the ledger is used.
    ``options`` maps a sink name to the options its factory gets. Returns an
    :class:`ExportResult`: the files each sink wrote, by sink name (the class name for a sink
    given as an instance), with ``skipped`` records. Failed records are not exported; a sink
    that would overwrite the ledger itself is refused; a file that is not a ledger raises
    :class:`~vlmkit.ConfigError`. See the module docstring for what is guaranteed on failure.
    ``state``: the ledger as already read and kept up to date by its writer, instead of
    reading the file again. The run's label list (its ``run.json``) gives ``coco`` and
    ``yolo`` their ``categories`` unless ``options`` sets them (:func:`run_labels`).
    ``progress``: True shows a progress bar of the ``done`` records on stderr (none when
    stderr is not a terminal); a callable is called with each ``done`` record's key once it
    is handed to the sinks.
    """
    if state is None:
        state = read_ledger(ledger_path)  # refuses a file that is not a ledger, before all else
    entries = [sinks] if isinstance(sinks, str | Sink) else list(sinks)
    sinks = entries
    options = with_label_categories(entries, options, run_labels(ledger_path))
    exporter = Exporter(
        sinks,
        out_dir,
        ledger_path=ledger_path,
        image_root=image_root,
        resolve=resolve,
        options=options,
    )
    if progress is not True:
        return exporter.replay(state, progress or None)
    from tqdm.auto import tqdm

    done = sum(1 for record in state if record.status == "done")
    bar = tqdm(total=done, desc="vlmkit export", unit="img", dynamic_ncols=True, disable=None)
    try:
        return exporter.replay(state, lambda _key: bar.update(1))
    finally:
        bar.close()


class _TargetCheck:
    """Where sink files really are (links followed), for many files at once: the output
    folder, the ledger and each file's folder are resolved once, then each file costs one
    ``lstat`` (a file that is itself a link is resolved in full). Paths are handled as text:
    building and comparing path objects for every file, twice per image, cost more CPU than
    the sinks' own work (issue 16)."""

    def __init__(
        self, out: Path, ledger: Path | None, fresh: Callable[[str], bool] | None = None
    ) -> None:
        self._fresh = fresh  # folders a staging made: nothing is in them yet, nothing to look at
        self.root = os.path.realpath(out)
        self.ledger = ledger
        self.ledger_path = os.path.realpath(ledger) if ledger is not None else None
        self.ledger_id = _file_id(ledger) if ledger is not None else None
        self._folders: dict[str, str] = {}
        # the last file resolved (is_ledger, then inside): one, not every file of a run
        self._seen: tuple[str, tuple[str, tuple[int, int] | None]] | None = None

    def _resolved(self, path: str | os.PathLike[str]) -> tuple[str, tuple[int, int] | None]:
        """``path`` resolved, and its (device, inode) when it exists."""
        text = os.fspath(path)
        seen = self._seen
        if seen is None or seen[0] != text:  # a file is asked about twice in a row
            seen = self._seen = (text, self._resolve(text))
        return seen[1]

    def _resolve(self, path: str) -> tuple[str, tuple[int, int] | None]:
        absolute = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
        info = None
        if self._fresh is None or not self._fresh(os.path.dirname(path)):
            try:
                info = os.lstat(absolute)
            except OSError:
                info = None
            if info is not None and stat.S_ISLNK(info.st_mode):
                return os.path.realpath(absolute), _file_id(Path(absolute))
        parent, name = os.path.split(absolute)
        folder = self._folders.get(parent)
        if folder is None:
            folder = self._folders[parent] = os.path.realpath(parent)
        identity = (info.st_dev, info.st_ino) if info is not None else None
        return os.path.join(folder, name), identity

    def is_ledger(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` is (or would be, once created) the ledger file."""
        if self.ledger is None:
            return False
        resolved, identity = self._resolved(path)
        if identity is not None and self.ledger_id is not None:
            return identity == self.ledger_id
        assert self.ledger_path is not None
        return os.path.normcase(resolved) == os.path.normcase(self.ledger_path)

    def inside(self, path: str | os.PathLike[str]) -> bool:
        resolved = self._resolved(path)[0]
        root = self.root
        return resolved == root or resolved.startswith(root.rstrip(os.sep) + os.sep)


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def _path_attributes(sink: Sink) -> list[Path]:
    """Every path a sink holds in an attribute (``path``, ``filename``, ``target``, ...)."""
    found = []
    for value in getattr(sink, "__dict__", {}).values():
        if isinstance(value, os.PathLike) and not isinstance(value, type):
            found.append(Path(value))
    return [p if p.is_absolute() else Path.cwd() / p for p in found]


def _staged_targets(sink: Any) -> list[str]:
    staging = getattr(sink, "staging", None)
    if getattr(type(sink), "staged_files", None) is StagedSink.staged_files and isinstance(
        staging, Staging
    ):  # the staging's own strings: no path object per file
        return staging.target_names()
    staged = getattr(sink, "staged_files", None)
    if callable(staged):
        return [os.fspath(p) for p in staged()]
    staging = getattr(sink, "staging", None)
    return [os.fspath(p) for p in getattr(staging, "targets", ()) or ()]


def _fingerprint(path: Path | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are (or would be, once created) the same file."""
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return os.path.normcase(a.resolve()) == os.path.normcase(b.resolve())


def _finish(name: str, step: Callable[[], Any]) -> Any:
    try:
        return step()
    except SinkError:
        raise
    except OSError as err:
        raise SinkError(f"sink {name!r} could not write its files: {err}") from err
    except Exception as err:
        raise SinkError(f"sink {name!r} failed to finish: {err}") from err
