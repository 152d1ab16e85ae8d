"""Re-emit sink outputs from a run ledger, without calling a model (``vlmkit export``).

:func:`export` reads ``results.jsonl`` (:func:`vlmkit.ledger.read_ledger`: torn lines skipped,
duplicates resolved, first-seen order) and replays every ``done`` record into the given sinks,
then closes them. The output is the same as writing the sinks during the run.

Sinks are given as built :class:`~vlmkit.Sink` instances, or as names turned into sinks by a
``resolve`` callable — ``resolve(name)`` returns a factory ``factory(out_dir, **options)`` or a
record with a ``factory`` attribute (a :class:`~vlmkit.records.SinkInfo`). The Session's plugin
registry provides one; this module does not depend on the plugin layer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from vlmkit.errors import ConfigError, SinkError
from vlmkit.ledger import LedgerRecord, read_ledger
from vlmkit.sink import Sink, SinkItem

__all__ = ["export"]

Resolver = Callable[[str], Any]


def _build(
    entry: str | Sink,
    out_dir: Path,
    resolve: Resolver | None,
    options: Mapping[str, Mapping[str, Any]],
) -> tuple[str, Sink]:
    if isinstance(entry, Sink):
        return getattr(entry, "name", None) or type(entry).__name__, entry
    if not isinstance(entry, str):
        raise ConfigError(f"a sink must be a Sink or a sink name, got {entry!r}")
    if resolve is None:
        raise ConfigError(
            f"sink {entry!r} is given by name but no resolve= callable was passed to turn "
            "names into sinks (Session provides one), or pass built Sink instances"
        )
    found = resolve(entry)
    factory = getattr(found, "factory", found)
    if not callable(factory):
        raise ConfigError(f"resolve({entry!r}) returned {found!r}, not a sink factory")
    sink = factory(out_dir, **dict(options.get(entry, {})))
    if not isinstance(sink, Sink):
        raise ConfigError(f"the factory of sink {entry!r} built {sink!r}, not a vlmkit Sink")
    return entry, sink


def _image_path(record: LedgerRecord, image_root: Path | None) -> Path | None:
    if image_root is not None:
        return image_root.joinpath(*record.key.replace("\\", "/").split("/"))
    return Path(record.image_path) if record.image_path is not None else None


def export(
    ledger_path: str | os.PathLike[str],
    sinks: str | Sink | Iterable[str | Sink],
    out_dir: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    resolve: Resolver | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, list[Path]]:
    """Replay the ``done`` records of a ledger into ``sinks`` and close them.

    ``image_root``: where the input images are now, when they moved since the run (an item's
    image is then ``image_root/key``); by default the path recorded in the ledger is used.
    ``options`` maps a sink name to the options its factory gets. Returns the files each sink
    wrote, by sink name (the class name for a sink given as an instance). Failed records are
    not exported; a sink that would overwrite the ledger itself is refused.
    """
    ledger = Path(ledger_path)
    out = Path(out_dir)
    entries = [sinks] if isinstance(sinks, str | Sink) else list(sinks)
    built: list[tuple[str, Sink]] = []
    for entry in entries:
        name, sink = _build(entry, out, resolve, options or {})
        target = getattr(sink, "path", None)
        if (
            target is not None
            and ledger.exists()
            and Path(target).exists()
            and os.path.samefile(target, ledger)
        ):
            raise SinkError(
                f"sink {name!r} would overwrite the ledger being exported ({ledger}); "
                "choose another output folder"
            )
        if any(existing == name for existing, _ in built):
            name = f"{name}#{len(built) + 1}"
        built.append((name, sink))
    state = read_ledger(ledger)
    root = Path(image_root) if image_root is not None else None
    for record in state:
        if record.status != "done" or record.result is None:
            continue
        item = SinkItem(
            key=record.key,
            result=record.result,
            image_path=_image_path(record, root),
            image_size=record.image_size,
        )
        for name, sink in built:
            write_record = getattr(sink, "write_record", None)
            try:
                if callable(write_record):
                    write_record(record)
                else:
                    sink.write(item)
            except SinkError:
                raise
            except Exception as err:
                raise SinkError(f"sink {name!r} failed on {record.key!r}: {err}") from err
    return {name: sink.close() for name, sink in built}
