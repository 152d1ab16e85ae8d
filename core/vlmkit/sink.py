"""The sink interface: how results leave vlmkit (files, annotated images, datasets).

A sink is built once per run (or export) with an output folder and its options, receives
every finished item through :meth:`Sink.write` — from several threads at once, so guard shared
state with a lock — and writes its files when it is finished. Sinks only ever see normalized
results (original-image pixels, box-local masks) of the tasks their
:class:`~vlmkit.SinkInfo` ``accepts``; provider quirks never reach them.

Subclass :class:`StagedSink`: every file it writes goes through :meth:`StagedSink.stage` (or
``stage_bytes``/``stage_text``), lands under the output folder by construction
(:meth:`Sink.output_path` refuses ``..``, absolute paths and escaping symlinks), and appears
only when the whole run or export commits — all sinks together, so a failure changes no file.
A plain :class:`Sink` that writes on its own in :meth:`Sink.close` works too, but its files
show as soon as it closes.

Options are declared on the :class:`~vlmkit.SinkInfo` (``options=(vlmkit.Option(...), ...)``)
and validated by the core before the factory runs: an unknown name or a bad value is a
:class:`~vlmkit.ConfigError` naming the options that exist. Whatever a sink calls its options,
the core refuses any value that points outside the output folder or at the run's ledger.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

import attrs

from vlmkit.atomic import Staging, safe_join, utf8_safe
from vlmkit.errors import ConfigError, SinkError
from vlmkit.filelist import FileList
from vlmkit.sinkwork import BackgroundWork  # small; not imported by a run's first result
from vlmkit.types import Result

if TYPE_CHECKING:
    from vlmkit.records import SinkInfo

__all__ = [
    "Sink",
    "SinkItem",
    "StagedSink",
    "as_bool",
    "as_choice",
    "as_names",
    "build_sink",
    "reject_unknown",
    "safe_join",
    "utf8_safe",
]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@attrs.frozen(kw_only=True)
class SinkItem:
    """One finished input of a run.

    ``key`` identifies the input within the run: its path relative to the run's input root,
    with ``/`` separators (it comes from the user's file names, never from model output).
    ``image_path`` is where the pixels can be read again (for annotation), when known.
    """

    key: str
    result: Result
    image_path: Path | None = None
    image_size: tuple[int, int] | None = None


class Sink:
    """Base class of output sinks. Subclasses implement ``write`` and ``close``.

    ``accepts`` (optional here: the :class:`~vlmkit.SinkInfo` declares it for the core) lists
    the tasks whose results the sink can write.
    """

    accepts: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, out_dir: str | Path, **options: Any) -> None:
        self.out_dir = Path(out_dir)
        self.options = options

    def output_path(self, name: str) -> Path:
        """``out_dir/name``, refused with :class:`~vlmkit.SinkError` when ``name`` is absolute,
        has ``..`` parts or leads out of the folder through a symlink (``/`` separates
        folders). Build every path of your files with it."""
        return safe_join(self.out_dir, name)

    def warm_up(self, task: str) -> None:
        """Load what writing ``task``'s results needs. A run calls this once it is made,
        before its first request, with its task (``"detect"``, ``"segment"``, …); ``vlmkit
        export`` before the first result of each task it writes.

        Import here a large library your :meth:`write` needs: imported by the first result
        instead, it holds up every request in flight, which wait on the import lock and the
        GIL meanwhile. Supervision's import takes 0.4 s alone and 3.8 s in the middle of a run
        at 32 in flight (issue 16). Does nothing by default; an error here stops the run
        before it sends anything. A sink used by hand is not warmed up: :meth:`write` must
        not depend on it (load lazily there too)."""

    def write(self, item: SinkItem) -> None:
        raise NotImplementedError

    def close(self) -> Sequence[Path]:
        """Finish writing; return the files written (a list of paths, or a
        :class:`~vlmkit.FileList` for many)."""
        return []

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StagedSink(Sink):
    """A sink whose files appear together, in two phases — the base to subclass.

    :meth:`write` stages per-item files with :meth:`stage` (hidden temporary files next to
    their targets); :meth:`prepare` stages the dataset-level files (override :meth:`_prepare`:
    everything that can fail — rendering, encoding, a full disk — happens up to here);
    :meth:`commit` moves all of them into place, per-item files first and dataset-level files
    last; :meth:`discard` drops what is staged. :meth:`close` is ``prepare`` + ``commit`` (and
    ``discard`` when that fails); leaving a ``with`` block by an exception discards. Runs and
    :func:`vlmkit.export.export` drive the phases across all their sinks, so a failure changes
    no file of any staged sink.

    Heavy per-item work (decoding, drawing, encoding images: code that releases the GIL) can
    leave the thread that feeds the sink: set :attr:`background_workers` and hand the work to
    :meth:`in_background` from :meth:`write`, after the part that must follow the items'
    order (class ids, file names). Everything above still holds: :meth:`prepare` waits for
    the work, :meth:`discard` drops it, and an exception it raises is reported against its
    own item (:meth:`background_failures`).
    """

    #: Items whose :meth:`in_background` work may run at once, on as many threads; 1 (the
    #: default): the work runs in the calling thread, inside :meth:`write`.
    background_workers: int = 1

    def __init__(self, out_dir: str | Path, **options: Any) -> None:
        super().__init__(out_dir, **options)
        self.staging = Staging()
        self._files = FileList()  # every file committed, in order
        self._noted: list[str] = []  # files found in place since the last commit
        self._prepared = False
        self._background: BackgroundWork | None = None

    def in_background(
        self, key: str, work: Callable[[], Any], then: Callable[[Any], object] | None = None
    ) -> None:
        """Run ``work()`` — the heavy part of item ``key``'s writing — on one of
        :attr:`background_workers` threads, then ``then(result)`` in the thread that feeds
        the sink, in the items' order: stage the item's files there, so that they commit in
        the items' order whatever thread finished first. Waits while twice that many items
        are in the works, so memory stays bounded when the work is slower than the items
        come. An exception either raises is kept for :meth:`background_failures`."""
        if self.background_workers <= 1:
            result = work()
            if then is not None:
                then(result)
            return
        if self._background is None:
            name = f"vlmkit-sink-{type(self).__name__}"
            self._background = BackgroundWork(self.background_workers, name)
        self._background.submit(key, work, then)

    def wait_background(self) -> None:
        """Return once the work handed to :meth:`in_background` is done."""
        if self._background is not None:
            self._background.wait()

    def background_failures(self) -> list[tuple[str, BaseException]]:
        """``(key, exception)`` for each item whose background work raised, each once (runs
        and exports take them after every item, and report them as a failed ``write``)."""
        return self._background.failures() if self._background is not None else []

    @contextlib.contextmanager
    def stage(
        self, name: str, mode: str = "wb", *, encoding: str | None = None
    ) -> Iterator[IO[Any]]:
        """Open the file ``name`` (relative to the output folder) for writing, staged: it
        appears at :meth:`commit`. ``mode`` is ``"wb"`` or ``"w"`` (then pass ``encoding``)."""
        with self.staging.open(self.output_path(name), mode, encoding=encoding) as handle:
            yield handle

    def stage_bytes(self, name: str, data: bytes) -> Path:
        """Stage ``data`` as the file ``name`` (relative to the output folder)."""
        return self.staging.write_bytes(self.output_path(name), data)

    def stage_text(self, name: str, text: str) -> Path:
        """Stage ``text`` as UTF-8 (characters UTF-8 cannot encode become U+FFFD)."""
        return self.staging.write_text(self.output_path(name), utf8_safe(text))

    def _prepare(self) -> None:
        """Stage the dataset-level files (subclasses)."""

    def _note(self, path: str | os.PathLike[str]) -> None:
        """Count ``path`` among this sink's files without staging it (already in place)."""
        self._noted.append(os.fspath(path))

    def staged_files(self) -> list[Path]:
        """The files that :meth:`commit` would put in place."""
        return self.staging.targets

    def prepare(self) -> None:
        """Wait for the background work, then stage the dataset-level files. Background work
        that failed and was not taken (a sink used by hand) raises here: the first error."""
        self.wait_background()
        failed = self.background_failures()
        if failed:
            raise failed[0][1]
        if not self._prepared:
            self._prepare()
            self._prepared = True

    def commit(self) -> FileList:
        """Move what is staged into place; return every file this sink committed or found in
        place so far, in order, each once."""
        self.prepare()
        if self._background is not None:  # done (prepare waited): let its threads go
            self._background.close()
        committed = self.staging.commit()
        if self._files or self._noted:  # an earlier commit, or files already in place
            committed = FileList(
                dict.fromkeys([*self._files.texts(), *self._noted, *committed.texts()])
            )
        self._files, self._noted = committed, []
        self._prepared = False  # a later write + close restages the dataset-level files
        return committed

    def discard(self) -> None:
        if self._background is not None:  # nothing may be staged after the discard
            self._background.cancel()
        self.staging.discard()
        self._prepared = False

    def close(self) -> FileList:
        try:
            return self.commit()
        except BaseException:
            self.discard()
            raise

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.discard()


# -- options ----------------------------------------------------------------------------------
def reject_unknown(sink: str, options: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse options a sink does not know, naming the ones it does."""
    if options:
        raise ConfigError(
            f"unknown option(s) for sink {sink!r}: {sorted(options)}; known: {sorted(known)}"
        )


def as_bool(name: str, value: Any) -> bool:
    """A bool option given as a bool or as text (``--sink-option x.copy_images=true``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"option {name}={value!r} is not a boolean (use true or false)")


def as_names(name: str, value: Any) -> list[str] | None:
    """A list of class names given as a list or as comma-separated text."""
    if value is None:
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    raise ConfigError(f"option {name}={value!r} must be a list of class names")


def as_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """A text option that must be one of ``choices`` (case-insensitive)."""
    text = str(value).strip().lower()
    allowed = list(choices)
    if text not in allowed:
        raise ConfigError(f"option {name}={value!r} is not allowed; choose one of {allowed}")
    return text


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return os.path.normcase(a.resolve()) == os.path.normcase(b.resolve())


def confine_options(
    sink: str,
    options: Mapping[str, Any],
    out_dir: str | Path,
    *,
    ledger: str | Path | None = None,
    inputs: Iterable[str] = (),
) -> None:
    """Refuse (:class:`~vlmkit.SinkError`) option values that point at ``ledger`` or outside
    ``out_dir``, whatever the options are called (``inputs``: options declared as files to
    *read*, left alone)."""
    root = Path(out_dir)
    reading = set(inputs)
    for key, value in options.items():
        if key in reading or not isinstance(value, (str, os.PathLike)):
            continue
        text = os.fspath(value)
        if not text.strip() or "\x00" in text:
            continue
        candidate = Path(text) if os.path.isabs(text) else root / text
        if ledger is not None and _same_file(candidate, Path(ledger)):
            raise SinkError(
                f"option {sink}.{key}={text!r} would overwrite the ledger ({ledger}); "
                "choose another file name"
            )
        escapes = os.path.isabs(text) or ".." in text.replace("\\", "/").split("/")
        if escapes and not _inside(candidate, root):
            raise SinkError(
                f"option {sink}.{key}={text!r} points outside the output folder {root}; "
                "sinks write only inside it: give a name relative to it"
            )


def build_sink(
    info: SinkInfo,
    out_dir: str | Path,
    options: Mapping[str, Any] | None = None,
    *,
    ledger: str | Path | None = None,
) -> Sink:
    """Build the sink ``info`` registers: validate ``options`` against its declaration
    (:class:`~vlmkit.ConfigError`), confine path-like values to ``out_dir`` (and away from
    ``ledger``), call the factory and check it built a :class:`Sink`."""
    from vlmkit.errors import PluginError

    given = dict(options or {})
    declared = info.options
    inputs: list[str] = []
    if declared is not None:
        known = {option.name: option for option in declared}
        unknown = sorted(set(given) - set(known))
        if unknown:
            names = ", ".join(sorted(known)) or "none"
            raise ConfigError(
                f"sink {info.name!r} has no option(s) {', '.join(unknown)}; its options are: "
                f"{names} (`vlmkit sinks` lists them)"
            )
        given = {k: known[k].validate(v) if v is not None else v for k, v in given.items()}
        inputs = [option.name for option in declared if option.input_file]
    confine_options(info.name, given, out_dir, ledger=ledger, inputs=inputs)
    try:
        sink = info.factory(out_dir, **given)
    except ConfigError:
        raise
    except TypeError as err:
        if "argument" not in str(err):  # a bug inside the factory, not our call
            raise PluginError(f"sink {info.name!r} failed to start: {err}") from err
        raise ConfigError(f"sink {info.name!r} does not take these options: {err}") from err
    if not isinstance(sink, Sink):
        raise PluginError(
            f"sink {info.name!r} factory returned {type(sink).__name__}, not a vlmkit.Sink"
        )
    return sink
